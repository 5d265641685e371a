"""Trial state, champion and status are recomputed from Jobs and pods alone (level-based)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lightkube.resources.core_v1 import Pod

from adapterops.api.finetunejob import FineTuneJobSpec, FineTuneJobStatus, Trial
from adapterops.finetune.builders import LABEL_JOB, LABEL_JOB_UID
from adapterops.finetune.observe import (
    JobCondition,
    Terminated,
    TrialPod,
    TrialRun,
    engine_item,
    observe_trial,
    pod_item,
)
from adapterops.finetune.plan import plan, to_start
from adapterops.finetune.status import champion, sweep_status
from adapterops_common.contract import JudgeSummary, TrialResult

SPEC = FineTuneJobSpec.model_validate(
    {
        "baseModel": {"name": "tiny", "uri": "/models/tiny"},
        "dataset": {"train": "/data/train.jsonl"},
        "training": {"maxSteps": 10},
        "objective": {"metric": "judgeScore", "goal": "maximize"},
        "evaluation": {"dataset": "/data/challenge.jsonl", "judge": {"endpoint": "http://judge/v1", "model": "j"}},
        "output": {"uri": "pvc://out/adapters"},
        "sweep": {
            "maxTrials": 4,
            "parallelism": 2,
            "parameters": {"training.learningRate": {"values": [1e-4, 2e-4, 3e-4, 4e-4]}},
        },
    }
)
TRIALS = plan("sweep", SPEC)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0.replace(second=seconds % 60, minute=seconds // 60 % 60, hour=seconds // 3600)


def job(name: str, suspended: bool = False, done: str | None = None, **counts: int) -> TrialRun:
    conditions = {}
    if done:
        reason = "BackoffLimitExceeded" if done == "Failed" else ""
        conditions[done] = JobCondition("True", reason, "", at(3600))
    return TrialRun(name=name, suspended=suspended, start_time=T0, conditions=conditions, **counts)


def pod(trial: str, phase: str, message: str | None = None, exit_code: int = 0, created: int = 1) -> TrialPod:
    terminated = Terminated(exit_code, "Completed", message) if phase in ("Succeeded", "Failed") else None
    return TrialPod(name=f"{trial}-x", trial=trial, created=at(created), phase=phase, terminated=terminated)


def result(score: float | None, loss: float = 1.0, judge_status: str = "ok") -> str:
    judge = JudgeSummary(status=judge_status, mean=score, std=0.1, samples=10)  # type: ignore[arg-type]
    return TrialResult(
        status="succeeded", validation_loss=loss, judge=judge, adapter_uri="pvc://out/a"
    ).to_termination_message()


def row(name: str, index: int, state: str, **fields: Any) -> Trial:
    return Trial(name=name, index=index, state=state, **fields)  # type: ignore[arg-type]


def test_a_trial_without_a_job_is_pending() -> None:
    row = observe_trial(TRIALS[0], None, [], None)
    assert row.state == "Pending" and row.attempts == 0


def test_a_complete_job_with_a_result_is_succeeded_with_scores() -> None:
    row = observe_trial(
        TRIALS[0],
        job("sweep-t00", done="Complete", succeeded=1),
        [pod("sweep-t00", "Succeeded", result(4.2, 0.8))],
        None,
    )
    assert row.state == "Succeeded" and row.judge_score == 4.2 and row.validation_loss == 0.8
    assert row.adapter_uri == "pvc://out/a" and row.attempts == 1


def test_missing_malformed_and_oversized_results_fail_the_trial_with_a_reason() -> None:
    complete = job("sweep-t00", done="Complete", succeeded=1)
    for message, reason in (
        (None, "ResultMissing"),
        ("{not json", "ResultMalformed"),
        ('{"v": 2, "status": "maybe"}', "ResultMalformed"),
        ("x" * 5000, "ResultTooLarge"),
        ('{"v": 2, "status": "succeeded", "validationLoss": NaN, "adapterUri": "pvc://out/a"}', "InvalidResult"),
        ('{"v": 2, "status": "succeeded", "trainLoss": Infinity, "adapterUri": "pvc://out/a"}', "InvalidResult"),
    ):
        row = observe_trial(TRIALS[0], complete, [pod("sweep-t00", "Succeeded", message)], None)
        assert row.state == "Failed" and (row.message or "").startswith(reason), (message, row)


def test_a_failed_job_reports_the_runner_reason_and_attempts() -> None:
    failed = TrialResult(
        status="failed", reason="DatasetInvalid", message="train.jsonl:7: missing messages"
    ).to_termination_message()
    pods = [pod("sweep-t01", "Failed", failed, 2, created=i) for i in range(3)]
    row = observe_trial(TRIALS[1], job("sweep-t01", done="Failed", failed=3), pods, None)
    assert row.state == "Failed" and row.attempts == 3
    assert (row.message or "").startswith("DatasetInvalid: train.jsonl:7: missing messages")


def test_an_oom_killed_trial_says_so() -> None:
    oom = TrialPod(name="p", trial="sweep-t01", created=T0, phase="Failed", terminated=Terminated(137, "OOMKilled"))
    row = observe_trial(TRIALS[1], job("sweep-t01", done="Failed", failed=1), [oom], None)
    assert "exit code 137 (OOMKilled)" in (row.message or "") and "BackoffLimitExceeded" in (row.message or "")


def test_a_suspended_job_waits_for_kueue() -> None:
    row = observe_trial(TRIALS[0], job("sweep-t00", suspended=True), [], None)
    assert row.state == "Pending" and "Kueue" in (row.message or "")


def test_a_recorded_result_survives_its_pod_being_deleted() -> None:
    old = row("sweep-t00", 0, "Succeeded", judge_score=3.0, adapter_uri="pvc://out/a")
    got = observe_trial(TRIALS[0], job("sweep-t00", done="Complete", succeeded=1), [], old)
    assert got == old


def test_champion_is_the_best_score_ties_to_lower_loss_then_earlier_trial() -> None:
    rows = [
        row("t0", 0, "Succeeded", judge_score=4.0, validation_loss=0.9, adapter_uri="a"),
        row("t1", 1, "Succeeded", judge_score=4.0, validation_loss=0.7, adapter_uri="b"),
        row("t2", 2, "Succeeded", judge_score=4.0, validation_loss=0.7, adapter_uri="c"),
        row("t3", 3, "Failed", judge_score=5.0),
    ]
    best_by_score, best_by_loss = champion(rows, "judgeScore"), champion(rows, "validationLoss")
    assert best_by_score is not None and best_by_score.trial == "t1"
    assert best_by_loss is not None and best_by_loss.trial == "t1"


def test_a_trial_whose_judge_was_unavailable_is_never_champion() -> None:
    got = observe_trial(
        TRIALS[0],
        job("sweep-t00", done="Complete", succeeded=1),
        [pod("sweep-t00", "Succeeded", result(None, judge_status="unavailable"))],
        None,
    )
    assert got.state == "Succeeded" and got.judge_score is None and "judge unavailable" in (got.message or "")
    assert champion([got], "judgeScore") is None


def test_at_most_parallelism_trials_are_started_in_plan_order() -> None:
    assert [t.name for t in to_start(TRIALS, 0, set(), 2)] == ["sweep-t00", "sweep-t01"]
    assert [t.name for t in to_start(TRIALS, 2, {"sweep-t00", "sweep-t01"}, 2)] == []
    assert [t.name for t in to_start(TRIALS, 1, {"sweep-t00", "sweep-t01"}, 2)] == ["sweep-t02"]


def test_status_of_a_finished_sweep() -> None:
    rows = [
        row("a", 0, "Succeeded", attempts=1, judge_score=3.5, adapter_uri="x", start_time=T0, completion_time=at(3600)),
        row("b", 1, "Failed", attempts=3, start_time=at(5), completion_time=at(7200)),
    ]
    status = sweep_status(FineTuneJobStatus(), rows, SPEC, 3, "sweep planned: 2 trials")
    conds = {c.type: c for c in status.conditions}
    assert status.state == "Succeeded" and status.progress == "2/2"
    assert status.champion is not None and status.champion.trial == "a"
    assert conds["Succeeded"].status == "True" and conds["Failed"].status == "False"
    assert conds["Running"].status == "False"
    assert all(c.observed_generation == 3 for c in conds.values()) and status.observed_generation == 3
    doc = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert doc["startTime"] == "2026-01-01T00:00:00Z" and doc["completionTime"] == "2026-01-01T02:00:00Z"


def test_every_trial_failing_fails_the_sweep() -> None:
    status = sweep_status(FineTuneJobStatus(), [row("a", 0, "Failed", attempts=3)], SPEC, 1, "m")
    conds = {c.type: c for c in status.conditions}
    assert status.state == "Failed" and conds["Failed"].reason == "AllTrialsFailed" and status.champion is None


def test_a_completed_jobset_is_a_succeeded_trial_read_from_rank_0() -> None:
    jobset = {
        "kind": "JobSet",
        "metadata": {"name": "sweep-t00", "uid": "u", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"suspend": False},
        "status": {
            "conditions": [{"type": "Completed", "status": "True", "lastTransitionTime": "2026-01-01T01:00:00Z"}],
            "replicatedJobsStatus": [{"name": "trainer", "active": 0}],
        },
    }
    labels = {LABEL_JOB: "sweep", LABEL_JOB_UID: "owner"}
    jobset["metadata"].update(namespace="ml", labels=labels)
    item = engine_item(jobset)
    assert item is not None and item.group == ("ml", "owner") and item.key == ("ml", "sweep")

    def trial_pod(name: str, index: str, message: str) -> Pod:
        return Pod.from_dict(
            {
                "metadata": {
                    "name": name,
                    "namespace": "ml",
                    "uid": name,
                    "creationTimestamp": "2026-01-01T00:00:01Z",
                    "labels": {
                        **labels,
                        "adapterops.io/trial": "sweep-t00",
                        "batch.kubernetes.io/job-completion-index": index,
                    },
                },
                "status": {
                    "phase": "Succeeded",
                    "containerStatuses": [
                        {
                            "name": "trainer",
                            "image": "i",
                            "imageID": "",
                            "ready": False,
                            "restartCount": 0,
                            "state": {"terminated": {"exitCode": 0, "message": message}},
                        }
                    ],
                },
            }
        )

    pods = [pod_item(trial_pod("p0", "0", result(4.0))), pod_item(trial_pod("p1", "1", ""))]
    got = observe_trial(TRIALS[0], item.data, [p.data for p in pods if p is not None], None)
    assert got.state == "Succeeded" and got.judge_score == 4.0 and got.attempts == 1
