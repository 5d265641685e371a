"""Whether the operator can run a FineTuneJob's spec: checks that need its knowledge (GPU classes) or a
computation (the sweep plan). Checks that need the cluster (Kueue, a distributed engine) are the
reconciler's; everything one object can be checked for is CEL in the CRD."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapterops.api.finetunejob import FineTuneJobSpec
from adapterops.api.names import object_name_problem
from adapterops.config import Config
from adapterops.finetune.plan import PlanError, PlannedTrial, plan
from adapterops.runtime.acceptance import Refusal, parse_spec


@dataclass(frozen=True)
class Accepted:
    spec: FineTuneJobSpec
    trials: list[PlannedTrial]


def accept(name: str, spec_doc: dict[str, Any], config: Config) -> Accepted:
    """The spec and its plan, or a Refusal naming the field."""
    if problem := object_name_problem(name):  # an object from before the CRD's rule: children would be refused
        raise Refusal("InvalidName", problem)
    spec = parse_spec(FineTuneJobSpec, spec_doc)
    gpu = config.gpu_class(spec.resources.gpu_type, "spec.resources.gpuType")
    if spec.resources.gpus_per_trial > gpu.gpus_per_node:
        raise Refusal(
            "TooManyGpus",
            f"spec.resources.gpusPerTrial: {spec.resources.gpus_per_trial} GPUs per node, but "
            f"{spec.resources.gpu_type} nodes have {gpu.gpus_per_node}; use at most {gpu.gpus_per_node} "
            "(or more nodes)",
        )
    try:
        trials = plan(name, spec)
    except PlanError as exc:
        raise Refusal("InvalidSweep", str(exc)) from exc
    return Accepted(spec, trials)
