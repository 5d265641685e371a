"""Faults of the sweep's own objects, mid-sweep: a trial's pod deleted and a trial's node deleted, the
FineTuneJob deleted and re-created under its name, the trials ConfigMap deleted. Every trial still runs
exactly once (a lost pod is replaced within backoffLimit, on a node that exists), every result is the
run's own, and no pod waits forever for its spec."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from chaos_helpers import (
    OWNER_UID,
    TRIAL,
    Ledger,
    check_sweep,
    figure,
    small_sweep,
    small_workspace,
    trial_pods,
    wait_succeeded,
)
from test_finetune_e2e import ftj

from testworld.cluster import LocalCluster, OperatorProcess, wait_for
from testworld.kubelet import Kubelet


def restore_node(cluster: LocalCluster, node: dict[str, Any]) -> None:
    """Create the node again as it was (kwok plays its kubelet once it exists), for the tests after this."""
    meta = node["metadata"]
    status = node.get("status") or {}
    body = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {k: meta[k] for k in ("name", "labels", "annotations") if k in meta},
        "spec": {k: v for k, v in (node.get("spec") or {}).items() if k == "taints"},
        "status": {k: status[k] for k in ("addresses", "allocatable", "capacity") if k in status},
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(body))
    cluster.kubectl("wait", "--for=condition=Ready", f"node/{meta['name']}", "--timeout=120s", timeout=130)


def replacement(cluster: LocalCluster, namespace: str, trial: str, gone: str) -> dict[str, Any] | None:
    """The trial's running pod other than `gone`."""
    pods = trial_pods(cluster, namespace, trial.rsplit("-t", 1)[0])
    return next((p for p in pods if p["metadata"]["labels"][TRIAL] == trial and p["metadata"]["uid"] != gone), None)


@pytest.mark.slow
def test_a_trial_whose_pod_or_node_is_lost_is_retried_elsewhere_within_its_backoff_limit(
    cluster: LocalCluster, operator: OperatorProcess, kubelet: Kubelet, namespace: str, tiny_model: Path
) -> None:
    root = small_workspace(cluster, namespace, tiny_model)
    with Ledger(cluster, namespace) as ledger:
        cluster.apply(small_sweep("lost", [5e-4, 2e-3], parallelism=2, backoffLimit=1), namespace)
        pods = wait_for(lambda: len(p := trial_pods(cluster, namespace, "lost")) == 2 and p, 240, "both trials running")
        first = {p["metadata"]["labels"][TRIAL]: p for p in pods}
        node_name = first["lost-t01"]["spec"]["nodeName"]
        node = cluster.get("node", node_name)
        try:
            assert kubelet.lose_node(node_name), f"nothing ran on {node_name}"
            cluster.kubectl("delete", "node", node_name)
            node_lost = time.monotonic()
            pod = first["lost-t00"]["metadata"]
            cluster.kubectl("delete", "pod", pod["name"], "-n", namespace, "--wait=false")
            pod_deleted = time.monotonic()
            wait_for(lambda: replacement(cluster, namespace, "lost-t00", pod["uid"]), 120, "t00 again")
            figure("trial pod deleted", "replacement pod running", time.monotonic() - pod_deleted)
            gone = first["lost-t01"]["metadata"]["uid"]
            again = wait_for(lambda: replacement(cluster, namespace, "lost-t01", gone), 180, "t01 again")
            figure("trial's node deleted", "replacement pod running on another node", time.monotonic() - node_lost)
            assert again["spec"]["nodeName"] != node_name
            wait_succeeded(cluster, namespace, "lost")
        finally:
            restore_node(cluster, node)
    status = check_sweep(cluster, namespace, "lost", root, ledger, pods={"lost-t00": 2, "lost-t01": 2})
    rows = {r["name"]: r for r in status["trials"]}
    assert rows["lost-t00"]["attempts"] == 2, rows  # a deleted pod is a failed attempt (one retry allowed)
    jobs = {j["metadata"]["name"]: j for j in cluster.get("jobs", "-n", namespace)["items"]}
    assert jobs["lost-t00"]["status"].get("failed") == 1
    # A node that went away is a disruption, not the trial's failure: it costs none of the trial's retries.
    assert not jobs["lost-t01"]["status"].get("failed"), jobs["lost-t01"]["status"]


