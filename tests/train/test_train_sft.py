"""LoRA SFT through the real entrypoint on the tiny Llama (CPU): what the trainer really used, the
exported adapter, evaluation and the result document."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from adapterops_common.contract import TrialSpec, document_schema
from adapterops_train.backends.hf import HfBackend
from adapterops_train.hyper import expected_learning_rate
from adapterops_train.runner import prepare_data
from testworld.judge import StandInJudge
from testworld.trials import COMMERCE, metrics, run_trial, trial_spec

pytestmark = pytest.mark.train

PEAK, MINIMUM, WARMUP, STEPS = 3e-3, 2e-4, 4, 24


def sft_spec(tiny_model: Path, out: Path, judge_url: str) -> dict[str, Any]:
    return trial_spec(
        str(tiny_model),
        str(out),
        lora={"rank": 16, "alpha": 32, "dropout": 0.05, "targetModules": ["linear_qkv", "linear_fc2"]},
        training={
            "maxSteps": STEPS,
            "learningRate": PEAK,
            "optimizer": "adam",
            "weightDecay": 0.02,
            "scheduler": {"warmupSteps": WARMUP, "minLearningRate": MINIMUM},
            "globalBatchSize": 8,
            "microBatchSize": 4,
            "seqLength": 256,
            "precision": "bf16",
            "seed": 3,
        },
        evaluation={
            "dataset": str(COMMERCE / "challenge.jsonl"),
            "samples": 8,
            "rubric": {"builtin": "query-formulation"},
            "judge": {"endpoint": judge_url, "model": "judge"},
        },
        parameters={"training.optimizer": "adam", "lora.rank": 16},
    )


@pytest.fixture(scope="module")
def sft(tiny_model: Path, judge: StandInJudge, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("sft")
    out = tmp / "out"
    code, result = run_trial(tmp, sft_spec(tiny_model, out, judge.url))
    return {"code": code, "result": result, "out": out, "metrics": metrics(str(out)), "tmp": tmp}


def test_succeeds_with_a_valid_result_document(sft: dict[str, Any]) -> None:
    assert sft["code"] == 0, sft["result"]
    result = sft["result"]
    jsonschema.validate(result, document_schema("TrialResult"))
    assert result["status"] == "succeeded" and result["backend"] == "hf" and result["steps"] == STEPS
    assert result["adapterUri"] == f"{sft['out']}/adapter" and result["metricsUri"] == f"{sft['out']}/metrics.json"
    assert result["judge"]["status"] == "ok" and result["judge"]["samples"] == result["judge"]["requested"] == 8
    assert 0.0 <= result["judge"]["mean"] <= 5.0


def test_loss_goes_down(sft: dict[str, Any]) -> None:
    m = sft["metrics"]
    losses = [p["loss"] for p in m["lossCurve"]]
    assert len(losses) == STEPS
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.05
    assert m["validationLoss"] < m["validationLossBefore"] - 0.05
    assert sft["result"]["validationLoss"] == pytest.approx(m["validationLoss"], abs=1e-6)


def test_the_trainer_used_plain_adam(sft: dict[str, Any]) -> None:
    opt = sft["metrics"]["observed"]["optimizer"]
    assert opt["class"] == "torch.optim.adam.Adam"
    decayed, not_decayed = opt["paramGroups"]
    assert decayed["weightDecay"] == 0.02 and decayed["params"] > 0 and not decayed["decoupledWeightDecay"]
    assert not_decayed["weightDecay"] == 0.0
    assert sft["metrics"]["observed"]["gradientAccumulationSteps"] == 2  # 8 / micro batch 4


def test_learning_rate_warms_up_then_anneals_to_the_minimum(sft: dict[str, Any]) -> None:
    used = sft["metrics"]["observed"]["learningRates"]  # read from the optimizer before each step
    assert len(used) == STEPS
    assert used == pytest.approx(
        [expected_learning_rate(s, PEAK, MINIMUM, WARMUP, STEPS) for s in range(STEPS)], rel=1e-6
    )
    assert used[: WARMUP + 1] == sorted(used[: WARMUP + 1]) and used[WARMUP] == pytest.approx(PEAK)
    assert all(a > b for a, b in zip(used[WARMUP:], used[WARMUP + 1 :], strict=False))
    assert MINIMUM < used[-1] < MINIMUM * 1.1  # cosine reaches the minimum, not zero
    assert sft["metrics"]["scheduleCheck"]["maxAbsDeviation"] < 1e-9


def test_adapter_has_the_rank_and_layers_asked_for(sft: dict[str, Any]) -> None:
    adapter = sft["out"] / "adapter"
    assert sorted(p.name for p in adapter.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert (cfg["r"], cfg["lora_alpha"], cfg["lora_dropout"], cfg["peft_type"]) == (16, 32, 0.05, "LORA")
    assert sorted(cfg["target_modules"]) == ["down_proj", "k_proj", "q_proj", "v_proj"]
    assert cfg["base_model_name_or_path"] == "nvidia/Llama-3.1-Nemotron-Nano-8B-v1"
    tensors = load_file(str(adapter / "adapter_model.safetensors"))
    a_shapes = {tuple(t.shape) for name, t in tensors.items() if "lora_A" in name}
    assert {s[0] for s in a_shapes} == {16}
    assert len(tensors) == 2 * 2 * 4  # 2 layers x (A, B) x 4 projections
    observed = sft["metrics"]["observed"]["lora"]
    assert observed["ranks"] == [16] and observed["modules"] == ["down_proj", "k_proj", "q_proj", "v_proj"]


def test_adapter_reloads_with_peft_and_changes_the_output(sft: dict[str, Any], tiny_model: Path) -> None:
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    model = PeftModel.from_pretrained(base, str(sft["out"] / "adapter")).eval()
    text = tok.apply_chat_template([{"role": "user", "content": "a red travel mug under $30"}], tokenize=False)
    ids = tok(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        tuned = model(**ids).logits
        with model.disable_adapter():
            plain = model(**ids).logits
    assert (tuned - plain).abs().max().item() > 1e-2


def test_metrics_record_everything_needed_to_rerun(sft: dict[str, Any]) -> None:
    m = sft["metrics"]
    train = COMMERCE / "train.jsonl"
    assert m["data"]["train"] == {
        "uri": str(train),
        "sha256": hashlib.sha256(train.read_bytes()).hexdigest(),
        "rows": 240,
    }
    assert m["data"]["split"] | {"trainLinesDigest": None, "validationLinesDigest": None} == {
        "mode": "heldOut",
        "fraction": 0.3,
        "seed": 42,
        "trainRows": 168,
        "validationRows": 72,
        "trainLinesDigest": None,
        "validationLinesDigest": None,
    }
    assert m["spec"]["training"]["optimizer"] == "adam" and m["parameters"] == {
        "training.optimizer": "adam",
        "lora.rank": 16,
    }
    assert m["backend"] == {"requested": "hf", "used": "hf", "routedBecause": None}
    assert {"torch", "transformers", "peft", "trl"} <= set(m["versions"])
    assert {"data", "train", "export", "evaluate"} <= set(m["timings"]["phases"])
    # one wall time per optimizer step, together no longer than the training phase they are part of
    steps = m["timings"]["steps"]
    assert len(steps) == STEPS and all(s > 0 for s in steps)
    assert sum(steps) <= m["timings"]["trainer"]["train"]
    samples = m["evaluation"]["samples"]
    assert len(samples) == 8 and all(s["status"] == "ok" and "answer" in s for s in samples)
    assert m["evaluation"]["challenge"]["rows"] == 8
    assert json.loads((sft["out"] / "trial.json").read_text())["name"] == "trial-0"


def test_rerun_from_trial_json_is_identical(sft: dict[str, Any]) -> None:
    spec = json.loads((sft["out"] / "trial.json").read_text())
    spec["outputUri"] = str(sft["tmp"] / "rerun")
    spec["evaluation"] = None  # only the training is compared
    code, _ = run_trial(sft["tmp"] / "rerun-spec", spec)
    assert code == 0
    again = metrics(spec["outputUri"])
    assert again["lossCurve"] == sft["metrics"]["lossCurve"]
    assert again["validationLoss"] == sft["metrics"]["validationLoss"]
    first = load_file(str(sft["out"] / "adapter" / "adapter_model.safetensors"))
    second = load_file(str(Path(spec["outputUri"]) / "adapter" / "adapter_model.safetensors"))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_adamw_spec_builds_adamw(tiny_model: Path, tmp_path: Path) -> None:
    """The other optimizer, checked on the trainer object itself (no training needed)."""
    doc = trial_spec(str(tiny_model), str(tmp_path / "o"))
    doc["training"] = doc["training"] | {"optimizer": "adamw", "weightDecay": 0.1}
    spec = TrialSpec.model_validate(doc)
    backend = HfBackend(spec, tiny_model, tmp_path)
    trainer = backend.build_trainer(prepare_data(spec, tmp_path))
    trainer.create_optimizer_and_scheduler(num_training_steps=16)
    opt = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    assert type(opt) is torch.optim.AdamW
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    lrs = []
    for _ in range(16):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        trainer.lr_scheduler.step()
    assert lrs == pytest.approx([expected_learning_rate(s, 2e-3, 2e-4, 3, 16) for s in range(16)], rel=1e-6)
