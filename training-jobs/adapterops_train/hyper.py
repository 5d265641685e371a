"""Pure hyperparameter arithmetic shared by both backends (no torch, no NeMo).

One place decides how many optimizer steps a trial runs, how a global batch is split into micro
batches, and which layers get adapters, so the `hf` and `nemo` backends train the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from adapterops_common.contract import HF_TARGET_MODULES, NEMO_TARGET_MODULES, Training

# NeMo/Megatron fuses Llama's projections: one NeMo module covers several Hugging Face modules.
NEMO_TO_HF: dict[str, tuple[str, ...]] = {
    "linear_qkv": ("q_proj", "k_proj", "v_proj"),
    "linear_proj": ("o_proj",),
    "linear_fc1": ("gate_proj", "up_proj"),
    "linear_fc2": ("down_proj",),
}
HF_TO_NEMO: dict[str, str] = {hf: nemo for nemo, hfs in NEMO_TO_HF.items() for hf in hfs}


class HyperparameterError(ValueError):
    """A spec whose numbers cannot be trained as asked (e.g. a batch that does not divide)."""


def hf_target_modules(modules: Sequence[str]) -> list[str]:
    """Hugging Face (PEFT / vLLM / NIM) names for the spec's targets, in Llama layer order."""
    wanted: set[str] = set()
    for name in modules:
        if name in NEMO_TO_HF:
            wanted.update(NEMO_TO_HF[name])
        elif name in HF_TARGET_MODULES:
            wanted.add(name)
        else:
            raise HyperparameterError(f"unknown LoRA target module {name!r}")
    return [m for m in HF_TARGET_MODULES if m in wanted]


def nemo_target_modules(modules: Sequence[str]) -> list[str]:
    """NeMo names for the spec's targets. NeMo adapts fused layers, so q_proj alone means all of
    linear_qkv: the widening is reported by `nemo_widening` so it is never silent."""
    wanted = {name if name in NEMO_TO_HF else HF_TO_NEMO[name] for name in modules}
    return [m for m in NEMO_TARGET_MODULES if m in wanted]


def nemo_widening(modules: Sequence[str]) -> list[str]:
    """HF modules NeMo adapts beyond the ones asked for (because their fused layer was selected)."""
    asked = set(hf_target_modules(modules))
    covered = set(hf_target_modules(nemo_target_modules(modules)))
    return [m for m in HF_TARGET_MODULES if m in covered - asked]


@dataclass(frozen=True)
class StepPlan:
    """How the trial's batches and steps are laid out."""

    max_steps: int
    steps_per_epoch: int
    epochs: float
    global_batch_size: int
    micro_batch_size: int
    data_parallel_size: int
    gradient_accumulation_steps: int


def plan_steps(training: Training, train_rows: int, data_parallel_size: int = 1) -> StepPlan:
    """maxSteps as given, or epochs x steps per epoch (a partial last batch counts as a step)."""
    gbs, mbs, dp = training.global_batch_size, training.micro_batch_size, max(1, data_parallel_size)
    if gbs % (mbs * dp):
        raise HyperparameterError(
            f"globalBatchSize {gbs} is not a multiple of microBatchSize {mbs} x data-parallel size {dp}"
        )
    steps_per_epoch = max(1, math.ceil(train_rows / gbs))
    if training.max_steps is not None:
        max_steps = training.max_steps
    elif training.epochs is not None:
        max_steps = max(1, math.ceil(training.epochs * steps_per_epoch))
    else:
        raise HyperparameterError("training sets neither maxSteps nor epochs")
    if training.scheduler.warmup_steps >= max_steps:
        raise HyperparameterError(
            f"scheduler.warmupSteps {training.scheduler.warmup_steps} must be below the {max_steps} training steps"
        )
    return StepPlan(
        max_steps=max_steps,
        steps_per_epoch=steps_per_epoch,
        epochs=max_steps / steps_per_epoch,
        global_batch_size=gbs,
        micro_batch_size=mbs,
        data_parallel_size=dp,
        gradient_accumulation_steps=gbs // (mbs * dp),
    )


def expected_learning_rate(step: int, peak: float, minimum: float, warmup: int, total: int) -> float:
    """The schedule the spec asks for, as a function of the optimizer step (0-based): linear warmup
    from 0 to `peak` over `warmup` steps, then half a cosine from `peak` down to `minimum` at `total`.
    Both backends are configured to follow it; the tests compare what the trainer used against it."""
    if step < warmup:
        return peak * step / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return minimum + (peak - minimum) * 0.5 * (1.0 + math.cos(math.pi * progress))
