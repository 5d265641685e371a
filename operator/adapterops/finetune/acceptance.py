"""Whether the operator can run a FineTuneJob's spec: checks that need its knowledge (GPU classes, the
judge endpoints the cluster admin allows) or a computation (the sweep plan). Checks that need the
cluster (Kueue, a distributed engine) are the reconciler's; everything one object can be checked for
is CEL in the CRD."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapterops.api.finetunejob import FineTuneJobSpec
from adapterops.api.names import object_name_problem
from adapterops.config import Config
from adapterops.finetune.plan import PlanError, PlannedTrial, plan
from adapterops.runtime.acceptance import Refusal, parse_spec
from adapterops_common.nemo_models import nemo_recipe, unsupported_message


@dataclass(frozen=True)
class Accepted:
    spec: FineTuneJobSpec
    trials: list[PlannedTrial]


def accept(name: str, spec_doc: dict[str, Any], config: Config, namespace: str = "") -> Accepted:
    """The spec (with its namespace's default queue applied) and its plan, or a Refusal naming the field."""
    if problem := object_name_problem(name):  # an object from before the CRD's rule: children would be refused
        raise Refusal("InvalidName", problem)
    spec = with_default_queue(parse_spec(FineTuneJobSpec, spec_doc), namespace, config)
    gpu = config.gpu_class(spec.resources.gpu_type, "spec.resources.gpuType")
    if spec.resources.gpus_per_trial > gpu.gpus_per_node:
        raise Refusal(
            "TooManyGpus",
            f"spec.resources.gpusPerTrial: {spec.resources.gpus_per_trial} GPUs per node, but "
            f"{spec.resources.gpu_type} nodes have {gpu.gpus_per_node}; use at most {gpu.gpus_per_node} "
            "(or more nodes)",
        )
    if spec.evaluation is not None:  # trial pods call it with the tenant's key: only where the admin allowed
        config.check_judge_endpoint(spec.evaluation.judge.endpoint, "spec.evaluation.judge.endpoint")
    try:
        trials = plan(name, spec)
    except PlanError as exc:
        raise Refusal("InvalidSweep", str(exc)) from exc
    # The nemo backend trains a base model with its NeMo recipe (DPO runs on hf, whatever the backend says).
    if spec.backend == "nemo" and spec.method != "dpo" and nemo_recipe(spec.base_model.name) is None:
        raise Refusal("UnsupportedBaseModel", unsupported_message("spec.baseModel.name", spec.base_model.name))
    return Accepted(spec, trials)


def with_default_queue(spec: FineTuneJobSpec, namespace: str, config: Config) -> FineTuneJobSpec:
    """A spec that names no queue gets its namespace's default (ADAPTEROPS_DEFAULT_QUEUES): the trials are
    admitted by that queue's quota, as the chart's admission policy assumes when it lets the spec omit it."""
    default = config.default_queues.get(namespace)
    if spec.resources.queue_name or not default:
        return spec
    return spec.model_copy(update={"resources": spec.resources.model_copy(update={"queue_name": default})})
