"""Faults of the operator's own footing, injected mid-sweep and mid-canary at once: the leading replica
killed (kill -9) with a standby beside it, and the control plane's storage and front door (etcd and
kube-apiserver) crashed and restarted. Each costs a short delay and nothing else: every trial runs
exactly once with its result kept, the champion is right, and the canary is promoted on its evidence."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from chaos_helpers import (
    CanaryTrail,
    Ledger,
    canary_world,
    check_promoted,
    check_sweep,
    figure,
    leader_of,
    lease_holder,
    reconciles,
    small_sweep,
    small_workspace,
    trial_pods,
    wait_canary_step,
    wait_promoted,
    wait_succeeded,
)
from test_modeldeployment_e2e import change, deployment, fake_adapter, serving_ready

from testworld.cluster import LocalCluster, OperatorProcess, wait_for
from testworld.judge import StandInJudge
from testworld.kubelet import Kubelet
from testworld.prometheus import Prometheus
from testworld.traffic import Traffic

RATES = [5e-4, 1e-3, 2e-3]  # three trials, two at a time: one waits while the fault hits


@dataclass
class Scene:
    first: str = ""  # the stable revision the canary is tested against
    status: dict[str, Any] = field(default_factory=dict)  # the ModelDeployment's, once promoted


@contextmanager
def sweep_and_canary(cluster: LocalCluster, namespace: str, root: Path, judge: StandInJudge) -> Iterator[Scene]:
    """A sweep and a canary under way together in one namespace: the body injects the fault while a trial
    runs, another waits, and the canary serves its first step; on leaving, both are seen through."""
    scene = Scene()
    cluster.apply(deployment("agent", fake_adapter(root, "v1"), judge), namespace)
    scene.first = serving_ready(cluster, "agent", namespace)["status"]["stable"]["revision"]
    traffic = Traffic(cluster, namespace, "agent", "commerce").start()
    try:
        change(cluster, "agent", namespace, {"adapters": [{"name": "commerce", "uri": fake_adapter(root, "v2")}]})
        cluster.apply(small_sweep("sweep", RATES), namespace)
        wait_canary_step(cluster, namespace, "agent")
        wait_for(lambda: trial_pods(cluster, namespace, "sweep"), 240, "a trial pod running")
        yield scene
        scene.status = wait_promoted(cluster, namespace, "agent", scene.first)
        wait_succeeded(cluster, namespace, "sweep")
    finally:
        traffic.stop()


def leader_events(cluster: LocalCluster, namespace: str, identity: str) -> list[dict[str, Any]]:
    return [
        e
        for e in cluster.get("events", "-n", namespace)["items"]
        if e["reason"] == "LeaderElection" and identity in e["message"]
    ]


def test_the_standby_takes_over_a_sweep_and_a_canary_when_the_leader_is_killed(
    cluster: LocalCluster,
    chart: str,
    replicas: list[OperatorProcess],
    kubelet: Kubelet,
    prometheus: Prometheus,
    judge: StandInJudge,
    namespace: str,
    tiny_model: Path,
) -> None:
    root = canary_world(cluster, namespace, small_workspace(cluster, namespace, tiny_model))
    leader = wait_for(lambda: leader_of(cluster, chart, replicas), 60, "a leader")
    standby = next(r for r in replicas if r is not leader)
    wait_for(lambda: standby.role() == "standby", 60, "the standby to be ready")
    with (
        Ledger(cluster, namespace) as ledger,
        CanaryTrail(cluster, namespace, "agent") as trail,
        sweep_and_canary(cluster, namespace, root, judge) as scene,
    ):
        assert reconciles(standby) == 0, "a standby reconciled"
        leader.kill()
        killed = time.monotonic()
        wait_for(lambda: lease_holder(cluster, chart).startswith(f"{standby.pod_name}_"), 60, "the Lease to move")
        took = figure("leader kill -9", "Lease taken over by the standby", time.monotonic() - killed)
        wait_for(lambda: reconciles(standby) > 0, 60, "the new leader's first reconcile", interval=0.1)
        figure("leader kill -9", "new leader's first reconcile", time.monotonic() - killed)
        assert standby.role() == "leader"
    # client-go's defaults: the Lease runs out 15 s after the last renewal, candidates look every 2 s.
    assert took <= 15 + 2 + 5, f"takeover took {took:.1f}s"
    check_promoted(scene.status, ledger, "agent")
    check_sweep(cluster, namespace, "sweep", root, ledger)
    assert trail.stables() == [scene.first, scene.status["stable"]["revision"]], "stable flipped more than once"
    identity = lease_holder(cluster, chart)
    assert leader_events(cluster, chart, identity), "no Event on the Lease says who leads now"


@pytest.mark.slow
def test_an_api_server_and_etcd_crash_costs_a_sweep_and_a_canary_only_a_delay(
    cluster: LocalCluster,
    chart: str,
    replicas: list[OperatorProcess],
    kubelet: Kubelet,
    prometheus: Prometheus,
    judge: StandInJudge,
    namespace: str,
    tiny_model: Path,
) -> None:
    root = canary_world(cluster, namespace, small_workspace(cluster, namespace, tiny_model))
    wait_for(lambda: leader_of(cluster, chart, replicas), 60, "a leader")
    pids = [r.proc.pid for r in replicas if r.proc]
    with (
        Ledger(cluster, namespace) as ledger,
        CanaryTrail(cluster, namespace, "agent") as trail,
        sweep_and_canary(cluster, namespace, root, judge) as scene,
    ):
        cluster.crash("etcd", "kube-apiserver")
        crashed = time.monotonic()
        try:
            # Down for as long as a leader may go without renewing its lease: it must stop acting.
            wait_for(lambda: all(r.role() == "standby" for r in replicas), 30, "the leader to step down")
            figure("API server + etcd kill -9", "leader stepped down (cannot renew)", time.monotonic() - crashed)
        finally:
            cluster.start()
        back = time.monotonic()
        figure("API server + etcd kill -9", "outage (crash to API serving again)", back - crashed)
        leader = wait_for(lambda: leader_of(cluster, chart, replicas), 60, "a leader again")
        count = reconciles(leader)
        wait_for(lambda: reconciles(leader) > count, 60, "a reconcile after the outage", interval=0.1)
        figure("API server + etcd kill -9", "leader reconciling again (after API back)", time.monotonic() - back)
    assert [r.proc.pid for r in replicas if r.proc and r.running] == pids, "an operator replica restarted"
    check_promoted(scene.status, ledger, "agent")
    assert trail.stables() == [scene.first, scene.status["stable"]["revision"]], "stable flipped more than once"
    check_sweep(cluster, namespace, "sweep", root, ledger)
    assert leader_events(cluster, chart, lease_holder(cluster, chart))


@pytest.fixture(autouse=True)
def _cluster_whole(cluster: LocalCluster) -> Iterator[None]:
    """Whatever happens in a test here, the control plane serves again afterwards (the next tests need it)."""
    yield
    cluster.start()
