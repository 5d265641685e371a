"""Sweep planning: FineTuneJob spec -> the deterministic list of trials (pure, no I/O).

The same spec always yields the same trial names and values, so a restarted operator recomputes
exactly the plan whose Jobs already exist.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from adapterops.api.common import SWEEPABLE_PARAMETERS
from adapterops.api.finetunejob import MAX_NODES, FineTuneJobSpec, SweepParameter
from adapterops.api.names import child_name

# A trial's name is its Job's, JobSet's or PyTorchJob's. The longest name derived from it is a JobSet pod's
# hostname, <trial>-trainer-0-<node index>, a DNS-1035 label of at most 63 characters (JobSet's webhook
# checks it); a PyTorchJob's <trial>-worker-<index> is shorter.
MAX_NAME = 63 - len("-trainer-0-") - len(str(MAX_NODES - 1))


class PlanError(ValueError):
    """The sweep cannot be planned; the message names the field and what is accepted."""


@dataclass(frozen=True)
class PlannedTrial:
    """One trial of the plan. Its full spec is derived when its children are built (`spec_of`), not kept:
    a resting sweep of 20 trials would otherwise hold 20 copies of the job's spec in the operator."""

    index: int
    name: str
    parameters: dict[str, Any]

    def spec_of(self, spec: FineTuneJobSpec) -> FineTuneJobSpec:
        """The job's spec with this trial's values applied (validated when the plan was made)."""
        return apply_parameters(spec, self.parameters)


def trial_name(job_name: str, index: int) -> str:
    """`<job>-tNN`; a job name too long for that is cut and carries its hash, so two long job names never
    share trials."""
    return child_name(job_name, f"-t{index:02d}", MAX_NAME)


def baseline_trial(job_name: str, trials: list[PlannedTrial]) -> PlannedTrial:
    """The base model's evaluation, `<job>-baseline`: planned after the last trial (its spec shares the trials'
    ConfigMaps by index), with no swept values."""
    return PlannedTrial(index=len(trials), name=child_name(job_name, "-baseline", MAX_NAME), parameters={})


def legacy_trial_name(job_name: str, index: int) -> str:
    """The trial name operators before 0.2 gave (`<job>-tNN` up to 63 characters, else a 5-character
    sha256 prefix): a sweep started by one is carried on under the names its Jobs already have."""
    suffix = f"-t{index:02d}"
    if len(job_name) + len(suffix) <= 63:
        return job_name + suffix
    digest = hashlib.sha256(job_name.encode()).hexdigest()[:5]
    return f"{job_name[: 63 - len(suffix) - 6]}-{digest}{suffix}"


def _options(param: SweepParameter) -> list[Any] | None:
    return list(param.values) if param.values is not None else param.choices


def _sample(path: str, param: SweepParameter, rng: random.Random) -> Any:
    options = _options(param)
    if options is not None:
        return rng.choice(options)
    assert param.min is not None and param.max is not None
    if param.scale == "log":
        value = math.exp(rng.uniform(math.log(param.min), math.log(param.max)))
    else:
        value = rng.uniform(param.min, param.max)
    if SWEEPABLE_PARAMETERS[path] == "integer":  # e.g. warmupSteps: the nearest integer inside the range
        low, high = math.ceil(param.min), math.floor(param.max)
        if low > high:
            raise PlanError(
                f"spec.sweep.parameters[{path}]: the range [{param.min}, {param.max}] holds no integer; "
                f"{path} takes integers"
            )
        return min(high, max(low, round(value)))
    return float(f"{value:.4g}")  # readable values in the leaderboard, still deterministic


def _coerce(path: str, value: Any) -> Any:
    kind = SWEEPABLE_PARAMETERS[path]
    if kind == "integer":
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise PlanError(f"spec.sweep.parameters[{path}]: {value!r} is not an integer")
    if kind == "string" and not isinstance(value, str):
        raise PlanError(f"spec.sweep.parameters[{path}]: {value!r} is not a string")
    if kind == "number" and (not isinstance(value, int | float) or isinstance(value, bool)):
        raise PlanError(f"spec.sweep.parameters[{path}]: {value!r} is not a number")
    return value


def combinations(spec: FineTuneJobSpec) -> list[dict[str, Any]]:
    sweep = spec.sweep
    paths = sorted(sweep.parameters)
    if not paths:
        return [{}]
    if sweep.strategy == "grid":
        value_lists = [_options(sweep.parameters[p]) or [] for p in paths]
        size = math.prod(len(v) for v in value_lists)
        if size > sweep.max_trials:
            raise PlanError(
                f"spec.sweep: the grid expands to {size} trials, more than spec.sweep.maxTrials "
                f"({sweep.max_trials}); raise maxTrials (up to 100), drop values, or use strategy random"
            )
        return [dict(zip(paths, combo, strict=True)) for combo in itertools.product(*value_lists)]
    rng = random.Random(sweep.seed)
    return [{p: _sample(p, sweep.parameters[p], rng) for p in paths} for _ in range(sweep.max_trials)]


def apply_parameters(spec: FineTuneJobSpec, parameters: dict[str, Any]) -> FineTuneJobSpec:
    """The spec with dotted-path values set, re-validated, plus the cross-field rules CEL checks."""
    doc = spec.model_dump(by_alias=True, exclude_none=True)
    for path, value in parameters.items():
        node = doc
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _coerce(path, value)
        if leaf == "maxSteps":
            node.pop("epochs", None)
        if leaf == "epochs":
            node.pop("maxSteps", None)
    try:
        trial = FineTuneJobSpec.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise PlanError(f"spec.sweep.parameters give an invalid spec.{field}: {err['msg']}") from exc
    _check_training(trial, parameters)
    return trial


def _check_training(spec: FineTuneJobSpec, parameters: dict[str, Any]) -> None:
    t = spec.training
    where = f"trial values {parameters}" if parameters else "spec.training"
    if t.scheduler.min_learning_rate >= t.learning_rate:
        raise PlanError(
            f"{where}: scheduler.minLearningRate ({t.scheduler.min_learning_rate}) must be below "
            f"learningRate ({t.learning_rate})"
        )
    if t.global_batch_size % t.micro_batch_size:
        raise PlanError(
            f"{where}: globalBatchSize ({t.global_batch_size}) must be a multiple of microBatchSize "
            f"({t.micro_batch_size})"
        )
    if spec.lora.rank not in (1, 8, 16, 32, 64, 128, 256, 320, 512):
        raise PlanError(f"{where}: lora.rank {spec.lora.rank} is not a rank NIM and vLLM can serve")


def plan(job_name: str, spec: FineTuneJobSpec) -> list[PlannedTrial]:
    """All trials of the sweep, in order; raises PlanError naming the field when it cannot be planned."""
    trials = []
    for i, params in enumerate(combinations(spec)):
        apply_parameters(spec, params)  # every trial's spec is valid, or the sweep is refused now
        trials.append(PlannedTrial(index=i, name=trial_name(job_name, i), parameters=params))
    return trials


def to_start(trials: list[PlannedTrial], busy: int, existing: set[str], parallelism: int) -> list[PlannedTrial]:
    """The next trials in plan order that have no Job yet, keeping at most `parallelism` in flight."""
    free = max(0, parallelism - busy)
    return [t for t in trials if t.name not in existing][:free]
