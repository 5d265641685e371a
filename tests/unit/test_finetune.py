"""Trial state, champion and status are recomputed from Jobs and pods alone (level-based)."""

from __future__ import annotations

from typing import Any

from adapterops.api.finetunejob import FineTuneJobSpec
from adapterops.finetune import observe as finetune
from adapterops.finetune.plan import plan
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


def job(name: str, **status: Any) -> dict[str, Any]:
    conditions = status.pop("conditions", {})
    return {
        "name": name,
        "uid": "u",
        "suspended": status.pop("suspended", False),
        "active": 0,
        "failed": 0,
        "succeeded": 0,
        "startTime": "2026-01-01T00:00:00Z",
        "completionTime": None,
        "conditions": conditions,
        **status,
    }


def done(kind: str) -> dict[str, Any]:
    return {
        kind: {
            "status": "True",
            "reason": "BackoffLimitExceeded" if kind == "Failed" else "",
            "message": "",
            "time": "2026-01-01T01:00:00Z",
        }
    }


def pod(
    job_name: str, phase: str, message: str | None = None, exit_code: int = 0, created: str = "2026-01-01T00:00:01Z"
) -> dict[str, Any]:
    terminated = {
        "exitCode": exit_code,
        "reason": "Completed",
        "message": message,
        "startedAt": None,
        "finishedAt": None,
    }
    return {
        "name": f"{job_name}-x",
        "job": job_name,
        "created": created,
        "phase": phase,
        "terminated": terminated if phase in ("Succeeded", "Failed") else None,
    }


def result(score: float | None, loss: float = 1.0, judge_status: str = "ok") -> str:
    judge = JudgeSummary(status=judge_status, mean=score, std=0.1, samples=10)  # type: ignore[arg-type]
    return TrialResult(
        status="succeeded", validation_loss=loss, judge=judge, adapter_uri="pvc://out/a"
    ).to_termination_message()


def test_a_trial_without_a_job_is_pending() -> None:
    row = finetune.observe_trial(TRIALS[0], None, [], None)
    assert row["state"] == "Pending" and row["attempts"] == 0


def test_a_complete_job_with_a_result_is_succeeded_with_scores() -> None:
    row = finetune.observe_trial(
        TRIALS[0],
        job("sweep-t00", succeeded=1, conditions=done("Complete")),
        [pod("sweep-t00", "Succeeded", result(4.2, 0.8))],
        None,
    )
    assert row["state"] == "Succeeded" and row["judgeScore"] == 4.2 and row["validationLoss"] == 0.8
    assert row["adapterUri"] == "pvc://out/a" and row["attempts"] == 1


def test_missing_malformed_and_oversized_results_fail_the_trial_with_a_reason() -> None:
    complete = job("sweep-t00", succeeded=1, conditions=done("Complete"))
    for message, reason in (
        (None, "ResultMissing"),
        ("{not json", "ResultMalformed"),
        ('{"v": 1, "status": "maybe"}', "ResultMalformed"),
        ("x" * 5000, "ResultTooLarge"),
    ):
        row = finetune.observe_trial(TRIALS[0], complete, [pod("sweep-t00", "Succeeded", message)], None)
        assert row["state"] == "Failed" and row["message"].startswith(reason), (message, row)


def test_a_failed_job_reports_the_runner_reason_and_attempts() -> None:
    failed = TrialResult(
        status="failed", reason="DatasetInvalid", message="train.jsonl:7: missing messages"
    ).to_termination_message()
    pods = [pod("sweep-t01", "Failed", failed, 2, created=f"2026-01-01T00:00:0{i}Z") for i in range(3)]
    row = finetune.observe_trial(TRIALS[1], job("sweep-t01", failed=3, conditions=done("Failed")), pods, None)
    assert row["state"] == "Failed" and row["attempts"] == 3
    assert row["message"].startswith("DatasetInvalid: train.jsonl:7: missing messages")


def test_an_oom_killed_trial_says_so() -> None:
    oom = pod("sweep-t01", "Failed", None, 137)
    oom["terminated"]["reason"] = "OOMKilled"
    row = finetune.observe_trial(TRIALS[1], job("sweep-t01", failed=1, conditions=done("Failed")), [oom], None)
    assert "exit code 137 (OOMKilled)" in row["message"] and "BackoffLimitExceeded" in row["message"]


def test_a_suspended_job_waits_for_kueue() -> None:
    row = finetune.observe_trial(TRIALS[0], job("sweep-t00", suspended=True), [], None)
    assert row["state"] == "Pending" and "Kueue" in row["message"]


def test_a_recorded_result_survives_its_pod_being_deleted() -> None:
    old = {"name": "sweep-t00", "state": "Succeeded", "judgeScore": 3.0, "adapterUri": "pvc://out/a"}
    row = finetune.observe_trial(TRIALS[0], job("sweep-t00", succeeded=1, conditions=done("Complete")), [], old)
    assert row == old


