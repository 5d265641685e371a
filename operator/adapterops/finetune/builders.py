"""Pure builders for a FineTuneJob's children: the trial-spec ConfigMap and one Job per trial.

`spec -> manifest dict`, no I/O. Names are deterministic (the sweep plan's trial names), every child
carries an owner reference to the FineTuneJob (garbage collection) and labels linking it to its job
and trial, so the operator can recompute everything from what exists.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

from adapterops.api.finetunejob import FineTuneJobSpec
from adapterops.api.kinds import owner_reference
from adapterops.api.names import DNS1123_SUBDOMAIN, child_name, claim_volume_name
from adapterops.config import Config, GpuClass
from adapterops.finetune.plan import PlannedTrial
from adapterops.podsecurity import container_security_context, empty_dir, pod_security_context, shared_memory
from adapterops_common.contract import (
    EXIT_PERMANENT,
    JUDGE_API_KEY_PATH,
    PVC_ROOT,
    TRIAL_SPEC_PATH,
    TRIAL_SPEC_VERSION,
    TrialSpec,
)

LABEL_JOB = "adapterops.io/finetunejob"
# The owner's UID: children are matched by it, so a job deleted and re-created under the same name never
# takes the old one's trials for its own.
LABEL_JOB_UID = "adapterops.io/finetunejob-uid"
LABEL_TRIAL = "adapterops.io/trial"
LABEL_COMPONENT = "adapterops.io/component"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
CONTAINER = "trainer"
TERMINATION_LOG = "/dev/termination-log"


# A ConfigMap holds at most 1 MiB; trial specs are shared out so each stays well under it, whatever the
# rubric's length and the number of trials.
TRIAL_SPECS_BUDGET = 900 * 1024
PARAMETERS_ALLOWANCE = 2048  # room for one trial's swept values beyond the job's own spec
CONTENT_HASH = "adapterops.io/content-hash"


def configmap_name(job_name: str, shard: int = 0) -> str:
    """`<job>-trials` (shard 0, the only one of most sweeps), `<job>-trials-1`, ... (DNS-1123 subdomains: an
    accepted job name always fits)."""
    return child_name(job_name, "-trials" + (f"-{shard}" if shard else ""), DNS1123_SUBDOMAIN.max_length)


def trials_per_shard(owner: dict[str, Any], spec: FineTuneJobSpec) -> int:
    """How many trial specs share one ConfigMap: from the size of a trial's spec without its swept values
    (every trial's is that plus its few values), so every builder computes the same layout."""
    base = PlannedTrial(index=0, name=child_name(owner["metadata"]["name"], "-t00", 63), parameters={})
    size = len(_trial_json(owner, base, spec)) + PARAMETERS_ALLOWANCE
    return max(1, TRIAL_SPECS_BUDGET // size)


def shard_of(owner: dict[str, Any], trial: PlannedTrial, spec: FineTuneJobSpec) -> int:
    return trial.index // trials_per_shard(owner, spec)


def _trial_json(owner: dict[str, Any], trial: PlannedTrial, spec: FineTuneJobSpec) -> str:
    return json.dumps(
        trial_spec(owner, trial, spec).model_dump(by_alias=True, exclude_none=True, mode="json"), sort_keys=True
    )


def output_uri(spec: FineTuneJobSpec, owner: dict[str, Any], trial: str) -> str:
    """<output.uri>/<job>-<uid prefix>/<trial>: a FineTuneJob re-created under the same name never
    overwrites the adapters of the one before (a ModelDeployment may still serve them)."""
    meta = owner["metadata"]
    return f"{spec.output.uri.rstrip('/')}/{meta['name']}-{meta['uid'][:8]}/{trial}"


def _wire(model: BaseModel | None, **exclude: Any) -> dict[str, Any] | None:
    """A CRD model as it goes on the wire (camelCase, unset optionals left out)."""
    if model is None:
        return None
    return model.model_dump(by_alias=True, exclude_none=True, mode="json", exclude=exclude or None)


def trial_spec(owner: dict[str, Any], trial: PlannedTrial, spec: FineTuneJobSpec) -> TrialSpec:
    """The contract's TrialSpec for one trial: the CRD's settings (defaults applied) dumped and validated into
    the contract, so a FineTuneJob field the contract lacks is an error here (and in the unit tests), never
    a setting dropped on the way to the trainer."""
    meta = owner["metadata"]
    s = trial.spec_of(spec)
    return TrialSpec.model_validate(
        {
            "apiVersion": TRIAL_SPEC_VERSION,
            "name": trial.name,
            "finetuneJob": f"{meta['namespace']}/{meta['name']}",
            "method": s.method,
            # NeMo 2's LLM collection has no DPO; the hf backend runs it (see training-jobs/README.md).
            "backend": "hf" if s.method == "dpo" else s.backend,
            "baseModel": _wire(s.base_model),
            "dataset": _wire(s.dataset),
            "lora": _wire(s.lora),
            "training": _wire(s.training),
            # The judge's API key reaches the pod as a mounted file (pod_template), not through the spec.
            "evaluation": _wire(s.evaluation, judge={"api_key_secret_ref"}),
            "outputUri": output_uri(spec, owner, trial.name),
            "parameters": trial.parameters,
            "gpus": s.resources.gpus_per_trial,
            "nodes": s.resources.nodes,
        }
    )


def baseline_spec(spec: FineTuneJobSpec) -> FineTuneJobSpec:
    """What the baseline Job runs: the job's spec on one node with the hf backend (an evaluation, no training:
    transformers loads the base model on any GPU, Megatron is not needed)."""
    return spec.model_copy(update={"backend": "hf", "resources": spec.resources.model_copy(update={"nodes": 1})})


def trials_configmaps(
    owner: dict[str, Any], trials: list[PlannedTrial], spec: FineTuneJobSpec, baseline: PlannedTrial | None = None
) -> list[dict[str, Any]]:
    """The trial specs of the sweep, one key per trial (and the baseline's), in as few ConfigMaps as fit
    (usually one): one object per sweep, not per trial. Each carries a hash of its content, so a copy out
    of step with the spec (or gone) is seen and applied again."""
    meta = owner["metadata"]
    per_shard = trials_per_shard(owner, spec)
    shards: dict[int, dict[str, str]] = {}
    for trial in trials:
        shards.setdefault(trial.index // per_shard, {})[f"{trial.name}.json"] = _trial_json(owner, trial, spec)
    if baseline is not None:
        shards.setdefault(baseline.index // per_shard, {})[f"{baseline.name}.json"] = _trial_json(
            owner, baseline, baseline_spec(spec)
        )
    out = []
    for shard, data in sorted(shards.items()):
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
        out.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": configmap_name(meta["name"], shard),
                    "namespace": meta["namespace"],
                    "labels": {LABEL_JOB: meta["name"], LABEL_JOB_UID: meta["uid"], LABEL_COMPONENT: "trial-specs"},
                    "annotations": {CONTENT_HASH: digest},
                    "ownerReferences": [owner_reference(owner)],
                },
                "data": data,
            }
        )
    return out


