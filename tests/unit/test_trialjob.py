"""The trial Job builder: placement from the GPU class, the mounted trial spec, owner reference, Kueue."""

from __future__ import annotations

import json
from typing import Any

from adapterops.api.finetunejob import FineTuneJobSpec
from adapterops.config import Config, GpuClass
from adapterops.finetune import builders as trialjob
from adapterops.finetune.plan import plan

CONFIG = Config(
    gpu_classes={
        "H100": GpuClass.model_validate(
            {
                "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "pricePerHour": 4.5,
                "memoryGiB": 80,
            }
        )
    },
    pod_labels={"team": "ml"},
)
OWNER: dict[str, Any] = {
    "apiVersion": "adapterops.io/v1alpha1",
    "kind": "FineTuneJob",
    "metadata": {"name": "sweep", "namespace": "ml", "uid": "1234"},
}


def spec(**extra: Any) -> FineTuneJobSpec:
    doc = {
        "baseModel": {"name": "tiny", "uri": "pvc://models/tiny"},
        "method": "sft",
        "dataset": {"train": "pvc://data/train.jsonl"},
        "training": {"maxSteps": 10},
        "objective": {"metric": "validationLoss", "goal": "minimize"},
        "output": {"uri": "pvc://adapters/runs"},
        "resources": {"gpuType": "H100", "gpusPerTrial": 2, "priorityClassName": "training"},
        "sweep": {"parameters": {"training.learningRate": {"values": [1e-4, 2e-4]}}},
        **extra,
    }
    return FineTuneJobSpec.model_validate(doc)


