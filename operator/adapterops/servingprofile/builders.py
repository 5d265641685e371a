"""Pure builders of a ServingProfile's children: per candidate a one-replica Deployment (the very
Deployment a ModelDeployment revision of that configuration gets, from deploy/builders, relabelled as the
profile's) and a load Job (the adapter-fetcher image's `python -m adapterops_common load`, a real HTTP
client) aimed at the candidate's pod.

A candidate's revision hashes the profile's UID, the configuration served and the load: a changed spec
gives new revisions (old results no longer count, old children are deleted), and the revision label
selects exactly this candidate's series in Prometheus (no ModelDeployment revision shares it).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from adapterops.api.kinds import owner_reference
from adapterops.api.modeldeployment import ModelDeploymentSpec
from adapterops.api.names import DNS1035_LABEL, child_name, claim_volume_name
from adapterops.api.servingprofile import Candidate, ServingProfileSpec
from adapterops.config import Config
from adapterops.deploy import builders as serving
from adapterops.podsecurity import SMALL_SCRATCH, container_security_context, empty_dir, pod_security_context
from adapterops_common.contract import PVC_ROOT

LABEL_PROFILE = "adapterops.io/servingprofile"
LABEL_PROFILE_UID = "adapterops.io/servingprofile-uid"  # children are matched by namespace and owner UID
LABEL_CANDIDATE = "adapterops.io/candidate"
LOAD = "load"
PROMPTS_DIR = "/prompts"
TERMINATION_LOG = "/dev/termination-log"
# The load generator is a small Python client: a core and little memory drive hundreds of requests/s.
LOAD_RESOURCES = {"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}}
LOAD_SLACK_SECONDS = 120  # the Job's deadline past warm-up + window: start-up, the last requests, the report


def candidate_name(c: Candidate) -> str:
    return f"{c.engine}-tp{c.tensor_parallel_size}-{c.gpu_type.lower()}"


def candidate_spec(spec: ServingProfileSpec, c: Candidate) -> ModelDeploymentSpec:
    """The ModelDeployment spec a candidate is served as: the shared runtime with the candidate's engine,
    TP, GPU type (and image / engine version when it sets them), one replica."""
    runtime = spec.runtime.model_copy(
        update={
            "engine": c.engine,
            "tensor_parallel_size": c.tensor_parallel_size,
            "gpu_type": c.gpu_type,
            "image": c.image or spec.runtime.image,
            "engine_version": c.engine_version or spec.runtime.engine_version,
            "replicas": 1,
            "from_profile": None,
        }
    )
    if c.engine != spec.runtime.engine and c.image is None:
        runtime = runtime.model_copy(update={"image": None})  # the shared image is the other engine's
    if c.engine == "vllm":
        runtime = runtime.model_copy(update={"precision": None})  # a NIM profile setting
    return ModelDeploymentSpec(
        base_model=spec.base_model,
        runtime=runtime,
        adapters=spec.adapters,
        storage_secret_ref=spec.storage_secret_ref,
    )


def candidate_revision(
    uid: str, spec: ServingProfileSpec, c: Candidate, adapters: dict[str, str], config: Config
) -> str:
    served = serving.revision_of(candidate_spec(spec, c), adapters, config)
    load = spec.load.model_dump(by_alias=True, exclude_none=True, mode="json")
    text = json.dumps({"profile": uid, "served": served, "load": load}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def deployment_name(profile: str, revision: str) -> str:
    return child_name(profile, f"-{revision}", DNS1035_LABEL.max_length)


def load_job_name(profile: str, revision: str) -> str:
    return child_name(profile, f"-{revision}-load", DNS1035_LABEL.max_length)


def _labels(owner: dict[str, Any], revision: str, component: str) -> dict[str, str]:
    meta = owner["metadata"]
    return {
        LABEL_PROFILE: meta["name"],
        LABEL_PROFILE_UID: meta["uid"],
        serving.LABEL_REVISION: revision,
        # `serving`: the engine pods are scraped like a ModelDeployment's (the chart's PodMonitor selects it).
        serving.LABEL_COMPONENT: component,
        "app.kubernetes.io/managed-by": "adapterops",
    }


def candidate_deployment(
    owner: dict[str, Any],
    spec: ServingProfileSpec,
    c: Candidate,
    adapters: dict[str, str],
    revision: str,
    config: Config,
) -> dict[str, Any]:
    """A ModelDeployment revision's Deployment for this candidate, one replica, labelled as the profile's
    child (never a ModelDeployment's: the ModelDeployment reconciler selects on its own UID label)."""
    manifest = serving.revision_deployment(owner, candidate_spec(spec, c), adapters, revision, 1, config)
    labels = {**_labels(owner, revision, "serving"), LABEL_CANDIDATE: candidate_name(c)}
    manifest["metadata"]["name"] = deployment_name(owner["metadata"]["name"], revision)
    manifest["metadata"]["labels"] = labels
    manifest["spec"]["selector"] = {
        "matchLabels": {LABEL_PROFILE_UID: owner["metadata"]["uid"], serving.LABEL_REVISION: revision}
    }
    manifest["spec"]["revisionHistoryLimit"] = 0
    template = manifest["spec"]["template"]["metadata"]
    template["labels"] = {**config.pod_labels, **labels}
    return manifest


def load_job(
    owner: dict[str, Any], spec: ServingProfileSpec, c: Candidate, revision: str, target: str, config: Config
) -> dict[str, Any]:
    """The load generator against `target` (the candidate pod's URL): warm-up, then the measured window;
    it reports the window and its client-side counts in its termination message."""
    meta = owner["metadata"]
    load = spec.load
    model = load.model or (spec.adapters[0].name if spec.adapters else spec.base_model.name)
    args = ["--url", target, "--model", model, "--duration", str(load.duration_seconds)]
    args += ["--termination-log", TERMINATION_LOG]
    args += ["--warmup", str(load.warmup_seconds), "--max-tokens", str(load.max_tokens)]
    if load.requests_per_second is not None:
        args += ["--rate", f"{load.requests_per_second:g}"]
    else:
        args += ["--concurrency", str(load.concurrency)]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [empty_dir("tmp", SMALL_SCRATCH)]
    env = [{"name": "HOME", "value": "/tmp"}, {"name": "ADAPTEROPS_PVC_ROOT", "value": PVC_ROOT}]
    prompts = load.prompts
    if prompts.startswith("configmap://"):
        name, key = prompts.removeprefix("configmap://").split("/", 1)
        volumes.append({"name": "prompts", "configMap": {"name": name, "items": [{"key": key, "path": key}]}})
        mounts.append({"name": "prompts", "mountPath": PROMPTS_DIR, "readOnly": True})
        args += ["--prompts", f"{PROMPTS_DIR}/{key}"]
    else:
        args += ["--prompts", prompts]
        if prompts.startswith("pvc://"):
            claim = prompts.removeprefix("pvc://").split("/", 1)[0]
            volumes.append(
                {"name": claim_volume_name(claim), "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
            )
            mounts.append({"name": claim_volume_name(claim), "mountPath": f"{PVC_ROOT}/{claim}", "readOnly": True})
    container: dict[str, Any] = {
        "name": LOAD,
        "image": config.fetcher_image,
        "command": ["python", "-m", "adapterops_common", "load", *args],
        "env": env,
        "volumeMounts": mounts,
        "resources": LOAD_RESOURCES,
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
        "securityContext": container_security_context(config.container_users["fetcher"]),
    }
    if spec.storage_secret_ref is not None:
        container["envFrom"] = [{"secretRef": {"name": spec.storage_secret_ref.name}}]
    labels = {**_labels(owner, revision, "profile-load"), LABEL_CANDIDATE: candidate_name(c)}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": load_job_name(meta["name"], revision),
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {
            "backoffLimit": 0,  # a second run would measure another window: the candidate is failed instead
            "activeDeadlineSeconds": load.warmup_seconds + load.duration_seconds + LOAD_SLACK_SECONDS,
            "template": {
                "metadata": {"labels": {**config.pod_labels, **labels}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [container],
                    "volumes": volumes,
                    "securityContext": pod_security_context(config.container_users["fetcher"].run_as_group),
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                },
            },
        },
    }
