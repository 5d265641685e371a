"""`kubectl adapterops` formatting (pure functions): the sweep leaderboard and the canary view."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from adapterops.cli import format as cli_format

NOW = datetime(2026, 11, 25, 22, 0, 0, tzinfo=UTC)


def trial(index: int, state: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": f"sweep-t{index:02d}",
        "index": index,
        "parameters": {"training.learningRate": [5e-4, 2e-3][index % 2], "lora.rank": [8, 16][index // 2 % 2]},
        "state": state,
        "attempts": 1 if state != "Pending" else 0,
        **extra,
    }


def finetunejob(trials: list[dict[str, Any]], metric: str = "judgeScore", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "adapterops.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "sweep", "namespace": "ml", "creationTimestamp": "2026-11-25T19:00:00Z"},
        "spec": {
            "objective": {"metric": metric, "goal": "maximize" if metric == "judgeScore" else "minimize"},
            "sweep": {
                "parameters": {"training.learningRate": {"values": [5e-4, 2e-3]}, "lora.rank": {"values": [8, 16]}}
            },
        },
        "status": {"trials": trials, **status},
    }


SCORED = [
    trial(0, "Succeeded", validationLoss=1.31, judgeScore=3.9, adapterUri="pvc://work/a/sweep-t00/adapter"),
    trial(1, "Succeeded", validationLoss=1.20, judgeScore=4.3, adapterUri="pvc://work/a/sweep-t01/adapter"),
    trial(2, "Failed", attempts=2, message="OutOfMemory: CUDA out of memory (exit code 137)"),
    trial(3, "Succeeded", validationLoss=1.10, judgeScore=4.3, adapterUri="pvc://work/a/sweep-t03/adapter"),
    trial(4, "Running"),
    trial(
        5, "Succeeded", validationLoss=1.05, adapterUri="pvc://work/a/sweep-t05/adapter", message="judge unavailable"
    ),
    trial(6, "Pending"),
]


def names(ranked: list[tuple[int | None, dict[str, Any]]]) -> list[tuple[int | None, str]]:
    return [(rank, t["name"]) for rank, t in ranked]


def test_rank_by_judge_score_ties_go_to_the_lower_loss_then_unranked_by_state() -> None:
    assert names(cli_format.rank_trials(SCORED, "judgeScore")) == [
        (1, "sweep-t03"),  # 4.3, loss 1.10
        (2, "sweep-t01"),  # 4.3, loss 1.20
        (3, "sweep-t00"),
        (None, "sweep-t05"),  # succeeded without a judge score: not rankable by judgeScore
        (None, "sweep-t04"),
        (None, "sweep-t06"),
        (None, "sweep-t02"),
    ]


def test_rank_by_validation_loss_lowest_first() -> None:
    ranked = names(cli_format.rank_trials(SCORED, "validationLoss"))
    assert ranked[:4] == [(1, "sweep-t05"), (2, "sweep-t03"), (3, "sweep-t01"), (4, "sweep-t00")]
    assert [n for r, n in ranked if r is None] == ["sweep-t04", "sweep-t06", "sweep-t02"]


def test_rank_ties_on_everything_keep_plan_order() -> None:
    rows = [trial(i, "Succeeded", validationLoss=1.0, judgeScore=4.0) for i in (3, 1, 2)]
    assert [t["index"] for _, t in cli_format.rank_trials(rows, "judgeScore")] == [1, 2, 3]


def test_the_leaderboard_is_sorted_and_marks_the_champion() -> None:
    obj = finetunejob(
        SCORED,
        state="Succeeded",
        progress="5/7",
        trialCounts={"succeeded": 4, "failed": 1, "running": 1, "pending": 1},
        champion={"trial": "sweep-t03", "adapterUri": "pvc://work/a/sweep-t03/adapter", "judgeScore": 4.3},
    )
    text = cli_format.format_sweep(obj, NOW)
    lines = text.splitlines()
    assert lines[0].startswith("FineTuneJob ml/sweep: Succeeded, 5/7 trials finished (4 succeeded, 1 failed")
    assert lines[0].endswith("age 3h")
    assert "objective: judgeScore (maximize)" in text
    header = next(line for line in lines if line.startswith("RANK"))
    assert header.split() == ["RANK", "TRIAL", "rank", "learningRate", "VAL", "LOSS", "JUDGE", "STATE", "ATTEMPTS"]
    rows = [line.split() for line in lines[lines.index(header) + 1 :] if line.startswith(("1", "2", "3", "-"))]
    assert [r[1] for r in rows] == [f"sweep-t{i:02d}" for i in (3, 1, 0, 5, 4, 6, 2)]
    assert rows[0] == ["1*", "sweep-t03", "16", "0.002", "1.1000", "4.30", "Succeeded", "1"]
    assert rows[-1] == ["-", "sweep-t02", "16", "0.0005", "-", "-", "Failed", "2"]
    assert "* champion: sweep-t03  pvc://work/a/sweep-t03/adapter" in text
    assert "sweep-t02 (Failed): OutOfMemory: CUDA out of memory (exit code 137)" in text
    assert "sweep-t05 (Succeeded): judge unavailable" in text


def test_a_running_sweeps_leader_is_provisional() -> None:
    obj = finetunejob(SCORED[:2], state="Running", champion={"trial": "sweep-t01", "adapterUri": "x"})
    assert "* current leader (provisional until the sweep finishes): sweep-t01" in cli_format.format_sweep(obj, NOW)


def test_an_empty_refused_or_suspended_sweep_says_so() -> None:
    refused = finetunejob(
        [],
        conditions=[cond("Accepted", "False", "UnknownGpuClass", "spec.resources.gpuType: X")],
    )
    text = cli_format.format_sweep(refused, NOW)
    assert "refused (UnknownGpuClass): spec.resources.gpuType: X" in text and "no trials yet" in text
    suspended = finetunejob(
        [trial(0, "Pending")],
        state="Suspended",
        conditions=[cond("Suspended", "True", "SuspendedBySpec", "spec.suspend is true: no new trials start")],
    )
    assert (
        "suspended: spec.suspend is true: no new trials start (kubectl adapterops resume)"
        in cli_format.format_sweep(suspended, NOW)
    )


def test_a_sweep_without_parameters_has_no_parameter_columns() -> None:
    obj = finetunejob([{"name": "one-t00", "index": 0, "parameters": {}, "state": "Running", "attempts": 1}])
    obj["spec"]["sweep"] = {}
    header = next(line for line in cli_format.format_sweep(obj, NOW).splitlines() if line.startswith("RANK"))
    assert header.split() == ["RANK", "TRIAL", "VAL", "LOSS", "JUDGE", "STATE", "ATTEMPTS"]


def test_short_names_keep_full_paths_when_last_segments_clash() -> None:
    assert cli_format.short_names(["training.learningRate", "lora.rank", "a.rank"]) == {
        "training.learningRate": "learningRate",
        "lora.rank": "lora.rank",
        "a.rank": "a.rank",
    }


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (5e-4, "0.0005"),
        (2e-05, "2e-05"),
        (16, "16"),
        ("adamw", "adamw"),
        (True, "true"),
        (None, "-"),
        ([1, 2], "[1,2]"),
    ],
)
def test_parameter_values_print_as_written(value: Any, text: str) -> None:
    assert cli_format.fmt_value(value) == text


@pytest.mark.parametrize(
    ("metric", "value", "text"),
    [
        ("latency", 0.0735, "0.0735s"),
        ("latency", 1.23456, "1.23s"),
        ("errorRate", 0.0123, "1.23%"),
        ("judge", 4.256, "4.26"),
        ("judge", None, "-"),
    ],
)
def test_canary_metric_values_in_their_unit(metric: str, value: float | None, text: str) -> None:
    assert cli_format.fmt_metric(metric, value) == text


@pytest.mark.parametrize(
    ("then", "age"),
    [
        ("2026-11-25T21:59:15Z", "45s"),
        ("2026-11-25T21:48:00Z", "12m"),
        ("2026-11-25T19:00:00Z", "3h"),
        ("2026-11-20T22:00:00Z", "5d"),
        (None, "-"),
        ("garbage", "-"),
    ],
)
def test_ages_read_like_kubectl(then: str | None, age: str) -> None:
    assert cli_format.fmt_age(then, NOW) == age


def test_table_aligns_columns_with_three_spaces() -> None:
    assert cli_format.table(["A", "LONGER"], [["xxxx", "1"], ["y", ""]]) == "A      LONGER\nxxxx   1\ny"


def test_steps_mark_the_current_one() -> None:
    assert cli_format.format_steps([10, 25, 50, 100], 2) == "10% -> 25% -> [50%] -> 100%"
    assert cli_format.format_steps([50, 100], None) == "50% -> 100%"


# --------------------------------------------------------------------------- canary


def revision(rev: str, weight: int, adapter: str, ready: int = 2) -> dict[str, Any]:
    return {
        "revision": rev,
        "adapters": {"commerce": adapter},
        "engine": "nim",
        "image": "nvcr.io/nim/nvidia/llama-3.1-nemotron-nano-8b-v1:1.8",
        "tensorParallelSize": 1,
        "gpuType": "H100",
        "replicas": 2,
        "readyReplicas": ready,
        "weight": weight,
    }


def cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }


def modeldeployment(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "adapterops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "agent", "namespace": "serving"},
        "spec": {"canary": {"steps": [10, 50, 100], "interval": "5m", "analysis": {"failureLimit": 2}}},
        "status": {"endpoint": "http://agent.serving.svc:8000/v1", **status},
    }


CANARY = modeldeployment(
    stable=revision("3e7aeb8f6e", 50, "pvc://work/adapters/v1"),
    canary=revision("34133c8287", 50, "pvc://work/adapters/v2"),
    canaryWeight=50,
    analysis={
        "step": 1,
        "stepStartedAt": "2026-11-25T21:57:00Z",
        "failedSteps": 1,
        "inconclusiveSteps": 0,
        "metrics": [
            {
                "name": "latency",
                "verdict": "Pass",
                "stableValue": 0.0869,
                "canaryValue": 0.0912,
                "samples": 982,
                "threshold": "p90 <= stable p90 +30%",
                "message": "latency p90: canary 0.0912s, stable 0.0869s (+4.9%)",
            },
            {
                "name": "judge",
                "verdict": "Inconclusive",
                "stableValue": 4.1,
                "canaryValue": 3.95,
                "samples": 12,
                "threshold": "mean drop vs stable < 0.5 (0-5 scale)",
                "message": "judge: no verdict yet, 12 paired prompts",
            },
        ],
    },
    conditions=[
        cond("Ready", "True", "Serving", "revision 3e7aeb8f6e: 2/2 replicas ready"),
        cond("Progressing", "True", "Analysing", "step 2/3 at 50%: judge: no verdict yet, 12 paired prompts"),
        cond("Suspended", "False", "NotSuspended"),
        cond("RolledBack", "False", "NewCanary", "a new revision is being canaried"),
    ],
    history=[
        {
            "revision": "3e7aeb8f6e",
            "outcome": "Promoted",
            "reason": "latency 0.08 (p90 <= ...)",
            "time": "2026-11-24T22:00:00Z",
        },
        {"revision": "aaaaaaaaaa", "outcome": "Initial", "reason": "first revision", "time": "2026-11-20T22:00:00Z"},
    ],
    estimatedMonthlyCost={
        "stable": {"gpus": 2, "usd": 6570.0},
        "canary": {"gpus": 2, "usd": 6570.0},
        "totalUsd": 13140.0,
    },
)


def test_the_canary_view_shows_revisions_steps_verdicts_history_and_cost() -> None:
    text = cli_format.format_canary(CANARY, NOW)
    lines = text.splitlines()
    assert lines[0] == "ModelDeployment serving/agent: Ready=True (Serving), Progressing=True (Analysing)"
    assert "endpoint: http://agent.serving.svc:8000/v1" in text
    stable = next(line for line in lines if line.startswith("stable"))
    canary = next(line for line in lines if line.startswith("canary "))
    assert stable.split() == [
        "stable",
        "3e7aeb8f6e",
        "nim",
        "1",
        "H100",
        "2/2",
        "50%",
        "commerce=pvc://work/adapters/v1",
    ]
    assert canary.split()[:2] == ["canary", "34133c8287"] and canary.split()[-1] == "commerce=pvc://work/adapters/v2"
    assert "steps: 10% -> [50%] -> 100%   (interval 5m, failure limit 2, auto-promote)" in text
    assert "current step 2/3: target 50%, canary weight 50%, started 3m ago" in text
    assert "failed steps 1, inconclusive steps 0" in text
    latency = next(line for line in lines if line.startswith("latency "))
    assert latency.split()[:5] == ["latency", "Pass", "0.0869s", "0.0912s", "982"] and latency.endswith("+30%")
    judge = next(line for line in lines if line.startswith("judge "))
    assert judge.split()[:5] == ["judge", "Inconclusive", "4.10", "3.95", "12"]
    assert "  judge: judge: no verdict yet, 12 paired prompts" in text
    assert "Progressing (Analysing): step 2/3 at 50% (per-metric messages above)" in text
    history = lines[lines.index("history (newest first):") + 1 :]
    assert history[0].split() == ["AGE", "REVISION", "OUTCOME", "REASON"]
    assert history[1].split()[:3] == ["24h", "3e7aeb8f6e", "Promoted"]
    assert history[2].split()[:3] == ["5d", "aaaaaaaaaa", "Initial"]
    assert text.rstrip().endswith(
        "estimated cost: stable $6,570.00/month (2 GPUs), canary $6,570.00/month (2 GPUs), total $13,140.00/month"
    )


def test_without_a_canary_the_view_says_who_serves_and_hides_stale_canary_cost() -> None:
    obj = modeldeployment(
        stable=revision("3e7aeb8f6e", 100, "pvc://work/adapters/v1"),
        conditions=[
            cond("Ready", "True", "Serving"),
            cond("Progressing", "False", "Steady", "revision 3e7aeb8f6e serves all traffic"),
            cond("RolledBack", "True", "AnalysisFailed", "revision e1532ffe2b rolled back: latency: p90 +170%"),
            cond("Degraded", "True", "RolledBack", "revision e1532ffe2b rolled back: latency: p90 +170%"),
        ],
        history=[
            {
                "revision": "e1532ffe2b",
                "outcome": "RolledBack",
                "reason": "latency: p90 +170%",
                "time": "2026-11-25T21:50:00Z",
            }
        ],
        estimatedMonthlyCost={
            "stable": {"gpus": 2, "usd": 6570.0},
            "canary": {"gpus": 2, "usd": 6570.0},
            "totalUsd": 6570.0,
        },
    )
    text = cli_format.format_canary(obj, NOW)
    assert "RolledBack=True (AnalysisFailed), Degraded=True (RolledBack)" in text.splitlines()[0]
    assert "steps: 10% -> 50% -> 100%" in text and "[" not in text.split("steps:")[1].splitlines()[0]
    assert "no canary in progress: revision 3e7aeb8f6e serves all traffic" in text
    assert text.count("rolled back: latency: p90 +170%") == 1, "the same message is printed once"
    assert "ROLE" in text and "canary " not in text.split("steps:")[0]
    assert text.rstrip().endswith("estimated cost: stable $6,570.00/month (2 GPUs)")


def test_a_holding_canary_says_why_once() -> None:
    obj = modeldeployment(
        stable=revision("s", 50, "v1"),
        canary=revision("c", 50, "v2"),
        analysis={
            "step": 0,
            "holding": True,
            "inconclusiveSteps": 1,
            "stepStartedAt": "2026-11-25T21:00:00Z",
            "metrics": [
                {"name": "latency", "verdict": "Inconclusive", "samples": 0, "message": "Prometheus unreachable"}
            ],
        },
        conditions=[
            cond(
                "Progressing",
                "True",
                "AnalysisInconclusive",
                "holding canary c at 10%: latency: Prometheus unreachable",
            ),
            cond(
                "Suspended", "True", "AnalysisInconclusive", "holding canary c at 10%: latency: Prometheus unreachable"
            ),
        ],
    )
    text = cli_format.format_canary(obj, NOW)
    assert "HOLDING: no verdict after the step's interval" in text
    assert "Suspended (AnalysisInconclusive): holding canary c at 10% (per-metric messages above)" in text
    assert text.count("Prometheus unreachable") == 1
    latency = next(line for line in text.splitlines() if line.startswith("latency "))
    assert latency.split()[:5] == ["latency", "Inconclusive", "-", "-", "0"]


def test_a_canary_that_is_not_ready_yet_and_a_paused_spec() -> None:
    obj = modeldeployment(
        stable=revision("s", 100, "v1"),
        canary=revision("c", 0, "v2", ready=0),
        analysis={"step": 0, "metrics": []},
        conditions=[
            cond("Progressing", "True", "CanaryNotReady", "canary c: 0/2 replicas ready; no traffic until it is Ready")
        ],
    )
    obj["spec"]["canary"]["paused"] = True
    obj["spec"]["canary"]["autoPromote"] = False
    text = cli_format.format_canary(obj, NOW)
    assert "waiting for the canary to be ready (0/2)" in text
    assert "promotion by hand, PAUSED (spec.canary.paused)" in text
    assert "analysis: no metrics yet" in text
    assert "Progressing (CanaryNotReady): canary c: 0/2 replicas ready; no traffic until it is Ready" in text


def test_an_object_without_status() -> None:
    obj = modeldeployment()
    del obj["status"]
    text = cli_format.format_canary(obj, NOW)
    assert text.startswith("ModelDeployment serving/agent: no status yet")
    assert "no canary in progress: nothing is served yet" in text


def test_an_in_place_canary_shows_what_each_pod_has_loaded_and_an_agents_error() -> None:
    error = "/v1/load_lora_adapter commerce: HTTP 400 LoRA rank 64 is greater than max_lora_rank 32."
    obj = modeldeployment(
        stable=revision("s1", 50, "v1"),
        canary=revision("c1", 50, "v2"),
        analysis={"step": 0, "metrics": []},
        replicas=[
            {"pod": "agent-b-0", "revision": "c1", "wanted": "c1", "ready": True},
            {"pod": "agent-b-1", "revision": "s1", "wanted": "s1", "ready": True},
            {"pod": "agent-b-2", "revision": "s1", "wanted": "c1", "ready": False, "message": error},
        ],
        conditions=[cond("AdaptersLoaded", "False", "AdapterLoadFailed", f"agent-b-2: {error}")],
    )
    text = cli_format.format_canary(obj, NOW)
    assert "AdaptersLoaded=False (AdapterLoadFailed)" in text.splitlines()[0]
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("agent-b-")}
    assert "c1 (canary)" in lines["agent-b-0"] and "s1 (stable)" in lines["agent-b-1"]
    assert lines["agent-b-2"].split()[3:5] == ["c1", "no"] and error in lines["agent-b-2"]
    assert f"AdaptersLoaded (AdapterLoadFailed): agent-b-2: {error}" in " ".join(text.split())


def test_the_canary_view_prices_a_million_output_tokens_per_side_once_measured() -> None:
    measured = copy.deepcopy(CANARY)
    cost = measured["status"]["estimatedMonthlyCost"]
    cost["stable"] |= {"outputTokensPerSecond": 900.0, "costPerMillionTokens": 2.47}
    cost["canary"] |= {"outputTokensPerSecond": 450.5, "costPerMillionTokens": 4.93}
    text = cli_format.format_canary(measured, NOW)
    assert text.rstrip().endswith(
        "cost per million output tokens at this step: stable $2.47 (900.0 tokens/s), canary $4.93 (450.5 tokens/s)"
    )
    assert "cost per million" not in cli_format.format_canary(CANARY, NOW)  # not measured: no line