@pytest.mark.slow
def test_a_finetunejob_deleted_and_recreated_under_its_name_keeps_nothing_of_the_old_run(
    cluster: LocalCluster, operator: OperatorProcess, kubelet: Kubelet, namespace: str, tiny_model: Path
) -> None:
    root = small_workspace(cluster, namespace, tiny_model)
    with Ledger(cluster, namespace) as ledger:
        cluster.apply(small_sweep("again", [5e-4, 2e-3], parallelism=1), namespace)
        wait_for(lambda: trial_pods(cluster, namespace, "again"), 240, "the first run's trial running")
        old_uid = ftj(cluster, "again", namespace)["metadata"]["uid"]
        cluster.kubectl("delete", "ftj", "again", "-n", namespace)  # its children go in the background
        cluster.apply(small_sweep("again", [1e-3, 3e-3], parallelism=2), namespace)
        recreated = time.monotonic()
        new_uid = ftj(cluster, "again", namespace)["metadata"]["uid"]
        assert new_uid != old_uid
        wait_succeeded(cluster, namespace, "again")
        figure("FineTuneJob deleted and re-created", "new run succeeded (2 trials)", time.monotonic() - recreated)
        wait_for(
            lambda: not cluster.get("jobs", "-n", namespace, "-l", f"{OWNER_UID}={old_uid}")["items"],
            120,
            "the old run's Jobs to be collected",
        )
    status = check_sweep(cluster, namespace, "again", root, ledger)
    assert ledger.per_trial("Job", old_uid), "the old run never started a trial: nothing was tested"
    assert {r["parameters"]["training.learningRate"] for r in status["trials"]} == {1e-3, 3e-3}
    assert all(f"/again-{new_uid[:8]}/" in r["adapterUri"] for r in status["trials"]), status["trials"]


@pytest.mark.slow
def test_a_deleted_trials_configmap_is_applied_again_and_no_trial_pod_is_left_stuck(
    cluster: LocalCluster, operator: OperatorProcess, kubelet: Kubelet, namespace: str, tiny_model: Path
) -> None:
    root = small_workspace(cluster, namespace, tiny_model)
    with Ledger(cluster, namespace) as ledger:
        cluster.apply(small_sweep("specs", [5e-4, 2e-3], parallelism=1), namespace)
        wait_for(lambda: trial_pods(cluster, namespace, "specs"), 240, "a trial running")
        old_uid = cluster.get("configmap", "specs-trials", "-n", namespace)["metadata"]["uid"]
        cluster.kubectl("delete", "configmap", "specs-trials", "-n", namespace)
        deleted = time.monotonic()
        # A trial starts at once: its pod may come before the ConfigMap does, and must wait for it, not fail.
        patch = json.dumps({"spec": {"sweep": {"parallelism": 2}}})
        cluster.kubectl("patch", "ftj", "specs", "-n", namespace, "--type=merge", "-p", patch)

        def applied_again() -> bool:
            found = cluster.kubectl("get", "configmap", "specs-trials", "-n", namespace, "-o", "json", check=False)
            return found.returncode == 0 and json.loads(found.stdout)["metadata"]["uid"] != old_uid

        wait_for(applied_again, 60, "the trials ConfigMap to be applied again")
        figure("trials ConfigMap deleted", "applied again", time.monotonic() - deleted)
        wait_succeeded(cluster, namespace, "specs")
    check_sweep(cluster, namespace, "specs", root, ledger)  # one pod per trial: none failed for want of its spec
    restored = [e for e in cluster.get("events", "-n", namespace)["items"] if e["reason"] == "TrialSpecsApplied"]
    assert restored and "specs-trials" in restored[0]["message"], restored
