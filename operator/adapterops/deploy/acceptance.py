"""Whether the operator can serve a ModelDeployment's spec (checks that need its knowledge: GPU
classes, the engine's version and NIM profile (deploy/engine.py), the URLs the cluster admin lets
tenants point it at), and which adapter each served name resolves to (a fineTuneJobRef follows its
champion)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapterops.api.modeldeployment import ModelDeploymentSpec
from adapterops.api.names import object_name_problem
from adapterops.config import Config
from adapterops.deploy.engine import nim_profile, version_of
from adapterops.runtime.acceptance import Refusal, parse_spec


def accept(name: str, spec_doc: dict[str, Any], config: Config) -> ModelDeploymentSpec:
    """The typed spec, or a Refusal naming the field."""
    if problem := object_name_problem(name):  # an object from before the CRD's rule: children would be refused
        raise Refusal("InvalidName", problem)
    spec = parse_spec(ModelDeploymentSpec, spec_doc)
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
    # The operator itself calls these, from its own network position: only where the admin allowed.
    analysis = spec.canary.analysis
    if analysis.latency is not None and analysis.latency.prometheus_url:
        config.check_prometheus_url(analysis.latency.prometheus_url, "spec.canary.analysis.latency.prometheusUrl")
    if analysis.judge is not None:
        config.check_judge_endpoint(analysis.judge.judge.endpoint, "spec.canary.analysis.judge.judge.endpoint")
    return spec


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
