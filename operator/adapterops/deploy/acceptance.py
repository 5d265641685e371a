"""Whether the operator can serve a ModelDeployment's spec (checks that need its knowledge: GPU
classes, the engine's version and NIM profile (deploy/engine.py), the URLs the cluster admin lets
tenants point it at), and which adapter each served name resolves to (a fineTuneJobRef follows its
champion)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapterops.api.modeldeployment import ModelDeploymentSpec
from adapterops.api.names import object_name_problem
from adapterops.api.servingprofile import Choice
from adapterops.config import Config
from adapterops.deploy.engine import nim_profile, version_of
from adapterops.runtime.acceptance import Refusal, parse_spec
from adapterops.runtime.informer import Informer


def accept(name: str, spec_doc: dict[str, Any], config: Config) -> ModelDeploymentSpec:
    """The typed spec, or a Refusal naming the field."""
    if problem := object_name_problem(name):  # an object from before the CRD's rule: children would be refused
        raise Refusal("InvalidName", problem)
    spec = parse_spec(ModelDeploymentSpec, spec_doc)
    if spec.runtime.from_profile is None:  # else checked once the profile's choice is known (from_profile)
        check_runtime(spec, config)
    # The operator itself calls these, from its own network position: only where the admin allowed.
    analysis = spec.canary.analysis
    if analysis.latency is not None and analysis.latency.prometheus_url:
        config.check_prometheus_url(analysis.latency.prometheus_url, "spec.canary.analysis.latency.prometheusUrl")
    if analysis.judge is not None:
        config.check_judge_endpoint(analysis.judge.judge.endpoint, "spec.canary.analysis.judge.judge.endpoint")
    return spec


def _accept_in_place(spec: ModelDeploymentSpec) -> None:
    """What an in-place adapter canary needs: an engine that loads adapters at run time through an API the
    operator has tested (vLLM's /v1/load_lora_adapter), replica traffic (an HTTPRoute splits by Service, and
    the canary pods are in the stable revision's Service), and more than one replica to split."""
    field, r = "spec.canary.adapterRollout", spec.runtime
    if r.engine != "vllm":
        raise Refusal(
            "InPlaceNotSupported",
            f"{field}: InPlace needs runtime.engine vllm (run-time LoRA loading through /v1/load_lora_adapter); "
            f"runtime.engine is {r.engine!r}. NIM's run-time loading is not verified by AdapterOps; accepted for nim: "
            "Revision",
        )
    if spec.canary.traffic.mode != "replicas":
        raise Refusal(
            "InPlaceNotSupported",
            f"{field}: InPlace splits traffic by replica ratio; canary.traffic.mode is "
            f"{spec.canary.traffic.mode!r}, accepted with InPlace: replicas",
        )
    if r.replicas < 2:
        raise Refusal(
            "InPlaceNotSupported",
            f"{field}: InPlace canaries on some of the running replicas; runtime.replicas is {r.replicas}, accepted "
            "with InPlace: 2 or more (or adapterRollout Revision)",
        )
    if all(w >= 100 for w in spec.canary.steps):
        raise Refusal(
            "InPlaceNotSupported",
            f"{field}: InPlace canaries on some replicas at the steps below 100 (100 is the promotion); "
            f"canary.steps is {spec.canary.steps}, accepted with InPlace: at least one step below 100, e.g. [50, 100]",
        )
    latency = spec.canary.analysis.latency
    if latency is not None and latency.query:
        raise Refusal(
            "InPlaceNotSupported",
            f"{field}: InPlace selects the canary's pods in the default latency query; "
            "canary.analysis.latency.query is set, accepted with InPlace: unset",
        )


def check_runtime(spec: ModelDeploymentSpec, config: Config, source: str = "") -> None:
    """The runtime can be served here (GPU class, TP within a node, engine version, NIM profile, what an in-place
    canary needs), or a Refusal;
    `source` says where the runtime came from (a ServingProfile's choice) when not from the spec itself."""
    try:
        gpu = config.gpu_class(spec.runtime.gpu_type, "spec.runtime.gpuType")
        tp = spec.runtime.tensor_parallel_size
        if tp > gpu.gpus_per_node:
            raise Refusal(
                "TensorParallelTooLarge",
                f"spec.runtime.tensorParallelSize: {tp} GPUs per replica, but {spec.runtime.gpu_type} nodes have "
                f"{gpu.gpus_per_node}; use at most {gpu.gpus_per_node}",
            )
        # Known before any pod starts: the engine version (the metrics the canary reads) and NIM's profile.
        version_of(spec, config)
        nim_profile(spec, config)
        if spec.canary.adapter_rollout == "InPlace":  # it depends on the engine, which a profile may choose
            _accept_in_place(spec)
    except Refusal as refusal:
        if not source:
            raise
        raise Refusal(refusal.reason, f"{source}: {refusal.message}") from refusal


def from_profile(
    spec: ModelDeploymentSpec, profile: dict[str, Any] | None
) -> tuple[ModelDeploymentSpec | None, str, str]:
    """The spec with the runtime a ServingProfile chose (engine, TP, GPU type, and the candidate's image and
    engine version when it set them), or None; with the ProfileResolved condition's reason and message."""
    name = spec.runtime.from_profile
    field = "spec.runtime.fromProfile"
    if profile is None:
        return None, "ProfileNotFound", f"{field}: ServingProfile {name!r} does not exist in this namespace"
    status = profile.get("status") or {}
    state, choice = status.get("state"), status.get("choice")
    if state == "Failed":
        why = next((c.get("message", "") for c in status.get("conditions") or [] if c.get("type") == "Succeeded"), "")
        return (
            None,
            "NoCandidateMeetsSLO",
            f"{field}: ServingProfile {name!r} found no candidate meeting its SLO ({why})",
        )
    if state != "Succeeded" or not choice:
        progress = status.get("progress") or "0"
        return (
            None,
            "ProfileNotFinished",
            f"{field}: ServingProfile {name!r} has not chosen yet ({state or 'not started'}, {progress} candidates "
            "measured); nothing new is served until it has",
        )
    c = Choice.model_validate(choice)
    r = spec.runtime
    same_engine = c.engine == r.engine
    runtime = r.model_copy(
        update={
            "engine": c.engine,
            "tensor_parallel_size": c.tensor_parallel_size,
            "gpu_type": c.gpu_type,
            "image": c.image or (r.image if same_engine else None),
            "engine_version": c.engine_version or (r.engine_version if same_engine else None),
            "precision": r.precision if c.engine == "nim" else None,
        }
    )
    message = f"ServingProfile {name}: {c.candidate} ({c.reason})"
    return spec.model_copy(update={"runtime": runtime}), "ProfileChosen", message


def follows_finetunejob(spec: dict[str, Any], name: str) -> bool:
    """A spec (ModelDeployment or ServingProfile) with an adapter taken from FineTuneJob `name`'s champion."""
    return any((a.get("fineTuneJobRef") or {}).get("name") == name for a in spec.get("adapters", []))


def follows_profile(spec: dict[str, Any], name: str) -> bool:
    """A ModelDeployment spec taking its runtime from ServingProfile `name`."""
    return bool((spec.get("runtime") or {}).get("fromProfile") == name)


def finetunejob_status(finetunejobs: Informer, namespace: str) -> Callable[[str], dict[str, Any] | None]:
    """`resolve_adapters`' lookup: a FineTuneJob's status in `namespace` from the informer's view."""

    def status(name: str) -> dict[str, Any] | None:
        body = finetunejobs.one((namespace, name))
        return None if body is None else dict(body.get("status") or {})

    return status


def resolve_adapters(
    spec: ModelDeploymentSpec, finetunejob: Callable[[str], dict[str, Any] | None]
) -> tuple[dict[str, str] | None, str]:
    """Served name -> adapter URI; None (and why) while one is not known yet.

    `finetunejob(name)` returns that FineTuneJob's status, or None when it does not exist."""
    out: dict[str, str] = {}
    for adapter in spec.adapters:
        if adapter.uri:
            out[adapter.name] = adapter.uri
            continue
        assert adapter.fine_tune_job_ref is not None
        ref = adapter.fine_tune_job_ref.name
        status = finetunejob(ref)
        if status is None:
            return None, f"adapter {adapter.name}: FineTuneJob {ref!r} does not exist"
        champion = status.get("champion")
        # Only a finished sweep's champion is final; mid-sweep leaders are provisional.
        if not champion or status.get("state") != "Succeeded":
            return (
                None,
                f"adapter {adapter.name}: FineTuneJob {ref!r} has no champion yet "
                f"({status.get('progress') or 'not started'})",
            )
        if adapter.fine_tune_job_ref.require_better_than_baseline:
            worse = _not_better_than_baseline(status)
            if worse is not None:
                return (
                    None,
                    f"adapter {adapter.name}: FineTuneJob {ref!r} champion {champion.get('trial')} is not better "
                    f"than the base model ({worse}); set fineTuneJobRef.requireBetterThanBaseline: false to serve it",
                )
        out[adapter.name] = champion["adapterUri"]
    return out, ""


def _not_better_than_baseline(status: dict[str, Any]) -> str | None:
    """The FineTuneJob's ChampionNotBetterThanBaseline message when that condition is True, else None."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == "ChampionNotBetterThanBaseline" and condition.get("status") == "True":
            return str(condition.get("message") or "ChampionNotBetterThanBaseline")
    return None


def resolve_runtime(
    spec: ModelDeploymentSpec, profile: dict[str, Any] | None, config: Config
) -> tuple[ModelDeploymentSpec, tuple[bool, str, str] | None]:
    """The spec to serve (with a ServingProfile's choice once it has one) and the ProfileResolved condition
    (status, reason, message; None without runtime.fromProfile), or a Refusal of the chosen runtime."""
    if spec.runtime.from_profile is None:
        return spec, None
    resolved, reason, message = from_profile(spec, profile)
    if resolved is None:
        return spec, (False, reason, message)
    check_runtime(resolved, config, f"spec.runtime.fromProfile ({message})")
    return resolved, (True, reason, message)
