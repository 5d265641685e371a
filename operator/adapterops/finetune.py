"""FineTuneJob reconciliation: validate what CEL cannot, plan the sweep, report status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from adapterops.api import FineTuneJobSpec
from adapterops.conditions import set_condition
from adapterops.config import Config
from adapterops.sweep import PlanError, PlannedTrial, plan


@dataclass(frozen=True)
class Acceptance:
    spec: FineTuneJobSpec | None
    trials: list[PlannedTrial]
    error: str | None  # why the spec is refused, naming the field
    reason: str


def accept(name: str, spec_doc: dict[str, Any], config: Config) -> Acceptance:
    """Checks that need the operator's knowledge (GPU classes) or a computation (the sweep plan)."""
    try:
        spec = FineTuneJobSpec.model_validate(spec_doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = "spec." + ".".join(str(p) for p in err["loc"])
        return Acceptance(None, [], f"{field}: {err['msg']}", "InvalidSpec")
    gpu = spec.resources.gpu_type
    if gpu not in config.gpu_classes:
        known = ", ".join(sorted(config.gpu_classes)) or "none configured"
        return Acceptance(
            spec,
            [],
            f"spec.resources.gpuType: unknown GPU class {gpu!r}; this cluster has: {known}",
            "UnknownGpuClass",
        )
    try:
        trials = plan(name, spec)
    except PlanError as exc:
        return Acceptance(spec, [], str(exc), "InvalidSweep")
    return Acceptance(spec, trials, None, "Accepted")


def acceptance_status(status: dict[str, Any], acceptance: Acceptance, generation: int | None) -> dict[str, Any]:
    """The status with the Accepted condition and observedGeneration for this generation."""
    conditions = list(status.get("conditions") or [])
    if acceptance.error:
        conditions = set_condition(conditions, "Accepted", False, acceptance.reason, acceptance.error, generation)
    else:
        message = f"sweep planned: {len(acceptance.trials)} trials"
        conditions = set_condition(conditions, "Accepted", True, "Accepted", message, generation)
    return {**status, "conditions": conditions, "observedGeneration": generation}
