"""Helpers to run trials through the real entrypoint in tests and the demo (test tooling)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapterops_common.contract import TRIAL_SPEC_VERSION
from adapterops_train.cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]
COMMERCE = REPO / "training-jobs" / "datasets" / "commerce"


def trial_spec(base: str, out: str, **overrides: Any) -> dict[str, Any]:
    """A small, fast trial on the shipped commerce data with every contract field set, as the operator sends
    it. Overrides are merged in: an object is merged key by key (so `training={"maxSteps": 4}` keeps the
    other training settings), anything else replaces the value."""
    doc: dict[str, Any] = {
        "apiVersion": TRIAL_SPEC_VERSION,
        "name": "trial-0",
        "finetuneJob": "ml-team/commerce-sft",
        "method": "sft",
        "backend": "hf",
        "baseModel": {"name": "nvidia/Llama-3.1-Nemotron-Nano-8B-v1", "uri": base},
        "dataset": {"train": str(COMMERCE / "train.jsonl"), "validationFraction": 0.3, "format": "chat", "seed": 42},
        "lora": {
            "rank": 8,
            "alpha": 16,
            "dropout": 0.0,
            "targetModules": ["linear_qkv", "linear_proj", "linear_fc1", "linear_fc2"],
        },
        "training": {
            "maxSteps": 16,
            "learningRate": 2e-3,
            "optimizer": "adamw",
            "weightDecay": 0.01,
            "scheduler": {"type": "cosine", "warmupSteps": 3, "minLearningRate": 2e-4},
            "globalBatchSize": 8,
            "microBatchSize": 4,
            "seqLength": 256,
            "precision": "bf16",
            "seed": 1,
        },
        "outputUri": out,
        "parameters": {},
        "gpus": 1,
        "nodes": 1,
    }
    return _merged(doc, overrides)


def _merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        current = out.get(key)
        out[key] = _merged(current, value) if isinstance(value, dict) and isinstance(current, dict) else value
    return out


def run_trial(
    tmp: Path, spec: dict[str, Any], command: str = "run", extra: tuple[str, ...] = ()
) -> tuple[int, dict[str, Any]]:
    """The real entrypoint in-process (`python -m adapterops_train run` calls the same main); `command`
    baseline evaluates the base model instead."""
    tmp.mkdir(parents=True, exist_ok=True)
    spec_path, log = tmp / "trial.json", tmp / "termination-log"
    spec_path.write_text(json.dumps(spec))
    code = cli_main([command, "--spec", str(spec_path), "--termination-log", str(log), *extra])
    return code, json.loads(log.read_text())


def metrics(out: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((Path(out) / "metrics.json").read_text())
    return doc