def test_champion_is_the_best_score_ties_to_lower_loss_then_earlier_trial() -> None:
    rows = [
        {
            "name": "t0",
            "index": 0,
            "state": "Succeeded",
            "judgeScore": 4.0,
            "validationLoss": 0.9,
            "adapterUri": "a",
            "parameters": {},
        },
        {
            "name": "t1",
            "index": 1,
            "state": "Succeeded",
            "judgeScore": 4.0,
            "validationLoss": 0.7,
            "adapterUri": "b",
            "parameters": {},
        },
        {
            "name": "t2",
            "index": 2,
            "state": "Succeeded",
            "judgeScore": 4.0,
            "validationLoss": 0.7,
            "adapterUri": "c",
            "parameters": {},
        },
        {"name": "t3", "index": 3, "state": "Failed", "judgeScore": 5.0, "parameters": {}},
    ]
    assert finetune.champion(rows, "judgeScore")["trial"] == "t1"
    assert finetune.champion(rows, "validationLoss")["trial"] == "t1"


def test_a_trial_whose_judge_was_unavailable_is_never_champion() -> None:
    row = finetune.observe_trial(
        TRIALS[0],
        job("sweep-t00", succeeded=1, conditions=done("Complete")),
        [pod("sweep-t00", "Succeeded", result(None, judge_status="unavailable"))],
        None,
    )
    assert row["state"] == "Succeeded" and "judgeScore" not in row and "judge unavailable" in row["message"]
    assert finetune.champion([row], "judgeScore") is None


def test_at_most_parallelism_trials_are_started_in_plan_order() -> None:
    rows = [finetune.observe_trial(t, None, [], None) for t in TRIALS]
    assert [t.name for t in finetune.to_start(TRIALS, rows, set(), 2, False)] == ["sweep-t00", "sweep-t01"]
    rows[0] = {**rows[0], "state": "Running"}
    assert [t.name for t in finetune.to_start(TRIALS, rows, {"sweep-t00", "sweep-t01"}, 2, False)] == []
    rows[0] = {**rows[0], "state": "Succeeded"}
    assert [t.name for t in finetune.to_start(TRIALS, rows, {"sweep-t00", "sweep-t01"}, 2, False)] == ["sweep-t02"]
    assert finetune.to_start(TRIALS, rows, set(), 2, True) == []


def test_status_of_a_finished_sweep() -> None:
    rows = [
        {
            "name": "a",
            "index": 0,
            "state": "Succeeded",
            "attempts": 1,
            "judgeScore": 3.5,
            "adapterUri": "x",
            "parameters": {},
            "startTime": "2026-01-01T00:00:00Z",
            "completionTime": "2026-01-01T01:00:00Z",
        },
        {
            "name": "b",
            "index": 1,
            "state": "Failed",
            "attempts": 3,
            "parameters": {},
            "startTime": "2026-01-01T00:00:05Z",
            "completionTime": "2026-01-01T02:00:00Z",
        },
    ]
    status = finetune.sweep_status({}, rows, SPEC, 3, "sweep planned: 2 trials")
    conds = {c["type"]: c for c in status["conditions"]}
    assert status["state"] == "Succeeded" and status["progress"] == "2/2" and status["champion"]["trial"] == "a"
    assert (
        conds["Succeeded"]["status"] == "True"
        and conds["Failed"]["status"] == "False"
        and conds["Running"]["status"] == "False"
    )
    assert all(c["observedGeneration"] == 3 for c in conds.values()) and status["observedGeneration"] == 3
    assert status["startTime"] == "2026-01-01T00:00:00Z" and status["completionTime"] == "2026-01-01T02:00:00Z"


def test_every_trial_failing_fails_the_sweep() -> None:
    rows = [{"name": "a", "index": 0, "state": "Failed", "attempts": 3, "parameters": {}}]
    status = finetune.sweep_status({}, rows, SPEC, 1, "m")
    conds = {c["type"]: c for c in status["conditions"]}
    assert status["state"] == "Failed" and conds["Failed"]["reason"] == "AllTrialsFailed" and "champion" not in status


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
    summary = finetune.engine_summary(jobset)
    rank = {
        "metadata": {
            "name": "p0",
            "creationTimestamp": "2026-01-01T00:00:01Z",
            "labels": {"adapterops.io/trial": "sweep-t00", "batch.kubernetes.io/job-completion-index": "0"},
        },
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [
                {"name": "trainer", "state": {"terminated": {"exitCode": 0, "message": result(4.0)}}}
            ],
        },
    }
    worker = {
        "metadata": {
            "name": "p1",
            "creationTimestamp": "2026-01-01T00:00:01Z",
            "labels": {"adapterops.io/trial": "sweep-t00", "batch.kubernetes.io/job-completion-index": "1"},
        },
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [{"name": "trainer", "state": {"terminated": {"exitCode": 0, "message": ""}}}],
        },
    }
    pods = [finetune.pod_summary(p, "trainer") for p in (rank, worker)]
    row = finetune.observe_trial(TRIALS[0], summary, pods, None)
    assert row["state"] == "Succeeded" and row["judgeScore"] == 4.0 and row["attempts"] == 1