def _claim(uri: str) -> str:
    return uri.removeprefix("pvc://").split("/", 1)[0]


def _pvc_claims(spec: FineTuneJobSpec) -> tuple[set[str], set[str]]:
    """Claims named by pvc:// URIs: (read-only, read-write)."""
    inputs = [spec.base_model.uri, spec.dataset.train, spec.dataset.validation]
    if spec.evaluation:
        inputs.append(spec.evaluation.dataset)
    read = {_claim(u) for u in inputs if u and u.startswith("pvc://")}
    write = {_claim(spec.output.uri)} if spec.output.uri.startswith("pvc://") else set()
    return read - write, write


# CPU and memory scale with the GPUs a trial holds (data loading, tokenisation, checkpoints).
MEMORY_REQUEST_GIB_PER_GPU = 64


def _resources(gpus: int, gpu_class: GpuClass) -> dict[str, Any]:
    memory = f"{MEMORY_REQUEST_GIB_PER_GPU * gpus}Gi"
    requests = {gpu_class.resource_name: str(gpus), "cpu": str(8 * gpus), "memory": memory}
    return {"requests": requests, "limits": {gpu_class.resource_name: str(gpus), "memory": f"{96 * gpus}Gi"}}


def trainer_role(spec: FineTuneJobSpec) -> str:
    """The image role (config.CONTAINER_USERS) of the trial container: its backend's, image override or not."""
    return "trainerHf" if spec.backend == "hf" or spec.method == "dpo" else "trainerNemo"


