"""A 2-node trial through the real JobSet controller (sigs.k8s.io/jobset, built from the Go module proxy at
the pinned version, its webhooks served on loopback: testworld/controllers.py).

The operator creates the JobSet; JobSet's webhook defaults it and its controller creates the Indexed Job and
the headless Service; the real Job controller creates one pod per node and the real scheduler places them on
the fake H100 nodes; the kubelet stand-in plays both pods: each runs the pod's own command (torchrun, node
rank from the Job's completion index, master address the DNS name of pod 0 under the JobSet's Service,
resolved to pod 0's loopback IP), so the two pods train the tiny Llama data-parallel over gloo across their
two IPs. Global rank 0 alone writes the result."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_finetune_e2e import condition, ftj, sweep, workspace

from testworld import controllers
from testworld.cluster import LocalCluster, OperatorProcess
from testworld.kubelet import Kubelet


@pytest.fixture(scope="module")
def jobset(cluster: LocalCluster) -> Iterator[controllers.JobSetController]:
    controller = controllers.JobSetController(cluster, controllers.build("jobset"))
    try:
        yield controller.start()
    finally:
        controller.stop()


def test_a_two_node_trial_trains_on_both_pods_through_jobset_and_rank_zero_alone_reports(
    cluster: LocalCluster,
    operator: OperatorProcess,
    kubelet: Kubelet,
    jobset: controllers.JobSetController,
    namespace: str,
    tiny_model: Path,
) -> None:
    root = workspace(cluster, namespace, tiny_model)
    manifest = sweep(
        "ddp",
        resources={"gpuType": "H100", "gpusPerTrial": 1, "nodes": 2},
        sweep={"maxTrials": 1, "parallelism": 1, "parameters": {}},
    )
    # 8 = 2 per micro batch x 2 accumulated x 2 processes (one per pod).
    manifest["spec"]["training"].update({"maxSteps": 4, "globalBatchSize": 8, "microBatchSize": 2})
    cluster.apply(manifest, namespace)
    cluster.kubectl("wait", "--for=condition=Succeeded", "ftj/ddp", "-n", namespace, "--timeout=600s", timeout=620)

    # The real controller ran it: JobSet's own status, its Job and its headless Service.
    js = cluster.get("jobset", "ddp-t00", "-n", namespace)
    assert condition(js, "Completed").get("status") == "True", controllers.dump(js.get("status"))
    jobs = cluster.get("jobs", "-n", namespace)["items"]
    assert [j["metadata"]["name"] for j in jobs] == ["ddp-t00-trainer-0"]
    assert jobs[0]["metadata"]["ownerReferences"][0]["kind"] == "JobSet"
    service = cluster.get("service", "ddp-t00", "-n", namespace)
    assert service["spec"]["clusterIP"] == "None"  # headless: the pods' DNS names

    pods = sorted(cluster.get("pods", "-n", namespace)["items"], key=lambda p: p["spec"]["hostname"])
    assert [p["spec"]["hostname"] for p in pods] == ["ddp-t00-trainer-0-0", "ddp-t00-trainer-0-1"]
    assert all(p["spec"]["subdomain"] == "ddp-t00" and p["status"]["phase"] == "Succeeded" for p in pods)
    ips = {p["status"]["podIP"] for p in pods}
    assert len(ips) == 2 and all(ip.startswith("127.1.") for ip in ips)
    messages = [p["status"]["containerStatuses"][0]["state"]["terminated"].get("message", "") for p in pods]
    result: dict[str, Any] = json.loads(messages[0])
    assert result["status"] == "succeeded", messages[0]
    assert messages[1] == "", "rank 1 writes no result"

    status = ftj(cluster, "ddp", namespace)["status"]
    assert status["trialCounts"]["succeeded"] == 1 and status["champion"]["trial"] == "ddp-t00"
    row = status["trials"][0]
    assert row["state"] == "Succeeded" and row["validationLoss"] is not None
    adapter = root / row["adapterUri"].removeprefix("pvc://work/")
    metrics = json.loads((adapter.parent / "metrics.json").read_text())
    assert metrics["distributed"] == {"launcher": "torchrun", "worldSize": 2, "nodes": 2, "processesPerNode": 1}
    assert metrics["observed"]["dataParallelSize"] == 2 and metrics["steps"] == 4
    assert (adapter / "adapter_model.safetensors").is_file()
    # One result: one adapter folder, one metrics file, written by rank 0.
    assert len(list((root / "adapters").glob("*/ddp-t00/metrics.json"))) == 1
    # The two launchers met at pod 0's address (the stand-in resolved the JobSet's DNS name to it).
    log1 = kubelet.root / namespace / pods[1]["metadata"]["name"] / "trainer.log"
    assert pods[0]["status"]["podIP"] in " ".join(_argv_of(kubelet, namespace, pods[1])), log1


def _argv_of(kubelet: Kubelet, namespace: str, pod: dict[str, Any]) -> list[str]:
    running = next(p for p in kubelet.pods.values() if p.uid == pod["metadata"]["uid"])
    return [str(a) for a in running.procs["trainer"].args]
