"""ModelDeployment reconciliation: validate what CEL cannot, serve revisions, run the canary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from adapterops.api import ModelDeploymentSpec
from adapterops.conditions import set_condition
from adapterops.config import Config


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
            spec,
            f"spec.runtime.gpuType: unknown GPU class {gpu!r}; this cluster has: {known}",
            "UnknownGpuClass",
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


def acceptance_status(status: dict[str, Any], acceptance: Acceptance, generation: int | None) -> dict[str, Any]:
    conditions = list(status.get("conditions") or [])
    if acceptance.error:
        conditions = set_condition(conditions, "Accepted", False, acceptance.reason, acceptance.error, generation)
    else:
        conditions = set_condition(conditions, "Accepted", True, "Accepted", "spec accepted", generation)
    return {**status, "conditions": conditions, "observedGeneration": generation}
