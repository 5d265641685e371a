"""Sweep planning is deterministic, bounded by maxTrials, and explains what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from adapterops.api.finetunejob import FineTuneJobSpec
from adapterops.finetune.plan import PlanError, plan, trial_name


def spec(**sweep: Any) -> FineTuneJobSpec:
    return FineTuneJobSpec.model_validate(
        {
            "baseModel": {"name": "tiny", "uri": "/models/tiny"},
            "dataset": {"train": "/data/train.jsonl"},
            "training": {"maxSteps": 10, "learningRate": 1e-4, "scheduler": {"minLearningRate": 1e-6}},
            "objective": {"metric": "validationLoss", "goal": "minimize"},
            "output": {"uri": "pvc://out/x"},
            "sweep": sweep,
        }
    )


PAPER_GRID = {
    "maxTrials": 20,
    "parameters": {
        "training.learningRate": {"values": [5e-5, 1e-4, 2e-4, 3e-4, 5e-4]},
        "training.optimizer": {"choices": ["adam", "adamw"]},
        "lora.rank": {"values": [8, 16]},
    },
}


def test_grid_plans_every_combination_with_stable_names() -> None:
    trials = plan("sweep", spec(**PAPER_GRID))
    assert len(trials) == 20
    assert [t.name for t in trials[:3]] == ["sweep-t00", "sweep-t01", "sweep-t02"]
    specs = [t.spec_of(spec(**PAPER_GRID)) for t in trials]
    combos = {(s.training.learning_rate, s.training.optimizer, s.lora.rank) for s in specs}
    assert len(combos) == 20
    assert all(isinstance(s.lora.rank, int) for s in specs)


def test_same_spec_gives_the_same_plan() -> None:
    random_sweep = {
        "strategy": "random",
        "maxTrials": 8,
        "seed": 7,
        "parameters": {"training.learningRate": {"min": 1e-5, "max": 1e-3, "scale": "log"}},
    }
    first = [(t.name, t.parameters) for t in plan("j", spec(**random_sweep))]
    second = [(t.name, t.parameters) for t in plan("j", spec(**random_sweep))]
    assert first == second
    values = [p["training.learningRate"] for _, p in first]
    assert all(1e-5 <= v <= 1e-3 for v in values) and len(set(values)) == 8


def test_grid_past_max_trials_is_refused_naming_the_field() -> None:
    grid = {**PAPER_GRID, "maxTrials": 10}
    with pytest.raises(
        PlanError, match=r"spec\.sweep: the grid expands to 20 trials, more than spec\.sweep\.maxTrials \(10\)"
    ):
        plan("j", spec(**grid))


def test_a_trial_that_breaks_a_cross_field_rule_is_refused() -> None:
    sweep = {"parameters": {"training.learningRate": {"values": [1e-7, 1e-4]}}}
    with pytest.raises(PlanError, match=r"minLearningRate .* must be below learningRate"):
        plan("j", spec(**sweep))


def test_no_parameters_is_one_trial_of_the_base_spec() -> None:
    trials = plan("j", spec())
    assert len(trials) == 1 and trials[0].parameters == {}


def test_long_job_names_are_truncated_with_a_hash_and_stay_unique() -> None:
    a = trial_name("x" * 70 + "a", 3)
    b = trial_name("x" * 70 + "b", 3)
    assert len(a) <= 63 and len(b) <= 63 and a != b and a.endswith("-t03")


def test_a_sweep_named_by_an_older_operator_keeps_its_trial_names_reachable() -> None:
    from adapterops.finetune.plan import legacy_trial_name

    assert legacy_trial_name("short", 3) == "short-t03"  # unchanged where both rules agree
    name = "a" * 55  # 55 + 4 fits the old 63 limit, not the new one
    assert legacy_trial_name(name, 1) == name + "-t01" != trial_name(name, 1)
    very_long = "b" * 63
    assert len(legacy_trial_name(very_long, 1)) == 63 and legacy_trial_name(very_long, 1).endswith("-t01")


# A range for every sweepable field that takes one (lora.rank takes values: ranks NIM and vLLM serve;
# training.optimizer takes choices), drawn at random: each draw has the field's type and gives a valid spec.
RANGES: dict[str, tuple[float, float, str]] = {
    "training.learningRate": (1e-5, 1e-3, "log"),
    "training.weightDecay": (0.0, 0.1, "linear"),
    "training.scheduler.warmupSteps": (0, 50, "linear"),
    "training.scheduler.minLearningRate": (1e-8, 1e-7, "log"),
    "training.globalBatchSize": (8, 64, "log"),
    "training.microBatchSize": (1, 2, "linear"),  # divides the default globalBatchSize (8) either way
    "training.maxSteps": (10, 5000, "log"),
    "training.epochs": (0.5, 3.0, "linear"),
    "training.seed": (0, 100000, "linear"),
    "lora.alpha": (8, 64, "log"),
    "lora.dropout": (0.0, 0.2, "linear"),
}


@pytest.mark.parametrize("path", sorted(RANGES))
def test_random_draws_have_each_fields_type_and_give_a_valid_spec(path: str) -> None:
    from adapterops.api.common import SWEEPABLE_PARAMETERS

    low, high, scale = RANGES[path]
    trials = plan(
        "sweep", spec(strategy="random", maxTrials=20, parameters={path: {"min": low, "max": high, "scale": scale}})
    )
    values = [t.parameters[path] for t in trials]
    kind = SWEEPABLE_PARAMETERS[path]
    if kind == "integer":
        assert all(isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in values), values
    else:
        assert all(isinstance(v, float) and low <= v <= high for v in values), values
    assert len(set(values)) > 1
    base = spec(strategy="random", maxTrials=20, parameters={path: {"min": low, "max": high, "scale": scale}})
    for trial in trials:
        trial.spec_of(base)  # valid: the plan already refused any invalid draw


def test_every_sweepable_field_that_takes_a_range_is_covered() -> None:
    from adapterops.api.common import SWEEPABLE_PARAMETERS

    assert set(RANGES) == set(SWEEPABLE_PARAMETERS) - {"lora.rank", "training.optimizer"}


def test_an_integer_range_that_holds_no_integer_is_refused_naming_the_field() -> None:
    with pytest.raises(PlanError, match=r"parameters\[training.scheduler.warmupSteps\].*holds no integer"):
        plan(
            "s",
            spec(
                strategy="random", maxTrials=2, parameters={"training.scheduler.warmupSteps": {"min": 1.2, "max": 1.8}}
            ),
        )
