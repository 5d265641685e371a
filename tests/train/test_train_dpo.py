"""DPO on preference pairs, asked of the nemo backend: it is routed to hf (TRL DPOTrainer) with the
reason recorded, and the reference model is the base with the adapter disabled."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from testworld.trials import COMMERCE, metrics, run_trial, trial_spec

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def dpo(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("dpo")
    spec = trial_spec(
        str(tiny_model),
        str(tmp / "out"),
        name="trial-dpo",
        method="dpo",
        backend="nemo",
        dataset={"train": str(COMMERCE / "preference.jsonl"), "format": "preference", "validationFraction": 0.25},
        lora={"rank": 8, "alpha": 16, "dropout": 0.0, "targetModules": ["q_proj", "v_proj", "o_proj"]},
        training={
            "maxSteps": 20,
            "learningRate": 2e-2,
            "optimizer": "adamw",
            "weightDecay": 0.0,
            "scheduler": {"warmupSteps": 2, "minLearningRate": 2e-3},
            "globalBatchSize": 8,
            "microBatchSize": 8,
            "seqLength": 256,
            "precision": "fp32",
            "seed": 5,
        },
    )
    code, result = run_trial(tmp, spec)
    return {"code": code, "result": result, "out": tmp / "out", "metrics": metrics(str(tmp / "out"))}


def test_dpo_is_routed_to_hf_with_the_reason(dpo: dict[str, Any]) -> None:
    assert dpo["code"] == 0, dpo["result"]
    assert dpo["result"]["backend"] == "hf" and "NeMo" in dpo["result"]["message"]
    routed = dpo["metrics"]["backend"]
    assert routed["requested"] == "nemo" and routed["used"] == "hf" and "no DPO" in routed["routedBecause"]


def test_reference_is_the_base_model_and_preference_loss_falls(dpo: dict[str, Any]) -> None:
    m = dpo["metrics"]
    # Zero-initialised LoRA B: policy == reference, so the DPO loss starts at exactly ln 2.
    assert m["validationLossBefore"] == pytest.approx(math.log(2), abs=1e-4)
    assert m["lossCurve"][0]["loss"] == pytest.approx(math.log(2), abs=1e-3)
    # A random-weight tiny model learns preferences slowly: small margins, but on held-out pairs.
    assert m["validationLoss"] < math.log(2) - 0.02
    losses = [p["loss"] for p in m["lossCurve"]]
    assert sum(losses[-5:]) / 5 < math.log(2) - 0.03
    assert m["validationMetrics"]["eval_rewards/accuracies"] > 0.6
    assert m["data"]["split"]["trainRows"] == 120 and m["data"]["split"]["validationRows"] == 40


def test_dpo_optimizer_and_adapter(dpo: dict[str, Any]) -> None:
    m = dpo["metrics"]
    assert m["observed"]["optimizer"]["class"] == "torch.optim.adamw.AdamW"
    assert m["observed"]["optimizer"]["paramGroups"][0]["decoupledWeightDecay"] is True
    assert m["observed"]["lora"]["ranks"] == [8]
    adapter = dpo["out"] / "adapter"
    # Only the trained adapter is exported (no reference copy next to it).
    assert sorted(p.name for p in adapter.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["r"] == 8 and sorted(cfg["target_modules"]) == ["o_proj", "q_proj", "v_proj"]
