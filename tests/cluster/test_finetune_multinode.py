"""Multi-node trials go to JobSet when it is installed (the JobSet CRD from its pinned module; its
controller is not run here, so the trial stays pending: what is checked is what AdapterOps creates, and how it
reads a JobSet's failure). test_jobset_controller.py runs a 2-node trial through the real controller."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from test_finetune_e2e import condition, ftj, sweep

from testworld.cluster import LocalCluster, OperatorProcess, module_dir, wait_for

JOBSET_VERSION = "v0.11.1"


@pytest.fixture
def jobset_crd(cluster: LocalCluster) -> Iterator[None]:
    crd = module_dir("sigs.k8s.io/jobset", JOBSET_VERSION) / "config/components/crd/bases/jobset.x-k8s.io_jobsets.yaml"
    cluster.kubectl("apply", "--server-side", "-f", str(crd))
    try:
        established = lambda: any(  # noqa: E731
            c["type"] == "Established" and c["status"] == "True"
            for c in cluster.get("crd", "jobsets.jobset.x-k8s.io").get("status", {}).get("conditions", [])
        )
        wait_for(established, 30, "the JobSet CRD to be established")
        yield
    finally:
        cluster.kubectl("delete", "crd", "jobsets.jobset.x-k8s.io", "--wait=true", "--ignore-not-found")


def two_node_sweep(name: str) -> dict[str, Any]:
    """One trial of 2 nodes x 8 H100s."""
    return sweep(
        name,
        resources={"gpuType": "H100", "gpusPerTrial": 8, "nodes": 2},
        sweep={"maxTrials": 1, "parallelism": 1, "parameters": {}},
    )


def test_a_two_node_trial_is_a_jobset_with_one_indexed_pod_per_node(
    cluster: LocalCluster, operator: OperatorProcess, jobset_crd: None, namespace: str
) -> None:
    cluster.apply(two_node_sweep("multi"), namespace)
    jobset: dict[str, Any] = wait_for(
        lambda: (items := cluster.get("jobsets", "-n", namespace)["items"]) and items[0], 60, "the trial's JobSet"
    )
    assert jobset["metadata"]["name"] == "multi-t00"
    assert jobset["metadata"]["ownerReferences"][0]["kind"] == "FineTuneJob"
    assert jobset["spec"]["network"]["enableDNSHostnames"] is True
    trainer = jobset["spec"]["replicatedJobs"][0]["template"]["spec"]
    assert trainer["parallelism"] == trainer["completions"] == 2 and trainer["completionMode"] == "Indexed"
    pod = trainer["template"]["spec"]
    command = pod["containers"][0]["command"]
    assert command[:5] == [
        "torchrun",
        "--nnodes=2",
        "--nproc-per-node=8",
        "--node-rank=$(JOB_COMPLETION_INDEX)",
        "--master-addr=multi-t00-trainer-0-0.multi-t00",
    ]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert not cluster.get("jobs", "-n", namespace)["items"], "no plain Job for a multi-node trial"
    row = ftj(cluster, "multi", namespace)["status"]["trials"][0]
    assert row["state"] == "Pending" and condition(ftj(cluster, "multi", namespace), "Accepted")["status"] == "True"


def test_a_failed_jobset_fails_its_trial_and_removing_jobset_leaves_the_operator_running(
    cluster: LocalCluster, operator: OperatorProcess, jobset_crd: None, namespace: str
) -> None:
    cluster.apply(two_node_sweep("gone"), namespace)
    wait_for(lambda: cluster.get("jobsets", "-n", namespace)["items"], 60, "the trial's JobSet")
    # Play the JobSet controller: the trial's JobSet fails.
    failed = {"type": "Failed", "status": "True", "reason": "FailedJobs", "message": "jobset trainer failed"}
    failed["lastTransitionTime"] = "2026-01-01T00:00:00Z"
    cluster.kubectl(
        "patch", "jobset", "gone-t00", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"conditions": [failed]}}),
    )  # fmt: skip
    row = wait_for(
        lambda: (r := ftj(cluster, "gone", namespace)["status"]["trials"][0])["state"] == "Failed" and r,
        60,
        "the trial to fail with its JobSet",
    )
    assert "jobset trainer failed" in row["message"]
    # JobSet uninstalled while the operator runs: the operator stays up and keeps reconciling.
    cluster.kubectl("delete", "crd", "jobsets.jobset.x-k8s.io", "--wait=true")
    cluster.apply(sweep("after", sweep={"maxTrials": 1, "parallelism": 1, "parameters": {}}), namespace)
    wait_for(lambda: condition(ftj(cluster, "after", namespace), "Accepted"), 60, "the next FineTuneJob accepted")
    assert operator.healthy()
