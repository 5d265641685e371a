"""Pure hyperparameter arithmetic: target-module mapping, step planning, the expected LR schedule."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

from adapterops_common.contract import Scheduler, Training
from adapterops_train.hyper import (
    HyperparameterError,
    expected_learning_rate,
    hf_target_modules,
    nemo_target_modules,
    nemo_widening,
    plan_steps,
)


def training(**fields: Any) -> Training:
    """A complete Training (the contract leaves nothing to default); `fields` replace settings."""
    settings: dict[str, Any] = {
        "max_steps": None,
        "epochs": None,
        "learning_rate": 1e-4,
        "optimizer": "adamw",
        "weight_decay": 0.01,
        "scheduler": Scheduler(type="cosine", warmup_steps=0, min_learning_rate=0.0),
        "global_batch_size": 8,
        "micro_batch_size": 1,
        "seq_length": 2048,
        "precision": "bf16",
        "seed": 1234,
    }
    return Training(**(settings | fields))


def test_nemo_names_map_to_llama_projections() -> None:
    assert hf_target_modules(["linear_qkv", "linear_fc2"]) == ["q_proj", "k_proj", "v_proj", "down_proj"]
    assert hf_target_modules(["linear_proj", "linear_fc1"]) == ["o_proj", "gate_proj", "up_proj"]
    assert hf_target_modules(["v_proj", "q_proj"]) == ["q_proj", "v_proj"]
    assert nemo_target_modules(["q_proj", "down_proj"]) == ["linear_qkv", "linear_fc2"]
    # NeMo cannot adapt q_proj alone: the widening is reported, not hidden.
    assert nemo_widening(["q_proj", "down_proj"]) == ["k_proj", "v_proj"]
    assert nemo_widening(["linear_qkv"]) == []
    with pytest.raises(HyperparameterError):
        hf_target_modules(["lm_head"])


def test_plan_from_epochs_and_batches() -> None:
    plan = plan_steps(training(epochs=2, global_batch_size=8, micro_batch_size=2), train_rows=170)
    assert (plan.steps_per_epoch, plan.max_steps, plan.gradient_accumulation_steps) == (22, 44, 4)
    assert plan_steps(training(max_steps=5), 1000).max_steps == 5
    assert (
        plan_steps(training(max_steps=5, global_batch_size=8, micro_batch_size=1), 10, 4).gradient_accumulation_steps
        == 2
    )


def test_plan_rejects_what_cannot_run() -> None:
    with pytest.raises(HyperparameterError, match="not a multiple"):
        plan_steps(training(max_steps=5, global_batch_size=8, micro_batch_size=3), 10)
    with pytest.raises(HyperparameterError, match="warmupSteps 5 must be below"):
        warmup_too_long = Scheduler(type="cosine", warmup_steps=5, min_learning_rate=0.0)
        plan_steps(training(max_steps=5, scheduler=warmup_too_long), 10)


def test_expected_schedule_warms_up_then_anneals_to_the_minimum() -> None:
    lr = [expected_learning_rate(s, 1e-3, 1e-4, 4, 20) for s in range(21)]
    assert lr[:5] == pytest.approx([0.0, 2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert all(a >= b for a, b in itertools.pairwise(lr[4:]))
    assert lr[20] == pytest.approx(1e-4) and min(lr[4:]) >= 1e-4
    assert lr[12] == pytest.approx(1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi * 0.5)))
