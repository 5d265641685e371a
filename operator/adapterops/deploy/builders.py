"""Pure builders for a ModelDeployment's children: per revision a Deployment and a Service, one stable
Service (the endpoint clients use), and the HTTPRoute backendRefs when Gateway API splits traffic.

A revision is the hash of everything that changes what is served: engine, image, tensor parallelism,
GPU type, LoRA rank budget, engine env and args, the base model and the resolved adapter URIs.
Replicas are not part of it: scaling is not a new revision. With `canary.adapterRollout: InPlace` the
revision is split: a base revision (everything but the adapter URIs: the pods) names the Deployment,
and the adapters each pod serves are a pod annotation its adapter agent loads at run time.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from adapterops.api.kinds import owner_reference
from adapterops.api.modeldeployment import ModelDeploymentSpec
from adapterops.api.names import DNS1035_LABEL, child_name, claim_volume_name
from adapterops.config import Config
from adapterops.deploy.engine import PROFILE_ENV, image_of, profile_or_none
from adapterops.podsecurity import (
    SMALL_SCRATCH,
    container_security_context,
    empty_dir,
    pod_security_context,
    shared_memory,
)
from adapterops_common.agent import AGENT_PORT, wanted_annotation
from adapterops_common.contract import PVC_ROOT

LABEL_MD = "adapterops.io/modeldeployment"
LABEL_MD_UID = "adapterops.io/modeldeployment-uid"  # children are matched by their namespace and owner's UID
LABEL_REVISION = "adapterops.io/revision"
LABEL_COMPONENT = "adapterops.io/component"
PORT = 8000
ADAPTER_DIR = "/adapters"
ENGINE = "engine"
METRICS_PATH = {"nim": "/v1/metrics", "vllm": "/metrics"}
READY_PATH = {"nim": "/v1/health/ready", "vllm": "/health"}
LIVE_PATH = {"nim": "/v1/health/live", "vllm": "/health"}
# A replica being removed (scale-down, promotion, rollback) keeps serving while load balancers drop it
# from their endpoints (preStop sleep), then drains its in-flight requests on SIGTERM (NIM and vLLM
# finish them) within the grace period: no client sees a refused connection.
ENDPOINT_DRAIN_SECONDS = 10
TERMINATION_GRACE_SECONDS = 120
MEMORY_REQUEST_GIB_PER_GPU = 32
# Where each engine keeps its cache (an emptyDir): NIM's NIM_CACHE_PATH (weights, built engines); for
# vLLM, whose image runs as root with HOME=/root, a HOME of its own (HF, vLLM, Triton and compile caches
# all live under it) so that it runs as the non-root user of config.CONTAINER_USERS["vllm"].
NIM_CACHE = "/opt/nim/.cache"
VLLM_HOME = "/home/vllm"
# The fetch init container's resources: copying adapters (at most a few GiB) needs little.
FETCH_RESOURCES = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
# The adapter agent runs as long as the pod: it idles between swaps (requests), and copies like the fetcher
# while it fetches (limits).
AGENT_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
# adapterRollout InPlace: what a pod is asked to load (JSON served name -> URI), set by the operator on the
# pod, read by the pod's adapter agent through a downward API volume (the kubelet rewrites the file when
# the annotation changes; no API access from the pod).
ANNOTATION_ADAPTERS = "adapterops.io/adapters"
AGENT = "adapter-agent"
WANTED_DIR = "/etc/adapterops"
WANTED_FILE = "adapters.json"
# vLLM mounts /v1/load_lora_adapter and /v1/unload_lora_adapter only with this set (vllm/envs.py).
VLLM_RUNTIME_LORA = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"


def in_place(spec: ModelDeploymentSpec) -> bool:
    return spec.canary.adapter_rollout == "InPlace"


def base_revision_of(spec: ModelDeploymentSpec, adapters: dict[str, str], config: Config) -> str:
    """InPlace: the hash of what the pods are (everything but the adapter URIs). The adapter names count
    (vLLM's --max-loras slots) and so do the claims of pvc:// adapters (the pods mount them)."""
    return _hash(
        {**_served(spec, config), "adapterNames": sorted(adapters), "claims": _claims(list(adapters.values()))}
    )


def revision_of(spec: ModelDeploymentSpec, adapters: dict[str, str], config: Config) -> str:
    if in_place(spec):  # another hash than Revision's: switching mode changes the pods, a revision canary
        return _hash({"base": base_revision_of(spec, adapters, config), "adapters": dict(sorted(adapters.items()))})
    return _hash({**_served(spec, config), "adapters": dict(sorted(adapters.items()))})


def _hash(served: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(served, sort_keys=True).encode()).hexdigest()[:10]


def _served(spec: ModelDeploymentSpec, config: Config) -> dict[str, Any]:
    r = spec.runtime
    served: dict[str, Any] = {
        "engine": r.engine,
        "image": image_of(spec, config),
        "tensorParallelSize": r.tensor_parallel_size,
        "gpuType": r.gpu_type,
        "maxLoraRank": r.max_lora_rank,
        "env": [e.model_dump(by_alias=True, exclude_none=True) for e in r.env],
        "args": r.args,
        "baseModel": spec.base_model.model_dump(by_alias=True, exclude_none=True),
    }
    profile = profile_or_none(spec, config)
    if profile is not None and profile.source == "table":  # the table changing what runs is a new revision
        served["nimProfile"] = profile.value
    return served


def revision_name(md: str, revision: str) -> str:
    """`<md>-<revision>`, the revision's Deployment and Service: a Service name is a DNS-1035 label of at most
    63 characters, so a name over 52 is cut and carries its hash (two deployments never share one)."""
    return child_name(md, f"-{revision}", DNS1035_LABEL.max_length)


def stable_service_name(md: str) -> str:
    """The ModelDeployment's own name (an accepted one is a DNS-1035 label, as a Service name must be)."""
    return child_name(md, "", DNS1035_LABEL.max_length)


def split_replicas(replicas: int, weight: int, mode: str) -> int:
    """Canary replicas for a traffic weight. With a route the weight is set on the route and the canary
    only needs capacity for its share; by replica ratio the share IS the replica ratio, next to the
    untouched stable replicas: c / (c + R) ~ weight."""
    if weight <= 0:
        return 0
    if weight >= 100:
        return replicas
    if mode == "httpRoute":
        return max(1, math.ceil(replicas * weight / 100))
    return min(replicas, max(1, math.ceil(replicas * weight / (100 - weight))))


def effective_weight(stable_ready: int, canary_ready: int, route_weight: int, mode: str) -> int:
    """The share of requests the canary really gets."""
    if mode == "httpRoute":
        return route_weight if canary_ready else 0
    total = stable_ready + canary_ready
    return round(100 * canary_ready / total) if total else 0


def _labels(owner: dict[str, Any], revision: str | None = None) -> dict[str, str]:
    meta = owner["metadata"]
    labels = {
        LABEL_MD: meta["name"],
        LABEL_MD_UID: meta["uid"],
        LABEL_COMPONENT: "serving",
        "app.kubernetes.io/managed-by": "adapterops",
    }
    if revision:
        labels[LABEL_REVISION] = revision
    return labels


def _engine_container(spec: ModelDeploymentSpec, adapters: dict[str, str], config: Config) -> dict[str, Any]:
    r = spec.runtime
    gpu_class = config.gpu_classes[r.gpu_type]
    env: list[dict[str, Any]] = []
    args: list[str] = []
    if r.engine == "nim":
        env += [
            {"name": "NIM_PEFT_SOURCE", "value": ADAPTER_DIR},
            {"name": "NIM_MAX_LORA_RANK", "value": str(r.max_lora_rank)},
            {"name": "NIM_SERVED_MODEL_NAME", "value": spec.base_model.name},
            {"name": "NIM_SERVER_PORT", "value": str(PORT)},
            {"name": "NIM_CACHE_PATH", "value": NIM_CACHE},
            # As NVIDIA's nim-llm chart sets it: structured generation's cache out of the image's HOME.
            {"name": "OUTLINES_CACHE_DIR", "value": "/tmp/outlines"},
        ]
        # The profile carries TP, precision and LoRA support (NIM runs the profile's TP x PP GPUs); a
        # profile the spec pins itself comes with the spec's env below.
        profile = profile_or_none(spec, config)
        if profile is not None and profile.source == "table":
            env.append({"name": PROFILE_ENV, "value": profile.value})
        if r.api_key_secret_ref:
            ref = r.api_key_secret_ref
            env.append({"name": "NGC_API_KEY", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    else:
        env.append({"name": "HOME", "value": VLLM_HOME})
        model = _local_path(spec.base_model.uri) if spec.base_model.uri else spec.base_model.name
        args += ["--model", model, "--served-model-name", spec.base_model.name, "--port", str(PORT)]
        args += ["--tensor-parallel-size", str(r.tensor_parallel_size), "--enable-lora"]
        args += ["--max-lora-rank", str(r.max_lora_rank), "--max-loras", str(max(1, len(adapters)))]
        if in_place(spec):  # the agent loads them at run time, through the engine's API
            env.append({"name": VLLM_RUNTIME_LORA, "value": "True"})
        elif adapters:
            args += ["--lora-modules", *[f"{name}={ADAPTER_DIR}/{name}" for name in sorted(adapters)]]
    env += [e.model_dump(by_alias=True, exclude_none=True) for e in r.env]
    gpus = str(r.tensor_parallel_size)
    container: dict[str, Any] = {
        "name": ENGINE,
        "image": image_of(spec, config),
        "env": env,
        "ports": [{"name": "http", "containerPort": PORT}],
        "resources": {
            "requests": {
                gpu_class.resource_name: gpus,
                "cpu": str(4 * r.tensor_parallel_size),
                "memory": f"{MEMORY_REQUEST_GIB_PER_GPU * r.tensor_parallel_size}Gi",
            },
            "limits": {gpu_class.resource_name: gpus, "memory": f"{64 * r.tensor_parallel_size}Gi"},
        },
        "readinessProbe": {"httpGet": {"path": READY_PATH[r.engine], "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {
            "httpGet": {"path": LIVE_PATH[r.engine], "port": "http"},
            "periodSeconds": 15,
            "failureThreshold": 3,
        },
        # Engines take minutes to load weights and build kernels: the startup probe gives them 30 min.
        "startupProbe": {
            "httpGet": {"path": LIVE_PATH[r.engine], "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 180,
        },
        "volumeMounts": [
            {"name": "adapters", "mountPath": ADAPTER_DIR, "readOnly": True},
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "cache", "mountPath": NIM_CACHE if r.engine == "nim" else VLLM_HOME},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": container_security_context(config.container_users[r.engine]),
    }
    if args or r.args:
        container["args"] = args + list(r.args)
    return container


def _local_path(uri: str) -> str:
    return uri.replace("pvc://", f"{PVC_ROOT}/", 1) if uri.startswith("pvc://") else uri


def _claims(uris: list[str | None]) -> list[str]:
    return sorted({u.removeprefix("pvc://").split("/", 1)[0] for u in uris if u and u.startswith("pvc://")})


def revision_deployment(
    owner: dict[str, Any],
    spec: ModelDeploymentSpec,
    adapters: dict[str, str],
    revision: str,
    replicas: int,
    config: Config,
) -> dict[str, Any]:
    meta = owner["metadata"]
    name = revision_name(meta["name"], revision)
    r = spec.runtime
    gpu_class = config.gpu_classes[r.gpu_type]
    claims = _claims([*adapters.values(), spec.base_model.uri if r.engine == "vllm" else None])
    pvc_mounts = [{"name": claim_volume_name(c), "mountPath": f"{PVC_ROOT}/{c}", "readOnly": True} for c in claims]
    fetch = {
        "name": "fetch-adapters",
        "image": config.fetcher_image,
        "command": [
            "python",
            "-m",
            "adapterops_common",
            "fetch",
            "--root",
            ADAPTER_DIR,
            *[a for name, uri in sorted(adapters.items()) for a in ("--adapter", f"{name}={uri}")],
        ],
        "env": [{"name": "ADAPTEROPS_PVC_ROOT", "value": PVC_ROOT}, {"name": "HOME", "value": "/tmp"}],
        "volumeMounts": [
            {"name": "adapters", "mountPath": ADAPTER_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
            *pvc_mounts,
        ],
        "resources": FETCH_RESOURCES,
        "securityContext": container_security_context(config.container_users["fetcher"]),
    }
    engine = _engine_container(spec, adapters, config)
    engine["lifecycle"] = {"preStop": {"sleep": {"seconds": ENDPOINT_DRAIN_SECONDS}}}
    if r.engine == "vllm":
        engine["volumeMounts"] += pvc_mounts
    if spec.storage_secret_ref:
        fetch["envFrom"] = [{"secretRef": {"name": spec.storage_secret_ref.name}}]
    containers, init = [engine], [fetch] if adapters else []
    if in_place(spec):
        containers, init = [engine, _agent(fetch)], []
    volumes: list[dict[str, Any]] = [
        empty_dir("adapters", config.adapters_size),
        shared_memory(MEMORY_REQUEST_GIB_PER_GPU * r.tensor_parallel_size),
        empty_dir("cache", config.engine_cache_size),
        empty_dir("tmp", SMALL_SCRATCH),
        *[{"name": claim_volume_name(c), "persistentVolumeClaim": {"claimName": c, "readOnly": True}} for c in claims],
    ]
    if in_place(spec):
        volumes.append(
            {
                "name": "wanted",
                "downwardAPI": {
                    "items": [
                        {
                            "path": WANTED_FILE,
                            "fieldRef": {"fieldPath": f"metadata.annotations['{ANNOTATION_ADAPTERS}']"},
                        }
                    ]
                },
            }
        )
    pod_spec: dict[str, Any] = {
        "initContainers": init,
        "containers": containers,
        "volumes": volumes,
        "nodeSelector": dict(gpu_class.node_selector),
        "tolerations": [t.model_dump(by_alias=True, exclude_none=True) for t in gpu_class.tolerations],
        "securityContext": pod_security_context(config.container_users[r.engine].run_as_group),
        # No serving container calls the Kubernetes API.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
    }
    if r.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s.name} for s in r.image_pull_secrets]
    labels = _labels(owner, revision)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": {LABEL_MD: meta["name"], LABEL_REVISION: revision}},
            "template": {
                "metadata": {
                    "labels": {**config.pod_labels, **labels},
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(PORT),
                        "prometheus.io/path": METRICS_PATH[r.engine],
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def _agent(fetch: dict[str, Any]) -> dict[str, Any]:
    """The fetcher, long-running: it loads what the pod's annotation asks for through the engine's API and
    is Ready only while that is loaded, so the pod is Ready only with its wanted adapters."""
    command = ["python", "-m", "adapterops_common", "agent", "--root", ADAPTER_DIR]
    command += ["--wanted", f"{WANTED_DIR}/{WANTED_FILE}", "--engine", f"http://$(POD_IP):{PORT}"]
    command += ["--port", str(AGENT_PORT)]
    return {
        **fetch,
        "name": AGENT,
        "command": command,
        "env": [*fetch["env"], {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "volumeMounts": [*fetch["volumeMounts"], {"name": "wanted", "mountPath": WANTED_DIR, "readOnly": True}],
        "ports": [{"name": "agent", "containerPort": AGENT_PORT}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "agent"}, "periodSeconds": 1, "failureThreshold": 1},
        "resources": AGENT_RESOURCES,
    }


def pod_annotation(adapters: dict[str, str]) -> str:
    return wanted_annotation(adapters)


def _service(owner: dict[str, Any], name: str, selector: dict[str, str], labels: dict[str, str]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {"selector": selector, "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]},
    }


def revision_service(owner: dict[str, Any], revision: str) -> dict[str, Any]:
    md = owner["metadata"]["name"]
    selector = {LABEL_MD_UID: owner["metadata"]["uid"], LABEL_REVISION: revision}
    return _service(owner, revision_name(md, revision), selector, _labels(owner, revision))


def stable_service(owner: dict[str, Any]) -> dict[str, Any]:
    """The endpoint: every ready pod of every revision (the replica ratio is the traffic split)."""
    md = owner["metadata"]["name"]
    selector = {LABEL_MD_UID: owner["metadata"]["uid"], LABEL_COMPONENT: "serving"}
    return _service(owner, stable_service_name(md), selector, _labels(owner))


def judge_evidence_name(md: str) -> str:
    return child_name(md, "-judge-evidence", DNS1035_LABEL.max_length)


def judge_evidence(owner: dict[str, Any], test: str, pairs: list[tuple[float | None, float | None]]) -> dict[str, Any]:
    """The paired judge's scores so far, per canary test (`revision@start`): a restarted operator carries
    the sequential test on from them instead of starting it over."""
    meta = owner["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": judge_evidence_name(meta["name"]),
            "namespace": meta["namespace"],
            "labels": {**_labels(owner), LABEL_COMPONENT: "judge-evidence"},
            "ownerReferences": [owner_reference(owner)],
        },
        "data": {"test": test, "pairs.json": json.dumps(pairs, separators=(",", ":"))},
    }


def route_backends(md: str, stable: str, canary: str | None, canary_weight: int) -> list[dict[str, Any]]:
    """Every field spelled out, as the API server returns them (Gateway API defaults `group` to ""): the
    route read back compares equal when the split is unchanged, and is not written again."""

    def ref(revision: str, weight: int) -> dict[str, Any]:
        return {"group": "", "kind": "Service", "name": revision_name(md, revision), "port": PORT, "weight": weight}

    return [ref(stable, 100 - canary_weight)] + ([ref(canary, canary_weight)] if canary else [])
