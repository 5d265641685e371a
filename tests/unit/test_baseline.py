"""The baseline: the base model evaluated once the trials have finished, the champion's improvement over it,
the ChampionNotBetterThanBaseline condition, and a ModelDeployment that does not canary such a champion."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from adapterops.api.finetunejob import Baseline, FineTuneJobSpec, FineTuneJobStatus, PairwiseResult, Trial
from adapterops.api.modeldeployment import ModelDeploymentSpec
from adapterops.cli.format import format_sweep
from adapterops.cli.report import render_report
from adapterops.config import Config, GpuClass
from adapterops.deploy.acceptance import resolve_adapters
from adapterops.finetune import builders
from adapterops.finetune.observe import Terminated, TrialPod, baseline_pairwise
from adapterops.finetune.plan import baseline_trial, plan
from adapterops.finetune.status import NOT_BETTER, baseline_wanted, sweep_status
from adapterops_common.contract import PairwiseSummary, TrialResult

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = Config(
    gpu_classes={
        "H100": GpuClass.model_validate(
            {"nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, "pricePerHour": 4.5, "memoryGiB": 80}
        )
    }
)
OWNER: dict[str, Any] = {
    "apiVersion": "adapterops.io/v1alpha1",
    "kind": "FineTuneJob",
    "metadata": {"name": "sweep", "namespace": "ml", "uid": "1234"},
}


def spec(metric: str = "judgeScore", **extra: Any) -> FineTuneJobSpec:
    return FineTuneJobSpec.model_validate(
        {
            "baseModel": {"name": "tiny", "uri": "pvc://models/tiny"},
            "backend": "nemo",
            "dataset": {"train": "pvc://data/train.jsonl"},
            "training": {"maxSteps": 10},
            "objective": {"metric": metric, "goal": "maximize" if metric == "judgeScore" else "minimize"},
            "evaluation": {"dataset": "pvc://data/challenge.jsonl", "judge": {"endpoint": "http://j/v1", "model": "j"}},
            "output": {"uri": "pvc://adapters/runs"},
            "resources": {"gpuType": "H100", "gpusPerTrial": 2, "nodes": 2},
            "sweep": {"maxTrials": 2, "parameters": {"training.learningRate": {"values": [1e-4, 2e-4]}}},
            **extra,
        }
    )


def trials(score_a: float, score_b: float) -> list[Trial]:
    return [
        Trial(name="sweep-t00", index=0, state="Succeeded", judge_score=score_a, validation_loss=0.5, adapter_uri="a"),
        Trial(name="sweep-t01", index=1, state="Succeeded", judge_score=score_b, validation_loss=0.4, adapter_uri="b"),
    ]


def base(state: str = "Succeeded", score: float | None = 2.03, loss: float | None = 0.9, **extra: Any) -> Trial:
    done = T0 if state in ("Succeeded", "Failed") else None
    return Trial(
        name="sweep-baseline",
        index=2,
        state=state,  # type: ignore[arg-type]
        judge_score=score,
        validation_loss=loss,
        completion_time=done,
        **extra,
    )


def conditions(status: FineTuneJobStatus) -> dict[str, Any]:
    return {c.type: c for c in status.conditions}


def test_finished_trials_wait_for_the_baseline_before_the_job_succeeds() -> None:
    status = sweep_status(FineTuneJobStatus(), trials(2.49, 2.1), spec(), 1, "m", base("Running", None, None))
    conds = conditions(status)
    assert status.state == "Running" and status.progress == "2/2"
    assert conds["Running"].reason == "EvaluatingBaseline" and conds["Succeeded"].status == "False"
    assert status.baseline is not None and status.baseline.state == "Running" and NOT_BETTER not in conds


def test_a_champion_that_beats_the_baseline_reports_its_improvement() -> None:
    # The paper's numbers: champion 2.49 against the untuned model's 2.03, +0.46 (+22.7%).
    status = sweep_status(FineTuneJobStatus(), trials(2.49, 2.1), spec(), 1, "m", base())
    conds = conditions(status)
    assert status.state == "Succeeded" and status.champion is not None
    imp = status.champion.improvement
    assert imp is not None and imp.metric == "judgeScore" and imp.better_than_baseline
    assert imp.absolute == pytest.approx(0.46) and imp.relative == pytest.approx(0.46 / 2.03, abs=1e-6)
    assert conds[NOT_BETTER].status == "False" and conds[NOT_BETTER].reason == "BetterThanBaseline"
    assert (
        "champion sweep-t00 2.49, base model 2.03" in conds[NOT_BETTER].message
        and "+22.7%" in conds[NOT_BETTER].message
    )
    assert status.baseline == Baseline(
        job="sweep-baseline", state="Succeeded", judge_score=2.03, validation_loss=0.9, completion_time=T0
    )


def test_a_champion_no_better_than_the_baseline_succeeds_with_the_condition() -> None:
    status = sweep_status(FineTuneJobStatus(), trials(1.9, 2.03), spec(), 1, "m", base())
    conds = conditions(status)
    assert status.state == "Succeeded" and conds["Succeeded"].status == "True"
    assert conds[NOT_BETTER].status == "True" and conds[NOT_BETTER].reason == NOT_BETTER
    assert status.champion is not None and status.champion.improvement is not None
    assert status.champion.improvement.absolute == 0.0 and not status.champion.improvement.better_than_baseline


def test_the_declared_margin_must_be_exceeded() -> None:
    tight = spec(baseline={"minImprovement": 0.5})
    status = sweep_status(FineTuneJobStatus(), trials(2.49, 2.1), tight, 1, "m", base())
    assert conditions(status)[NOT_BETTER].status == "True"
    assert "spec.baseline.minImprovement 0.5" in conditions(status)[NOT_BETTER].message


def test_validation_loss_improves_downwards() -> None:
    status = sweep_status(FineTuneJobStatus(), trials(1.0, 1.0), spec("validationLoss"), 1, "m", base(loss=0.5))
    imp = status.champion.improvement if status.champion else None
    assert imp is not None and imp.metric == "validationLoss" and imp.absolute == pytest.approx(0.1)
    assert imp.relative == pytest.approx(0.2) and conditions(status)[NOT_BETTER].status == "False"


def test_a_failed_or_incomplete_baseline_blocks_nothing_and_says_why() -> None:
    failed = sweep_status(FineTuneJobStatus(), trials(2.0, 1.0), spec(), 1, "m", base("Failed", message="OOM"))
    assert failed.state == "Succeeded" and conditions(failed)[NOT_BETTER].reason == "BaselineFailed"
    assert conditions(failed)[NOT_BETTER].status == "False" and "OOM" in conditions(failed)[NOT_BETTER].message
    no_judge = sweep_status(FineTuneJobStatus(), trials(2.0, 1.0), spec(), 1, "m", base(score=None))
    assert conditions(no_judge)[NOT_BETTER].reason == "BaselineIncomplete"


def test_skipping_the_baseline_leaves_the_champion_uncompared() -> None:
    skipped = spec(baseline={"evaluate": False})
    assert not baseline_wanted(FineTuneJobStatus(), skipped)
    status = sweep_status(FineTuneJobStatus(), trials(2.0, 1.0), skipped, 1, "m", None)
    assert status.state == "Succeeded" and status.baseline is None
    assert conditions(status)[NOT_BETTER].reason == "BaselineSkipped"


def test_a_job_finished_before_baselines_existed_is_not_reopened() -> None:
    finished = FineTuneJobStatus(state="Succeeded", completion_time=T0)
    assert not baseline_wanted(finished, spec()) and baseline_wanted(FineTuneJobStatus(state="Running"), spec())


def test_the_baseline_job_evaluates_on_one_node_with_the_hf_trainer_and_its_own_spec() -> None:
    s = spec()
    planned = plan("sweep", s)
    baseline = baseline_trial("sweep", planned)
    assert baseline.name == "sweep-baseline" and baseline.index == len(planned) and baseline.parameters == {}
    job = builders.baseline_job(OWNER, baseline, s, CONFIG, None)
    assert job["kind"] == "Job" and job["metadata"]["name"] == "sweep-baseline"
    assert job["metadata"]["labels"][builders.LABEL_COMPONENT] == "baseline"
    pod = job["spec"]["template"]
    assert pod["metadata"]["labels"][builders.LABEL_COMPONENT] == "baseline"
    container = pod["spec"]["containers"][0]
    assert container["command"][:4] == ["python", "-m", "adapterops_train", "baseline"]
    assert container["image"] == CONFIG.trainer_image_hf
    [configmap] = builders.trials_configmaps(OWNER, planned, s, baseline)
    assert pod["spec"]["volumes"][0]["configMap"]["name"] == configmap["metadata"]["name"]
    base_spec = json.loads(configmap["data"]["sweep-baseline.json"])
    assert base_spec["backend"] == "hf" and base_spec["nodes"] == 1 and base_spec["parameters"] == {}
    assert base_spec["outputUri"] == "pvc://adapters/runs/sweep-1234/sweep-baseline"
    trial = json.loads(configmap["data"]["sweep-t00.json"])
    assert trial["backend"] == "nemo" and trial["nodes"] == 2


def test_the_baseline_job_compares_the_champion_when_given_its_adapter() -> None:
    s = spec()
    baseline = baseline_trial("sweep", plan("sweep", s))
    command = builders.baseline_job(OWNER, baseline, s, CONFIG, "pvc://adapters/runs/sweep-1234/sweep-t01/adapter")
    argv = command["spec"]["template"]["spec"]["containers"][0]["command"]
    assert argv[-2:] == ["--champion-adapter", "pvc://adapters/runs/sweep-1234/sweep-t01/adapter"]


def test_the_pairwise_comparison_reaches_the_baseline_status() -> None:
    pairwise = PairwiseResult(status="ok", pairs=4, wins=3, ties=1, losses=0, win_rate=0.875, agreement=1.0)
    status = sweep_status(FineTuneJobStatus(), trials(2.49, 2.1), spec(), 1, "m", base(), pairwise)
    assert status.baseline is not None and status.baseline.pairwise == pairwise
    doc = status.model_dump(by_alias=True, exclude_none=True, mode="json")["baseline"]["pairwise"]
    assert doc == {"status": "ok", "pairs": 4, "wins": 3, "ties": 1, "losses": 0, "winRate": 0.875, "agreement": 1.0}


def test_a_baseline_result_carries_its_pairwise_summary_to_the_operator() -> None:
    summary = PairwiseSummary(status="ok", pairs=2, wins=1, ties=1, win_rate=0.75, agreement=0.5)
    message = TrialResult(status="succeeded", validation_loss=0.9, pairwise=summary).to_termination_message()
    pod = TrialPod("p", "sweep-baseline", T0, "Succeeded", terminated=Terminated(0, "Completed", message))
    found = baseline_pairwise([pod])
    assert found is not None and PairwiseResult.model_validate(found).win_rate == 0.75
    assert baseline_pairwise([]) is None


def md(require: bool | None = None) -> ModelDeploymentSpec:
    ref: dict[str, Any] = {"name": "sweep"}
    if require is not None:
        ref["requireBetterThanBaseline"] = require
    return ModelDeploymentSpec.model_validate(
        {
            "baseModel": {"name": "tiny"},
            "adapters": [{"name": "shop", "fineTuneJobRef": ref}],
            "runtime": {"gpuType": "H100"},
        }
    )


def ftj_status(not_better: bool) -> dict[str, Any]:
    status = sweep_status(FineTuneJobStatus(), trials(1.9 if not_better else 2.49, 1.0), spec(), 1, "m", base())
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


def test_a_modeldeployment_does_not_canary_a_champion_no_better_than_the_baseline() -> None:
    adapters, why = resolve_adapters(md(), lambda _: ftj_status(not_better=True))
    assert adapters is None and "champion sweep-t00 is not better than the base model" in why
    assert "requireBetterThanBaseline: false" in why
    adapters, why = resolve_adapters(md(), lambda _: ftj_status(not_better=False))
    assert adapters == {"shop": "a"} and not why


def test_a_modeldeployment_may_serve_such_a_champion_when_told_to() -> None:
    adapters, _ = resolve_adapters(md(require=False), lambda _: ftj_status(not_better=True))
    assert adapters == {"shop": "a"}


def test_the_report_shows_base_model_against_champion() -> None:
    pairwise = PairwiseResult(status="ok", pairs=4, wins=3, ties=1, losses=0, win_rate=0.875, agreement=1.0)
    status = sweep_status(FineTuneJobStatus(), trials(2.49, 2.1), spec(), 1, "m", base(), pairwise)
    obj = {
        "metadata": {"name": "sweep", "namespace": "ml"},
        "spec": {"objective": {"metric": "judgeScore", "goal": "maximize"}},
        "status": status.model_dump(by_alias=True, exclude_none=True, mode="json"),
    }
    page = render_report(obj, {}, T0)
    section = page[page.index('<section id="baseline">') : page.index("</section>", page.index('id="baseline"'))]
    assert '<tr data-row="base"><td>Base model (no adapter)</td><td class="num">0.9000</td>' in section
    assert "<td>Champion sweep-t00</td>" in section and ">2.49<" in section and ">2.03<" in section
    assert "Improvement on judgeScore: <b>+0.46 (+22.7%)</b>" in section and "better than the base model" in section
    assert "won 3, tied 1, lost 0 of 4; win rate <b>0.875</b>" in section
    assert "BetterThanBaseline" in section


def test_the_report_says_when_there_is_no_baseline() -> None:
    status = sweep_status(FineTuneJobStatus(), trials(2.49, 2.1), spec(), 1, "m", None)
    page = render_report({"status": status.model_dump(by_alias=True, exclude_none=True, mode="json")}, {}, T0)
    assert "No baseline: the trials have not finished, or spec.baseline.evaluate is false." in page


def test_the_sweep_leaderboard_has_the_baseline_row_and_the_verdict() -> None:
    pairwise = PairwiseResult(status="ok", pairs=4, wins=1, ties=1, losses=2, win_rate=0.375, agreement=0.75)
    status = sweep_status(FineTuneJobStatus(), trials(1.9, 2.0), spec(), 1, "m", base(), pairwise)
    obj = {
        "metadata": {"name": "sweep", "namespace": "ml"},
        "spec": {"objective": {"metric": "judgeScore", "goal": "maximize"}},
        "status": status.model_dump(by_alias=True, exclude_none=True, mode="json"),
    }
    text = format_sweep(obj, T0)
    [row] = [line for line in text.splitlines() if line.startswith("base ")]
    assert row.split() == ["base", "sweep-baseline", "0.9000", "2.03", "Succeeded", "-"]
    assert "vs base model: judgeScore -0.03 (-1.5%)" in text
    assert "pairwise vs base model: won 1, tied 1, lost 2 (win rate 0.375, orders agreed on 0.750)" in text
    assert "NOT better than the base model: judgeScore: champion sweep-t01 2" in text
