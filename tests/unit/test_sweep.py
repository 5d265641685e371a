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
