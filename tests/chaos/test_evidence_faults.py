"""Faults of what the decisions rest on: Prometheus stopped mid-analysis, and the LLM judge answering
garbage, failing with 500s or hanging. No promotion and no champion on missing or bad evidence: the canary
holds and says why, and reaches its verdict once the evidence is back; trials report a judge that failed
them, and a sweep without a judged trial has no champion."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chaos_helpers import (
    CanaryTrail,
    Ledger,
    canary_world,
    check_promoted,
    figure,
    small_sweep,
    small_workspace,
    wait_canary_step,
    wait_promoted,
)
from test_finetune_e2e import condition, ftj
from test_modeldeployment_e2e import change, cond, deployment, events, fake_adapter, mdep, serving_ready

from testworld.cluster import LocalCluster, OperatorProcess, wait_for
from testworld.judge import StandInJudge
from testworld.kubelet import Kubelet
from testworld.prometheus import Prometheus
from testworld.traffic import Traffic


def holding(cluster: LocalCluster, namespace: str, name: str, *words: str) -> dict[str, Any] | None:
    """The Suspended condition, when the canary holds for want of a verdict and the message has `words`."""
    c = cond(mdep(cluster, name, namespace), "Suspended")
    if c.get("status") == "True" and c["reason"] == "AnalysisInconclusive" and all(w in c["message"] for w in words):
        return c
    return None


@pytest.fixture
def judge_modes(judge: StandInJudge) -> Iterator[dict[str, str]]:
    """The session judge's per-model fault modes, cleared afterwards."""
    yield judge.modes
    judge.modes.clear()


def test_a_canary_holds_while_prometheus_is_down_and_is_promoted_once_it_is_back(
    cluster: LocalCluster, operator: OperatorProcess, kubelet: Kubelet, prometheus: Prometheus, namespace: str
) -> None:
    root = canary_world(cluster, namespace)
    cluster.apply(deployment("blind", fake_adapter(root, "v1")), namespace)
    first = serving_ready(cluster, "blind", namespace)["status"]["stable"]["revision"]
    traffic = Traffic(cluster, namespace, "blind", "commerce").start()
    try:
        with Ledger(cluster, namespace) as ledger, CanaryTrail(cluster, namespace, "blind") as trail:
            change(cluster, "blind", namespace, {"adapters": [{"name": "commerce", "uri": fake_adapter(root, "v2")}]})
            wait_canary_step(cluster, namespace, "blind")
            prometheus.stop()
            stopped = time.monotonic()
            try:
                held = wait_for(lambda: holding(cluster, namespace, "blind", "Prometheus"), 120, "the canary to hold")
                figure("Prometheus down", "canary holding, status says why", time.monotonic() - stopped)
            finally:
                prometheus.start(keep_data=True)  # restarted with its data, as from its volume
            back = time.monotonic()
            status = wait_promoted(cluster, namespace, "blind", first)
            figure("Prometheus down", "promoted after Prometheus restarted", time.monotonic() - back)
    finally:
        traffic.stop()
    assert "Prometheus" in held["message"] and "holding canary" in held["message"], held
    promoted = trail.promoted_at(first)
    assert promoted is not None and promoted > back, "promoted while Prometheus was down"
    check_promoted(status, ledger, "blind")
    holding_events = events(cluster, namespace, "CanaryHolding")
    assert holding_events and "Prometheus" in holding_events[0]["message"]
    assert events(cluster, namespace, "Promoted")


