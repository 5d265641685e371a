"""Sweeps with a queue, admitted by the real Kueue (sigs.k8s.io/kueue, built from the Go module proxy at the
pinned version, its webhooks served on loopback: testworld/controllers.py).

The operator creates each trial's Job suspended with Kueue's queue label; Kueue's webhook and controller make
it a Workload, its scheduler admits Workloads within the ClusterQueue's quota (un-suspending their Jobs) and
preempts by its own rules; the real Job controller, scheduler and the kubelet stand-in run the admitted trials
(the real trainer, hf backend, tiny Llama on CPU). Nothing here plays Kueue."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_finetune_e2e import ftj, sweep, workspace

from testworld import controllers
from testworld.cluster import LocalCluster, OperatorProcess, wait_for
from testworld.kubelet import Kubelet

H100 = "NVIDIA-H100-80GB-HBM3"
GPU = "nvidia.com/gpu"
LOW, HIGH = "adapterops-test-low", "adapterops-test-high"


@pytest.fixture(scope="module")
def kueue(cluster: LocalCluster) -> Iterator[controllers.KueueController]:
    controller = controllers.KueueController(cluster, controllers.build("kueue"), frameworks=("batch/job",))
    try:
        controller.start()
        cluster.apply(
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "ResourceFlavor",
                "metadata": {"name": "h100"},
                "spec": {"nodeLabels": {"nvidia.com/gpu.product": H100}},
            }
        )
        for name, value in ((LOW, 100), (HIGH, 1000)):
            cluster.apply(
                {
                    "apiVersion": "scheduling.k8s.io/v1",
                    "kind": "PriorityClass",
                    "metadata": {"name": name},
                    "value": value,
                }
            )
        yield controller
    finally:
        cluster.kubectl("delete", "priorityclass", LOW, HIGH, "--ignore-not-found", check=False)
        controller.stop()


def queue(cluster: LocalCluster, namespace: str, gpus: int, **cq_spec: Any) -> str:
    """A ClusterQueue of `gpus` H100s for this namespace alone, and its LocalQueue `gpu-team`."""
    name = f"cq-{namespace}"[:63]
    cluster.apply(
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": name},
            "spec": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory", GPU],
                        "flavors": [
                            {
                                "name": "h100",
                                "resources": [
                                    {"name": "cpu", "nominalQuota": "1000"},
                                    {"name": "memory", "nominalQuota": "100Ti"},
                                    {"name": GPU, "nominalQuota": str(gpus)},
                                ],
                            }
                        ],
                    }
                ],
                **cq_spec,
            },
        }
    )
    cluster.apply(
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": {"name": "gpu-team", "namespace": namespace},
            "spec": {"clusterQueue": name},
        }
    )
    active = lambda: any(  # noqa: E731
        c["type"] == "Active" and c["status"] == "True"
        for c in cluster.get("clusterqueue", name).get("status", {}).get("conditions", [])
    )
    wait_for(active, 60, f"ClusterQueue {name} active")
    return name


@pytest.fixture
def cluster_queues(cluster: LocalCluster) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for name in made:
        cluster.kubectl("delete", "clusterqueue", name, "--ignore-not-found", "--wait=false", check=False)


def running_jobs(cluster: LocalCluster, namespace: str, job: str | None = None) -> list[str]:
    """Trial Jobs admitted (not suspended) and not finished."""
    selector = ["-l", f"adapterops.io/finetunejob={job}"] if job else []
    items = cluster.get("jobs", "-n", namespace, *selector)["items"]
    return sorted(
        j["metadata"]["name"]
        for j in items
        if not j["spec"].get("suspend")
        and not any(
            c["type"] in ("Complete", "Failed") and c["status"] == "True"
            for c in j.get("status", {}).get("conditions", [])
        )
    )


class QuotaWatch:
    """Samples the namespace the whole time: the most trial Jobs admitted and unfinished, and trial pods not
    finished, at any one observation."""

    def __init__(self, cluster: LocalCluster, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.max_jobs = self.max_pods = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.max_jobs = max(self.max_jobs, len(running_jobs(self.cluster, self.namespace)))
            pods = self.cluster.get("pods", "-n", self.namespace)["items"]
            live = [p for p in pods if p.get("status", {}).get("phase") in ("Pending", "Running")]
            self.max_pods = max(self.max_pods, len(live))
            time.sleep(0.2)

    def __enter__(self) -> QuotaWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def rows(cluster: LocalCluster, name: str, namespace: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in ftj(cluster, name, namespace).get("status", {}).get("trials", [])}


def workload_condition(cluster: LocalCluster, namespace: str, trial: str, type_: str) -> dict[str, Any]:
    """The condition of the (newest) Workload Kueue made for a trial's Job."""
    workloads = [
        w
        for w in controllers.workloads(cluster, namespace)
        if any(o["kind"] == "Job" and o["name"] == trial for o in w["metadata"].get("ownerReferences", []))
    ]
    if not workloads:
        return {}
    newest = max(workloads, key=lambda w: w["metadata"]["creationTimestamp"])
    return next((c for c in newest.get("status", {}).get("conditions", []) if c["type"] == type_), {})