def test_job_is_placed_on_the_gpu_class_and_requests_its_gpus() -> None:
    s = spec()
    job = trialjob.trial_job(OWNER, plan("sweep", s)[1], s, CONFIG)
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert job["metadata"]["name"] == "sweep-t01" and job["spec"]["suspend"] is False
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu" and pod["priorityClassName"] == "training"
    assert (
        container["resources"]["limits"]["nvidia.com/gpu"] == "2"
        and container["resources"]["requests"]["nvidia.com/gpu"] == "2"
    )
    assert container["terminationMessagePath"] == "/dev/termination-log" and pod["restartPolicy"] == "Never"
    assert job["metadata"]["ownerReferences"][0] == {
        "apiVersion": "adapterops.io/v1alpha1",
        "kind": "FineTuneJob",
        "name": "sweep",
        "uid": "1234",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert job["spec"]["template"]["metadata"]["labels"]["team"] == "ml"
    assert json.loads(job["metadata"]["annotations"]["adapterops.io/parameters"]) == {"training.learningRate": 2e-4}


def test_pvc_uris_are_mounted_and_only_the_output_is_writable() -> None:
    s = spec()
    pod = trialjob.trial_job(OWNER, plan("sweep", s)[0], s, CONFIG)["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m.get("readOnly", False) for m in pod["containers"][0]["volumeMounts"]}
    assert (
        mounts["/mnt/pvc/models"] is True and mounts["/mnt/pvc/data"] is True and mounts["/mnt/pvc/adapters"] is False
    )
    assert mounts["/etc/adapterops"] is True


def test_trial_spec_configmap_holds_each_trials_values_and_output() -> None:
    s = spec()
    trials = plan("sweep", s)
    (cm,) = trialjob.trials_configmaps(OWNER, trials, s)
    doc = json.loads(cm["data"]["sweep-t01.json"])
    assert doc["training"]["learningRate"] == 2e-4 and doc["outputUri"] == "pvc://adapters/runs/sweep-1234/sweep-t01"
    assert doc["finetuneJob"] == "ml/sweep" and doc["backend"] == "nemo"


def test_dpo_runs_on_the_hf_backend() -> None:
    s = spec(method="dpo", dataset={"train": "pvc://data/pairs.jsonl", "format": "preference"})
    (cm,) = trialjob.trials_configmaps(OWNER, plan("sweep", s), s)
    assert json.loads(cm["data"]["sweep-t00.json"])["backend"] == "hf"
    job = trialjob.trial_job(OWNER, plan("sweep", s)[0], s, CONFIG)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == CONFIG.trainer_image_hf


def test_a_queue_makes_the_job_suspended_for_kueue() -> None:
    s = spec(resources={"gpuType": "H100", "queueName": "gpu-team"})
    job = trialjob.trial_job(OWNER, plan("sweep", s)[0], s, CONFIG)
    assert job["spec"]["suspend"] is True and job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-team"


def test_judge_api_key_is_mounted_from_its_secret_never_inlined() -> None:
    s = spec(
        objective={"metric": "judgeScore", "goal": "maximize"},
        evaluation={
            "dataset": "pvc://data/c.jsonl",
            "judge": {"endpoint": "http://j/v1", "model": "m", "apiKeySecretRef": {"name": "judge", "key": "token"}},
        },
    )
    pod = trialjob.trial_job(OWNER, plan("sweep", s)[0], s, CONFIG)["spec"]["template"]["spec"]
    secret = next(v for v in pod["volumes"] if v["name"] == "judge-api-key")["secret"]
    assert secret == {"secretName": "judge", "items": [{"key": "token", "path": "api-key"}]}
    assert {"name": "ADAPTEROPS_JUDGE_API_KEY_FILE", "value": "/var/run/secrets/adapterops/judge/api-key"} in pod[
        "containers"
    ][0]["env"]


def test_permanent_runner_errors_fail_the_job_without_retries() -> None:
    s = spec()
    rules = trialjob.trial_job(OWNER, plan("sweep", s)[0], s, CONFIG)["spec"]["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJob" and rules[0]["onExitCodes"]["values"] == [trialjob.EXIT_PERMANENT]


def test_pytorchjob_has_a_master_and_workers_running_torchrun() -> None:
    s = spec(resources={"gpuType": "H100", "gpusPerTrial": 4, "nodes": 3})
    job = trialjob.trial_pytorchjob(OWNER, plan("sweep", s)[0], s, CONFIG)
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1 and replicas["Worker"]["replicas"] == 2
    container = replicas["Worker"]["template"]["spec"]["containers"][0]
    assert container["name"] == "pytorch" and container["command"][:4] == [
        "torchrun",
        "--nnodes=3",
        "--nproc-per-node=4",
        "--node-rank=$(RANK)",
    ]
    assert job["metadata"]["ownerReferences"][0]["uid"] == "1234"


def test_trial_specs_are_shared_out_so_no_configmap_passes_its_size_limit_and_each_pod_mounts_its_own() -> None:
    evaluation = {
        "dataset": "pvc://data/challenge.jsonl",
        "rubric": {"text": "Score 0-5. " + "Consider relevance, grounding and format. " * 380},  # ~16 KiB
        "judge": {"endpoint": "https://integrate.api.nvidia.com/v1", "model": "judge"},
    }
    sweep = {
        "strategy": "random",
        "maxTrials": 100,
        "parallelism": 4,
        "parameters": {"training.learningRate": {"min": 1e-5, "max": 1e-3, "scale": "log"}},
    }
    s = spec(evaluation=evaluation, sweep=sweep, objective={"metric": "judgeScore", "goal": "maximize"})
    trials = plan("sweep", s)
    configmaps = trialjob.trials_configmaps(OWNER, trials, s)
    assert len(configmaps) > 1  # 100 x ~17 KiB would be ~1.7 MiB in one
    for cm in configmaps:
        assert len(json.dumps(cm["data"]).encode()) < 1024 * 1024
    holder = {key: cm["metadata"]["name"] for cm in configmaps for key in cm["data"]}
    assert len(holder) == 100
    for trial in trials:
        mounted = trialjob.trial_job(OWNER, trial, s, CONFIG)["spec"]["template"]["spec"]["volumes"][0]["configMap"]
        assert mounted["name"] == holder[f"{trial.name}.json"]
    assert [cm["metadata"]["name"] for cm in configmaps][:2] == ["sweep-trials", "sweep-trials-1"]


def test_the_trial_specs_hash_follows_a_change_of_the_spec() -> None:
    before = trialjob.trials_configmaps(OWNER, plan("sweep", spec()), spec())[0]
    more_gpus = spec(resources={"gpuType": "H100", "gpusPerTrial": 4, "priorityClassName": "training"})
    after = trialjob.trials_configmaps(OWNER, plan("sweep", more_gpus), more_gpus)[0]
    key = trialjob.CONTENT_HASH
    assert before["metadata"]["annotations"][key] != after["metadata"]["annotations"][key]
    assert json.loads(after["data"]["sweep-t00.json"])["gpus"] == 4