@pytest.mark.slow
def test_a_judge_answering_garbage_500s_or_nothing_holds_the_canary_until_it_recovers(
    cluster: LocalCluster,
    operator: OperatorProcess,
    kubelet: Kubelet,
    prometheus: Prometheus,
    judge: StandInJudge,
    judge_modes: dict[str, str],
    namespace: str,
) -> None:
    root = canary_world(cluster, namespace)
    md = deployment("judged", fake_adapter(root, "v1"), judge)
    model = md["spec"]["canary"]["analysis"]["judge"]["judge"]["model"] = f"canary-{namespace}"
    cluster.apply(md, namespace)
    first = serving_ready(cluster, "judged", namespace)["status"]["stable"]["revision"]
    traffic = Traffic(cluster, namespace, "judged", "commerce").start()
    seen: dict[str, dict[str, Any]] = {}
    try:
        with Ledger(cluster, namespace) as ledger, CanaryTrail(cluster, namespace, "judged") as trail:
            judge_modes[model] = "garbage"
            change(cluster, "judged", namespace, {"adapters": [{"name": "commerce", "uri": fake_adapter(root, "v2")}]})
            wait_canary_step(cluster, namespace, "judged")
            for mode, words in (
                ("garbage", ("judge invalid",)),
                ("server-error", ("judge unavailable", "HTTP 500")),
                ("hang", ("judge has not answered",)),
            ):
                judge_modes[model] = mode
                since, asked = time.monotonic(), judge.requests
                try:
                    seen[mode] = wait_for(
                        lambda w=words: holding(cluster, namespace, "judged", *w), 150, f"the canary to hold ({mode})"
                    )
                except TimeoutError as exc:  # say what the status said instead
                    obj = mdep(cluster, "judged", namespace)
                    said = {t: cond(obj, t) for t in ("Suspended", "Progressing")}
                    raise AssertionError(f"{exc}; status: {said}; operator: {operator.role()!r}") from exc
                figure("judge faults (canary)", f"holding, says why: {mode}", time.monotonic() - since)
                # Bounded retries: the same prompts again after a backoff, not a hot loop over the data set.
                seconds = time.monotonic() - since
                assert judge.requests - asked <= 20 + seconds, f"{judge.requests - asked} judge calls in {seconds:.0f}s"
            judge_modes.pop(model)
            back = time.monotonic()
            status = wait_promoted(cluster, namespace, "judged", first)
            figure("judge faults (canary)", "promoted after the judge recovered", time.monotonic() - back)
    finally:
        traffic.stop()
    promoted = trail.promoted_at(first)
    assert promoted is not None and promoted > back, "promoted while the judge failed"
    check_promoted(status, ledger, "judged")
    assert "judge" in status["history"][0]["reason"], status["history"][0]  # promoted on the judge's scores too
    holds = [e["message"] for e in events(cluster, namespace, "CanaryHolding")]
    assert holds and "judge" in holds[0], holds


@pytest.mark.slow
def test_trials_report_a_judge_that_fails_them_and_no_champion_is_chosen_without_a_score(
    cluster: LocalCluster,
    operator: OperatorProcess,
    kubelet: Kubelet,
    judge: StandInJudge,
    judge_modes: dict[str, str],
    namespace: str,
    tiny_model: Path,
) -> None:
    small_workspace(cluster, namespace, tiny_model)
    faults = {"garbage": "judge invalid: 0/3 scored", "server-error": "judge unavailable: 0/3 scored"}
    for mode in faults:
        name = f"judged-{mode}"
        judge_modes[f"trials-{namespace}-{mode}"] = mode
        sweep = small_sweep(name, [1e-3], parallelism=1)
        sweep["spec"]["objective"] = {"metric": "judgeScore", "goal": "maximize"}
        sweep["spec"]["evaluation"] = {
            "dataset": "pvc://work/data/challenge.jsonl",
            "samples": 3,
            "judge": {"endpoint": judge.url, "model": f"trials-{namespace}-{mode}"},
        }
        cluster.apply(sweep, namespace)
    follower = deployment("follower", "unused")
    follower["spec"]["adapters"] = [{"name": "commerce", "fineTuneJobRef": {"name": "judged-garbage"}}]
    cluster.apply(follower, namespace)
    for mode, message in faults.items():
        name = f"judged-{mode}"
        cluster.kubectl("wait", "--for=condition=Failed", f"ftj/{name}", "-n", namespace, "--timeout=400s", timeout=420)
        obj = ftj(cluster, name, namespace)
        (row,) = obj["status"]["trials"]
        assert row["state"] == "Succeeded" and row["attempts"] == 1 and "judgeScore" not in row, row
        assert row["message"].startswith(message), row["message"]
        assert "champion" not in obj["status"] and condition(obj, "Failed")["reason"] == "NoChampion"
        assert any(e["reason"] == "SweepFailed" for e in cluster.get("events", "-n", namespace)["items"])
        assert judge.by_model[(f"trials-{namespace}-{mode}", mode)] > 0, "the trial never asked the judge"
    # Nothing is served on a sweep without a judged trial.
    waiting = cond(mdep(cluster, "follower", namespace), "Progressing")
    assert waiting["reason"] == "WaitingForAdapters" and "no champion" in waiting["message"], waiting
    assert not cluster.get("deployments", "-n", namespace)["items"]