def pod_template(owner: dict[str, Any], trial: PlannedTrial, spec: FineTuneJobSpec, config: Config) -> dict[str, Any]:
    meta = owner["metadata"]
    gpu_class = config.gpu_classes[spec.resources.gpu_type]
    user = config.container_users[trainer_role(spec)]
    read_claims, write_claims = _pvc_claims(spec)
    volumes: list[dict[str, Any]] = [
        {
            "name": "trial-spec",
            "configMap": {
                "name": configmap_name(meta["name"], shard_of(owner, trial, spec)),
                "items": [{"key": f"{trial.name}.json", "path": "trial.json"}],
            },
        },
        shared_memory(MEMORY_REQUEST_GIB_PER_GPU * spec.resources.gpus_per_trial),
        # HOME and the trial's scratch: the one writable path when the root filesystem is read-only.
        empty_dir("tmp", config.trial_scratch_size),
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "trial-spec", "mountPath": TRIAL_SPEC_PATH.rsplit("/", 1)[0], "readOnly": True},
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    for claim in sorted(read_claims | write_claims):
        volume = claim_volume_name(claim)
        volumes.append(
            {
                "name": volume,
                "persistentVolumeClaim": {"claimName": claim, "readOnly": claim not in write_claims},
            }
        )
        mounts.append({"name": volume, "mountPath": f"{PVC_ROOT}/{claim}", "readOnly": claim not in write_claims})
    env: list[dict[str, Any]] = [
        {"name": "ADAPTEROPS_PVC_ROOT", "value": PVC_ROOT},
        {"name": "HF_HUB_OFFLINE", "value": "1"},  # never fetch weights from a hub at run time
        {"name": "HOME", "value": "/tmp"},
    ]
    judge = spec.evaluation.judge if spec.evaluation else None
    if judge and judge.api_key_secret_ref:
        ref = judge.api_key_secret_ref
        volumes.append(
            {
                "name": "judge-api-key",
                "secret": {"secretName": ref.name, "items": [{"key": ref.key, "path": "api-key"}]},
            }
        )
        mounts.append({"name": "judge-api-key", "mountPath": JUDGE_API_KEY_PATH.rsplit("/", 1)[0], "readOnly": True})
        env.append({"name": "ADAPTEROPS_JUDGE_API_KEY_FILE", "value": JUDGE_API_KEY_PATH})
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image
        or (config.trainer_image_hf if spec.backend == "hf" or spec.method == "dpo" else config.trainer_image_nemo),
        "command": [
            "python",
            "-m",
            "adapterops_train",
            "run",
            "--spec",
            TRIAL_SPEC_PATH,
            "--termination-log",
            TERMINATION_LOG,
        ],
        "env": env,
        "resources": _resources(spec.resources.gpus_per_trial, gpu_class),
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
        "securityContext": container_security_context(user),
    }
    if spec.storage_secret_ref:
        container["envFrom"] = [{"secretRef": {"name": spec.storage_secret_ref.name}}]
    tolerations = [
        t.model_dump(by_alias=True, exclude_none=True) for t in gpu_class.tolerations + spec.resources.tolerations
    ]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": volumes,
        "nodeSelector": dict(gpu_class.node_selector),
        "tolerations": tolerations,
        "securityContext": pod_security_context(user.run_as_group),
        # A trial never calls the Kubernetes API. Workload identity (spec.serviceAccountName) still works:
        # EKS and Azure webhooks project their own cloud-audience token, GKE answers from its metadata server.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
    }
    if spec.resources.priority_class_name:
        pod_spec["priorityClassName"] = spec.resources.priority_class_name
    if spec.service_account_name:
        pod_spec["serviceAccountName"] = spec.service_account_name
    labels = {**config.pod_labels, **trial_labels(owner, trial.name)}
    return {"metadata": {"labels": labels}, "spec": pod_spec}


def trial_labels(owner: dict[str, Any], trial: str) -> dict[str, str]:
    return {
        LABEL_JOB: owner["metadata"]["name"],
        LABEL_JOB_UID: owner["metadata"]["uid"],
        LABEL_TRIAL: trial,
        LABEL_COMPONENT: "trial",
        "app.kubernetes.io/managed-by": "adapterops",
    }


def trial_job(owner: dict[str, Any], trial: PlannedTrial, spec: FineTuneJobSpec, config: Config) -> dict[str, Any]:
    meta = owner["metadata"]
    labels = trial_labels(owner, trial.name)
    queue = spec.resources.queue_name
    if queue:
        labels[KUEUE_QUEUE_LABEL] = queue
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": trial.name,
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": {"adapterops.io/parameters": json.dumps(trial.parameters, sort_keys=True)},
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {
            "backoffLimit": spec.backoff_limit,
            "activeDeadlineSeconds": spec.trial_deadline_seconds,
            # Kueue admits a suspended Job by quota and unsuspends it; AdapterOps schedules nothing itself.
            "suspend": bool(queue),
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [EXIT_PERMANENT]},
                    },
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]
            },
            "template": pod_template(owner, trial, spec, config),
        },
    }


