"""The baseline (`python -m adapterops_train baseline`) on the tiny Llama (CPU): the base model evaluated as
a trial evaluates its adapter, on the same split and challenge set, without training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest

from adapterops_common.contract import document_schema
from testworld.judge import StandInJudge
from testworld.trials import COMMERCE, metrics, run_trial, trial_spec

pytestmark = pytest.mark.train


def spec(tiny_model: Path, out: Path, judge_url: str) -> dict[str, Any]:
    return trial_spec(
        str(tiny_model),
        str(out),
        lora={"targetModules": ["q_proj", "v_proj"]},
        training={"maxSteps": 4, "precision": "fp32"},
        evaluation={
            "dataset": str(COMMERCE / "challenge.jsonl"),
            "samples": 4,
            "rubric": {"builtin": "query-formulation"},
            "judge": {"endpoint": judge_url, "model": "judge"},
        },
    )


@pytest.fixture(scope="module")
def pair(tiny_model: Path, judge: StandInJudge, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("baseline")
    trial_code, trial = run_trial(tmp / "trial", spec(tiny_model, tmp / "trial-out", judge.url))
    champion = ("--champion-adapter", str(tmp / "trial-out" / "adapter"))
    base_spec = spec(tiny_model, tmp / "base-out", judge.url)
    base_code, base = run_trial(tmp / "base", base_spec, command="baseline", extra=champion)
    return {
        "trial": (trial_code, trial, metrics(str(tmp / "trial-out"))),
        "base": (base_code, base, metrics(str(tmp / "base-out"))),
    }


def test_the_baseline_is_a_result_document_without_an_adapter(pair: dict[str, Any]) -> None:
    code, result, _ = pair["base"]
    assert code == 0, result
    jsonschema.validate(result, document_schema("TrialResult"))
    assert result["status"] == "succeeded" and "adapterUri" not in result and "steps" not in result
    assert result["judge"]["status"] == "ok" and result["judge"]["samples"] == 4


def test_the_baseline_loss_is_the_trials_loss_before_training(pair: dict[str, Any]) -> None:
    # Same split, template and loss: the trial's own evaluation before its first step is the base model's.
    _, base, _ = pair["base"]
    _, _, trial_metrics = pair["trial"]
    assert base["validationLoss"] == pytest.approx(trial_metrics["validationLossBefore"], rel=1e-5)
    assert trial_metrics["validationLoss"] < base["validationLoss"]


def test_the_baseline_judges_the_base_models_own_answers(pair: dict[str, Any]) -> None:
    _, base, base_metrics = pair["base"]
    _, _, trial_metrics = pair["trial"]
    samples = base_metrics["evaluation"]["samples"]
    assert [s["id"] for s in samples] == [s["id"] for s in trial_metrics["evaluation"]["samples"]]
    assert [s["answer"] for s in samples] != [s["answer"] for s in trial_metrics["evaluation"]["samples"]]
    assert base["judge"]["mean"] == pytest.approx(sum(s["score"] for s in samples) / len(samples), abs=1e-6)


def test_the_champion_is_compared_with_the_base_model_pairwise(pair: dict[str, Any]) -> None:
    _, base, base_metrics = pair["base"]
    _, _, trial_metrics = pair["trial"]
    p = base["pairwise"]
    assert p["status"] == "ok" and p["pairs"] == 4 and p["wins"] + p["ties"] + p["losses"] == 4
    # The stand-in judge prefers by content only: both orders always agree.
    assert p["agreement"] == 1.0
    compared = base_metrics["evaluation"]["pairwise"]["comparisons"]
    # The champion's answers are the trial's own (same adapter, same greedy generation path).
    assert [c["champion"] for c in compared] == [s["answer"] for s in trial_metrics["evaluation"]["samples"]]
    assert [c["base"] for c in compared] == [s["answer"] for s in base_metrics["evaluation"]["samples"]]
    outcomes = [c["outcome"] for c in compared]
    assert p["winRate"] == pytest.approx((1 + sum(outcomes) / 4) / 2)