def test_a_queued_sweep_runs_within_the_cluster_queue_quota_and_the_rest_wait_with_kueues_reason(
    cluster: LocalCluster,
    operator: OperatorProcess,
    kubelet: Kubelet,
    kueue: controllers.KueueController,
    namespace: str,
    tiny_model: Path,
    cluster_queues: list[str],
) -> None:
    workspace(cluster, namespace, tiny_model)
    cluster_queues.append(queue(cluster, namespace, gpus=2))
    # Four trials, all allowed at once by the sweep: only the quota (2 GPUs, 1 per trial) holds them back.
    manifest = sweep(
        "queued",
        resources={"gpuType": "H100", "gpusPerTrial": 1, "queueName": "gpu-team"},
        sweep={
            "maxTrials": 4,
            "parallelism": 4,
            "parameters": {
                "training.learningRate": {"values": [5e-4, 2e-3]},
                "training.optimizer": {"choices": ["adam", "adamw"]},
            },
        },
    )
    with QuotaWatch(cluster, namespace) as watch:
        cluster.apply(manifest, namespace)
        # Two admitted; the other two wait, and their rows say why in Kueue's words.
        waiting = lambda: [  # noqa: E731
            r
            for r in rows(cluster, "queued", namespace).values()
            if "insufficient unused quota" in (r.get("message") or "")
        ]
        pending = wait_for(lambda: len(waiting()) == 2 and waiting(), 120, "two trials waiting for quota")
        for row in pending:
            assert row["state"] == "Pending"
            assert row["message"].startswith("waiting for Kueue to admit the Job: Pending: ")
            assert f"for {GPU} in flavor h100" in row["message"], row["message"]
            quota = workload_condition(cluster, namespace, row["name"], "QuotaReserved")
            assert quota.get("status") == "False" and quota.get("message", "") in row["message"]
        assert len(running_jobs(cluster, namespace)) == 2
        cluster.kubectl(
            "wait", "--for=condition=Succeeded", "ftj/queued", "-n", namespace, "--timeout=600s", timeout=620
        )
    assert watch.max_jobs == 2, f"{watch.max_jobs} trial Jobs admitted at once with a quota of 2 GPUs"
    assert watch.max_pods <= 2, f"{watch.max_pods} trial pods at once with a quota of 2 GPUs"
    status = ftj(cluster, "queued", namespace)["status"]
    assert status["trialCounts"]["succeeded"] == 4
    # Every trial went through Kueue: each has a Workload that was admitted and finished.
    for trial in rows(cluster, "queued", namespace):
        assert workload_condition(cluster, namespace, trial, "Admitted").get("status") == "True"
        assert workload_condition(cluster, namespace, trial, "Finished").get("status") == "True"


def test_a_higher_priority_sweep_preempts_a_lower_one_and_an_equal_one_does_not(
    cluster: LocalCluster,
    operator: OperatorProcess,
    kubelet: Kubelet,
    kueue: controllers.KueueController,
    namespace: str,
    tiny_model: Path,
    cluster_queues: list[str],
) -> None:
    workspace(cluster, namespace, tiny_model)
    # Kueue's rule here: within the ClusterQueue, a pending Workload may preempt admitted ones of lower priority.
    cluster_queues.append(queue(cluster, namespace, gpus=1, preemption={"withinClusterQueue": "LowerPriority"}))

    def one_trial(name: str, priority: str, steps: int) -> dict[str, Any]:
        resources = {"gpuType": "H100", "gpusPerTrial": 1, "queueName": "gpu-team", "priorityClassName": priority}
        manifest = sweep(name, resources=resources, sweep={"maxTrials": 1, "parallelism": 1, "parameters": {}})
        manifest["spec"]["training"]["maxSteps"] = steps
        return manifest

    # A long low-priority trial holds the one GPU.
    cluster.apply(one_trial("low", LOW, 100_000), namespace)
    wait_for(lambda: rows(cluster, "low", namespace).get("low-t00", {}).get("state") == "Running", 180, "low running")
    # Another of the same priority waits for quota and preempts nothing.
    cluster.apply(one_trial("peer", LOW, 3), namespace)
    peer = wait_for(
        lambda: (
            "insufficient unused quota"
            in (m := rows(cluster, "peer", namespace).get("peer-t00", {}).get("message") or "")
            and m
        ),
        120,
        "the equal-priority sweep waiting for quota",
    )
    assert peer.startswith("waiting for Kueue to admit the Job: Pending: ")
    assert workload_condition(cluster, namespace, "low-t00", "Evicted").get("status") != "True"
    assert running_jobs(cluster, namespace) == ["low-t00"]

    # A higher-priority sweep: Kueue evicts the low one (suspending its Job) and admits it instead.
    cluster.apply(one_trial("high", HIGH, 3), namespace)
    evicted = wait_for(
        lambda: (c := workload_condition(cluster, namespace, "low-t00", "Evicted")).get("status") == "True" and c,
        120,
        "the low-priority trial preempted",
    )
    assert evicted["reason"] == "Preempted", evicted
    preempted = workload_condition(cluster, namespace, "low-t00", "Preempted")
    assert preempted.get("status") == "True" and preempted.get("reason") == "InClusterQueue", preempted
    # The low trial is back to Pending, and its row gives Kueue's reason.
    low = wait_for(
        lambda: (
            (r := rows(cluster, "low", namespace).get("low-t00", {})).get("state") == "Pending"
            and "Preempted" in (r.get("message") or "")
            and r
        ),
        120,
        "the low trial's row to show the preemption",
    )
    assert low["message"].startswith("waiting for Kueue to admit the Job: Preempted: "), low["message"]
    cluster.kubectl("wait", "--for=condition=Succeeded", "ftj/high", "-n", namespace, "--timeout=600s", timeout=620)
    assert rows(cluster, "high", namespace)["high-t00"]["state"] == "Succeeded"
    # The peer never preempted anyone: it was never admitted while the high trial held the GPU.
    assert workload_condition(cluster, namespace, "high-t00", "Evicted").get("status") != "True"
    # With the GPU free again, Kueue admits one of the two waiting low-priority trials.
    wait_for(lambda: len(running_jobs(cluster, namespace)) == 1, 120, "a waiting trial admitted after the high one")
    assert running_jobs(cluster, namespace)[0] in ("low-t00", "peer-t00")
