"""Training backends (`hf`, `nemo`). Importing a backend module imports torch (and NeMo for `nemo`);
this package's __init__ stays torch-free so the runner can import the shared outcome type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapterops_train.hyper import StepPlan


@dataclass
class TrainOutcome:
    """What training produced, as observed from the trainer (not as requested)."""

    steps: int
    train_loss: float | None
    validation_loss: float | None
    validation_loss_before: float | None
    loss_curve: list[dict[str, float]]
    observed: dict[str, Any]
    plan: StepPlan
    seconds: dict[str, float] = field(default_factory=dict)
    extra_eval: dict[str, float] = field(default_factory=dict)
    # Wall seconds of each optimizer step, in order (hf backend; empty where a backend does not record them).
    step_seconds: list[float] = field(default_factory=list)
