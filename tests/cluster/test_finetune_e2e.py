"""FineTuneJob end to end on the local cluster: real scheduler, Job controller and garbage collector,
the operator under the chart's identity, and trial pods run by the kubelet harness with the real
trial runner (hf backend, tiny Llama, CPU)."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from testworld.cluster import REPO, TOOLS, LocalCluster, OperatorProcess, capture, local_volume, wait_for
from testworld.kubelet import Fault, Kubelet

DATASETS = REPO / "training-jobs" / "datasets" / "commerce"


def workspace(cluster: LocalCluster, namespace: str, tiny_model: Path) -> Path:
    """PVC `work`: the base model, the datasets, and the adapters the trials write."""
    root = local_volume(cluster, namespace, "work", TOOLS / "pvcs" / cluster.name / namespace / "work")
    (root / "models").mkdir(exist_ok=True)
    if not (root / "models" / "tiny").exists():
        (root / "models" / "tiny").symlink_to(tiny_model)
    shutil.copytree(DATASETS, root / "data", dirs_exist_ok=True)
    return root


def sweep(name: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "baseModel": {"name": "tiny-llama", "uri": "pvc://work/models/tiny"},
        "method": "sft",
        "backend": "hf",
        "dataset": {"train": "pvc://work/data/train.jsonl", "format": "chat", "validationFraction": 0.3},
        "lora": {"rank": 8, "alpha": 16, "targetModules": ["q_proj", "v_proj"]},
        "training": {
            "maxSteps": 3,
            "learningRate": 1e-3,
            "optimizer": "adamw",
            "globalBatchSize": 4,
            "microBatchSize": 2,
            "seqLength": 128,
            "precision": "fp32",
            "scheduler": {"warmupSteps": 1, "minLearningRate": 1e-5},
        },
        "sweep": {
            "maxTrials": 4,
            "parallelism": 2,
            "parameters": {
                "training.learningRate": {"values": [5e-4, 2e-3]},
                "training.optimizer": {"choices": ["adam", "adamw"]},
            },
        },
        "objective": {"metric": "validationLoss", "goal": "minimize"},
        "output": {"uri": "pvc://work/adapters"},
        "resources": {"gpuType": "H100", "gpusPerTrial": 1},
        "backoffLimit": 1,
        # The base model's evaluation is one more Job per sweep: tested in test_baseline_e2e.py and by the
        # restart test here; the other sweeps skip it to keep the suite short.
        "baseline": {"evaluate": False},
    }
    spec.update(overrides)
    return {"apiVersion": "adapterops.io/v1alpha1", "kind": "FineTuneJob", "metadata": {"name": name}, "spec": spec}


def ftj(cluster: LocalCluster, name: str, namespace: str) -> dict[str, Any]:
    return dict(cluster.get("ftj", name, "-n", namespace))


def trials_in_events(cluster: LocalCluster, namespace: str, reason: str) -> list[str]:
    """Trial names announced by Events of `reason` (one Event may name several), each time it is named."""
    messages = [e["message"] for e in cluster.get("events", "-n", namespace)["items"] if e["reason"] == reason]
    return [name for m in messages for name in re.findall(r"\b[a-z0-9-]+-t\d\d\b", m)]


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), {})


class ParallelismWatch:
    """Samples the trial Jobs the whole time: at no observation may more than `limit` be unfinished."""

    def __init__(self, cluster: LocalCluster, namespace: str, job: str) -> None:
        self.cluster, self.namespace, self.job = cluster, namespace, job
        self.max_seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            jobs = self.cluster.get("jobs", "-n", self.namespace, "-l", f"adapterops.io/finetunejob={self.job}")
            unfinished = [
                j
                for j in jobs.get("items", [])
                if not any(
                    c["type"] in ("Complete", "Failed") and c["status"] == "True"
                    for c in j.get("status", {}).get("conditions", [])
                )
            ]
            self.max_seen = max(self.max_seen, len(unfinished))
            time.sleep(0.2)

    def __enter__(self) -> ParallelismWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_sweep_reaches_succeeded_with_a_champion_whose_adapter_loads(
    cluster: LocalCluster, operator: OperatorProcess, kubelet: Kubelet, namespace: str, tiny_model: Path
) -> None:
    root = workspace(cluster, namespace, tiny_model)
    cluster.apply(sweep("sweep"), namespace)
    with ParallelismWatch(cluster, namespace, "sweep") as watch:
        running = lambda: ftj(cluster, "sweep", namespace).get("status", {}).get("trialCounts", {}).get("running")  # noqa: E731
        wait_for(running, 120, "a running trial")
        capture(cluster, "ftj", "sweep", namespace, "finetunejob/running")
        cluster.kubectl(
            "wait", "--for=condition=Succeeded", "ftj/sweep", "-n", namespace, "--timeout=600s", timeout=620
        )
    capture(cluster, "ftj", "sweep", namespace, "finetunejob/succeeded")
    obj = ftj(cluster, "sweep", namespace)
    status = obj["status"]
    assert status["state"] == "Succeeded" and status["progress"] == "4/4"
    assert status["trialCounts"] == {"total": 4, "pending": 0, "running": 0, "succeeded": 4, "failed": 0}
    assert watch.max_seen <= 2, f"{watch.max_seen} trials in flight with parallelism 2"
    losses = {t["name"]: t["validationLoss"] for t in status["trials"]}
    champion = status["champion"]
    assert champion["trial"] == min(losses, key=lambda n: (losses[n], n))
    adapter = root / champion["adapterUri"].removeprefix("pvc://work/")
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 8
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), adapter)
    get = cluster.kubectl("get", "ftj", "sweep", "-n", namespace).stdout
    assert "Succeeded" in get and "4/4" in get and champion["trial"] in get
    assert sorted(trials_in_events(cluster, namespace, "TrialStarted")) == [f"sweep-t0{i}" for i in range(4)]
    assert sorted(trials_in_events(cluster, namespace, "TrialSucceeded")) == [f"sweep-t0{i}" for i in range(4)]
    reasons = [e["reason"] for e in cluster.get("events", "-n", namespace)["items"]]
    assert "ChampionSelected" in reasons and "SweepSucceeded" in reasons


def test_a_failing_trial_is_retried_then_counted_failed_while_the_others_finish(
    cluster: LocalCluster, operator: OperatorProcess, kubelet: Kubelet, namespace: str, tiny_model: Path
) -> None:
    workspace(cluster, namespace, tiny_model)
    doomed = "flaky-t01"
    kubelet.inject(
        Fault(
            lambda pod: (
                pod["metadata"]["namespace"] == namespace
                and pod["metadata"]["labels"].get("adapterops.io/trial") == doomed
            )
        )
    )
    cluster.apply(sweep("flaky", backoffLimit=1), namespace)
    cluster.kubectl("wait", "--for=condition=Succeeded", "ftj/flaky", "-n", namespace, "--timeout=600s", timeout=620)
    status = ftj(cluster, "flaky", namespace)["status"]
    rows = {t["name"]: t for t in status["trials"]}
    assert rows[doomed]["state"] == "Failed" and rows[doomed]["attempts"] == 2
    assert "exit code 137 (OOMKilled)" in rows[doomed]["message"]
    assert status["trialCounts"]["succeeded"] == 3 and status["champion"]["trial"] != doomed
    assert trials_in_events(cluster, namespace, "TrialFailed") == [doomed]
    failed = [e for e in cluster.get("events", "-n", namespace)["items"] if e["reason"] == "TrialFailed"]
    assert failed[0]["type"] == "Warning" and "OOMKilled" in failed[0]["message"]


def test_operator_restart_mid_sweep_duplicates_nothing_and_converges(
    cluster: LocalCluster, operator: OperatorProcess, kubelet: Kubelet, namespace: str, tiny_model: Path
) -> None:
    workspace(cluster, namespace, tiny_model)
    cluster.apply(sweep("restart", baseline={"evaluate": True}), namespace)
    wait_for(lambda: len(cluster.get("jobs", "-n", namespace)["items"]) >= 2, 60, "the first trial Jobs")
    first_uids = {j["metadata"]["name"]: j["metadata"]["uid"] for j in cluster.get("jobs", "-n", namespace)["items"]}
    operator.kill()
    try:
        wait_for(
            lambda: any(j.get("status", {}).get("succeeded") for j in cluster.get("jobs", "-n", namespace)["items"]),
            300,
            "a trial to finish while the operator is down",
        )
    finally:
        operator.start()
    cluster.kubectl("wait", "--for=condition=Succeeded", "ftj/restart", "-n", namespace, "--timeout=600s", timeout=620)
    jobs = cluster.get("jobs", "-n", namespace)["items"]
    # The four trials and, once they had finished, the base model's evaluation: each exactly once.
    assert sorted(j["metadata"]["name"] for j in jobs) == ["restart-baseline"] + [f"restart-t0{i}" for i in range(4)]
    assert all(
        first_uids[n] == u for n, u in ((j["metadata"]["name"], j["metadata"]["uid"]) for j in jobs) if n in first_uids
    )
    status = ftj(cluster, "restart", namespace)["status"]
    assert status["trialCounts"]["succeeded"] == 4 and all(
        t.get("validationLoss") is not None for t in status["trials"]
    )
    assert sorted(trials_in_events(cluster, namespace, "TrialStarted")) == [f"restart-t0{i}" for i in range(4)]


def test_deleting_the_finetunejob_removes_its_jobs_and_pods_but_keeps_adapters(
    cluster: LocalCluster, operator: OperatorProcess, kubelet: Kubelet, namespace: str, tiny_model: Path
) -> None:
    root = workspace(cluster, namespace, tiny_model)
    cluster.apply(sweep("gone", sweep={"maxTrials": 1, "parallelism": 1}), namespace)
    cluster.kubectl("wait", "--for=condition=Succeeded", "ftj/gone", "-n", namespace, "--timeout=300s", timeout=320)
    assert cluster.get("jobs", "-n", namespace)["items"] and cluster.get("pods", "-n", namespace)["items"]
    cluster.kubectl("delete", "ftj", "gone", "-n", namespace, "--wait=true")
    wait_for(lambda: not cluster.get("jobs", "-n", namespace)["items"], 60, "garbage collection of trial Jobs")
    wait_for(lambda: not cluster.get("pods", "-n", namespace)["items"], 60, "garbage collection of trial pods")
    wait_for(
        lambda: not cluster.get("configmaps", "-n", namespace, "-l", "adapterops.io/finetunejob=gone")["items"],
        60,
        "trial specs",
    )
    assert list((root / "adapters").glob("gone-*/gone-t00/adapter/adapter_config.json")), "the adapter was deleted"


@pytest.mark.parametrize(
    ("patch", "reason", "message"),
    [
        (
            {"resources": {"gpuType": "H100", "queueName": "gpu-team"}},
            "KueueNotInstalled",
            "spec.resources.queueName: 'gpu-team' names a Kueue LocalQueue",
        ),
        (
            {"resources": {"gpuType": "H100", "gpusPerTrial": 8, "nodes": 2}},
            "NoDistributedEngine",
            "spec.resources.nodes: 2",
        ),
    ],
)
def test_what_cel_cannot_check_is_refused_and_nothing_is_created(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str, patch: dict[str, Any], reason: str, message: str
) -> None:
    cluster.apply(sweep("refused", **patch), namespace)
    # Level-based: whatever the operator saw first, it settles on what the cluster has (no Kueue, no engine).
    refused = lambda: (c := condition(ftj(cluster, "refused", namespace), "Accepted")).get("status") == "False" and c  # noqa: E731
    cond = wait_for(refused, 45, "Accepted=False")
    assert cond["reason"] == reason and message in cond["message"]
    assert not cluster.get("jobs", "-n", namespace)["items"]
    capture(cluster, "ftj", "refused", namespace, f"finetunejob/refused-{reason}")


def test_suspend_starts_no_trials_and_resume_starts_them(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    cluster.apply(sweep("paused", suspend=True), namespace)
    suspended = lambda: condition(ftj(cluster, "paused", namespace), "Suspended")  # noqa: E731
    cond = wait_for(lambda: suspended().get("status") == "True" and suspended(), 30, "Suspended")
    assert cond["reason"] == "SuspendedBySpec" and ftj(cluster, "paused", namespace)["status"]["state"] == "Suspended"
    capture(cluster, "ftj", "paused", namespace, "finetunejob/suspended")
    assert not cluster.get("jobs", "-n", namespace)["items"]
    cluster.kubectl("patch", "ftj", "paused", "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": false}}')
    wait_for(lambda: len(cluster.get("jobs", "-n", namespace)["items"]) == 2, 30, "two trials to start (parallelism 2)")
    assert suspended()["status"] == "False"


def test_a_sweep_whose_every_trial_fails_is_failed_without_retrying_bad_data(
    cluster: LocalCluster, operator: OperatorProcess, kubelet: Kubelet, namespace: str, tiny_model: Path
) -> None:
    workspace(cluster, namespace, tiny_model)
    two = {"maxTrials": 2, "parallelism": 2, "parameters": {"training.learningRate": {"values": [1e-3, 2e-3]}}}
    bad = sweep("doomed", backoffLimit=3, sweep=two)
    bad["spec"]["dataset"]["train"] = "pvc://work/data/missing.jsonl"
    cluster.apply(bad, namespace)
    cluster.kubectl("wait", "--for=condition=Failed", "ftj/doomed", "-n", namespace, "--timeout=300s", timeout=320)
    obj = ftj(cluster, "doomed", namespace)
    assert obj["status"]["state"] == "Failed" and condition(obj, "Failed")["reason"] == "AllTrialsFailed"
    for row in obj["status"]["trials"]:
        # exit 2 (permanent): the pod failure policy fails the Job at once, backoffLimit 3 notwithstanding
        assert row["attempts"] == 1 and row["message"].startswith("DatasetNotFound: pvc://work/data/missing.jsonl")
    capture(cluster, "ftj", "doomed", namespace, "finetunejob/failed")