def baseline_job(
    owner: dict[str, Any], baseline: PlannedTrial, spec: FineTuneJobSpec, config: Config, champion_uri: str | None
) -> dict[str, Any]:
    """The base model's evaluation: a trial pod's Job running `adapterops_train baseline` (no training) on the
    baseline's spec; with the champion's adapter it also judges champion against base model pairwise."""
    job = trial_job(owner, baseline, baseline_spec(spec), config)
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        labels[LABEL_COMPONENT] = "baseline"
    pod = job["spec"]["template"]["spec"]
    # Its spec lies in the ConfigMap the job's own spec shards it to (baseline_spec is only what it runs).
    pod["volumes"][0]["configMap"]["name"] = configmap_name(owner["metadata"]["name"], shard_of(owner, baseline, spec))
    command = ["python", "-m", "adapterops_train", "baseline", "--spec", TRIAL_SPEC_PATH]
    command += ["--termination-log", TERMINATION_LOG]
    if champion_uri:
        command += ["--champion-adapter", champion_uri]
    pod["containers"][0]["command"] = command
    job["metadata"]["annotations"] = {}
    return job


# --------------------------------------------------------------------------- multi-node trials
#
# A trial on several nodes runs on an existing distributed engine, never a home-made launcher: a JobSet
# (one Indexed Job, one pod per node, DNS hostnames for the rendezvous) or, where the Kubeflow Training
# Operator is installed instead, a PyTorchJob (which injects MASTER_ADDR / RANK / WORLD_SIZE itself).
# Each pod runs torchrun, which starts one process per GPU; rank 0 writes the result.

JOBSET_API = "jobset.x-k8s.io/v1alpha2"
PYTORCHJOB_API = "kubeflow.org/v1"
RENDEZVOUS_PORT = 29500


def _torchrun(spec: FineTuneJobSpec, master: str, node_rank: str) -> list[str]:
    return [
        "torchrun",
        f"--nnodes={spec.resources.nodes}",
        f"--nproc-per-node={spec.resources.gpus_per_trial}",
        f"--node-rank={node_rank}",
        f"--master-addr={master}",
        f"--master-port={RENDEZVOUS_PORT}",
        "-m",
        "adapterops_train",
        "run",
        "--spec",
        TRIAL_SPEC_PATH,
        "--termination-log",
        TERMINATION_LOG,
    ]


def trial_jobset(owner: dict[str, Any], trial: PlannedTrial, spec: FineTuneJobSpec, config: Config) -> dict[str, Any]:
    job = trial_job(owner, trial, spec, config)
    template = job["spec"]["template"]
    nodes = spec.resources.nodes
    # JobSet names pods <jobset>-<replicatedJob>-<jobIndex>-<completionIndex>, reachable by hostname.
    master = f"{trial.name}-trainer-0-0.{trial.name}"
    template["spec"]["containers"][0]["command"] = _torchrun(spec, master, "$(JOB_COMPLETION_INDEX)")
    return {
        "apiVersion": JOBSET_API,
        "kind": "JobSet",
        "metadata": job["metadata"],
        "spec": {
            "suspend": job["spec"]["suspend"],
            "network": {"enableDNSHostnames": True},
            "failurePolicy": {"maxRestarts": spec.backoff_limit},
            "successPolicy": {"operator": "All", "targetReplicatedJobs": ["trainer"]},
            "replicatedJobs": [
                {
                    "name": "trainer",
                    "replicas": 1,
                    "template": {
                        "spec": {
                            "parallelism": nodes,
                            "completions": nodes,
                            "completionMode": "Indexed",
                            "backoffLimit": 0,  # JobSet restarts the whole group: a lost node breaks the rendezvous
                            "activeDeadlineSeconds": spec.trial_deadline_seconds,
                            "template": template,
                        }
                    },
                }
            ],
        },
    }


def trial_pytorchjob(
    owner: dict[str, Any], trial: PlannedTrial, spec: FineTuneJobSpec, config: Config
) -> dict[str, Any]:
    job = trial_job(owner, trial, spec, config)
    template = job["spec"]["template"]
    template["spec"]["containers"][0]["name"] = "pytorch"  # the Training Operator's required container name
    template["spec"]["containers"][0]["command"] = _torchrun(spec, "$(MASTER_ADDR)", "$(RANK)")
    worker = json.loads(json.dumps(template))
    return {
        "apiVersion": PYTORCHJOB_API,
        "kind": "PyTorchJob",
        "metadata": job["metadata"],
        "spec": {
            "runPolicy": {
                "backoffLimit": spec.backoff_limit,
                "activeDeadlineSeconds": spec.trial_deadline_seconds,
                "suspend": job["spec"]["suspend"],
            },
            "pytorchReplicaSpecs": {
                "Master": {"replicas": 1, "restartPolicy": "Never", "template": template},
                "Worker": {"replicas": spec.resources.nodes - 1, "restartPolicy": "Never", "template": worker},
            },
        },
    }
