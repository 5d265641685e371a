"""ModelDeployment reconciliation, the pure part: validation, adapter resolution, revision status,
cost and conditions. `rollout.py` does the I/O and runs the canary."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from adapterops.api.modeldeployment import ModelDeploymentSpec
from adapterops.config import Config
from adapterops.deploy import builders as serving
from adapterops.runtime.conditions import set_condition

HISTORY_LIMIT = 10


@dataclass(frozen=True)
class Acceptance:
    spec: ModelDeploymentSpec | None
    error: str | None
    reason: str


def accept(spec_doc: dict[str, Any], config: Config) -> Acceptance:
    try:
        spec = ModelDeploymentSpec.model_validate(spec_doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = "spec." + ".".join(str(p) for p in err["loc"])
        return Acceptance(None, f"{field}: {err['msg']}", "InvalidSpec")
    gpu = spec.runtime.gpu_type
    gpu_class = config.gpu_classes.get(gpu)
    if gpu_class is None:
        known = ", ".join(sorted(config.gpu_classes)) or "none configured"
        return Acceptance(
            spec, f"spec.runtime.gpuType: unknown GPU class {gpu!r}; this cluster has: {known}", "UnknownGpuClass"
        )
    tp = spec.runtime.tensor_parallel_size
    if tp > gpu_class.gpus_per_node:
        return Acceptance(
            spec,
            f"spec.runtime.tensorParallelSize: {tp} GPUs per replica, but {gpu} nodes have "
            f"{gpu_class.gpus_per_node}; use at most {gpu_class.gpus_per_node}",
            "TensorParallelTooLarge",
        )
    return Acceptance(spec, None, "Accepted")


def resolve_adapters(spec: ModelDeploymentSpec, finetunejob: Any) -> tuple[dict[str, str] | None, str]:
    """Served name -> adapter URI; a fineTuneJobRef follows its champion. None (and why) when one is unknown.

    `finetunejob(name)` returns the FineTuneJob's status (or None when it does not exist)."""
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
        champion = (status or {}).get("champion")
        # Only a finished sweep's champion is final; mid-sweep leaders are provisional.
        if not champion or status.get("state") != "Succeeded":
            return (
                None,
                f"adapter {adapter.name}: FineTuneJob {ref!r} has no champion yet "
                f"({status.get('progress') or 'not started'})",
            )
        out[adapter.name] = champion["adapterUri"]
    return out, ""


def revision_status(
    spec: ModelDeploymentSpec,
    revision: str,
    adapters: dict[str, str],
    replicas: int,
    ready: int,
    weight: int,
    config: Config,
) -> dict[str, Any]:
    r = spec.runtime
    return {
        "revision": revision,
        "adapters": adapters,
        "engine": r.engine,
        "image": serving.image_of(spec, config),
        "tensorParallelSize": r.tensor_parallel_size,
        "gpuType": r.gpu_type,
        "replicas": replicas,
        "readyReplicas": ready,
        "weight": weight,
    }


def cost(status: dict[str, Any], config: Config) -> dict[str, Any]:
    """GPUs held x price per GPU hour x 730 hours, per role (desired replicas: what is reserved)."""
    out: dict[str, Any] = {"totalUsd": 0.0}
    for role in ("stable", "canary"):
        rev = status.get(role)
        if not rev:
            continue
        gpu_class = config.gpu_classes.get(rev["gpuType"])
        if gpu_class is None:
            continue
        c = serving.monthly_cost(rev["replicas"] * rev["tensorParallelSize"], gpu_class.price_per_hour)
        out[role] = c
        out["totalUsd"] = round(out["totalUsd"] + c["usd"], 2)
    return out


def add_history(history: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry, *history][:HISTORY_LIMIT]


def rolled_back(history: list[dict[str, Any]], revision: str) -> dict[str, Any] | None:
    """The rollback of `revision`, if that is the last thing that happened to it."""
    for entry in history:
        if entry["revision"] == revision:
            return entry if entry["outcome"] == "RolledBack" else None
    return None


def parse_interval(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", text)))


def refused_status(old: dict[str, Any], acceptance: Acceptance, generation: int | None) -> dict[str, Any]:
    assert acceptance.error is not None
    conditions = set_condition(
        list(old.get("conditions") or []), "Accepted", False, acceptance.reason, acceptance.error, generation
    )
    conditions = set_condition(
        conditions, "Ready", bool(old.get("stable")) and _was_ready(old), "SpecRefused", acceptance.error, generation
    )
    return {**old, "conditions": conditions, "observedGeneration": generation}


def _was_ready(old: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in old.get("conditions") or [])
