"""The nemo backend end to end, on a GPU machine with NeMo 2.7 (the trainer-nemo image's stack): a Llama built in
code with Llama 3.2 1B's architecture (random weights, saved in Hugging Face format, so the recipe's own model
config matches it), imported with NeMo's HF importer, LoRA SFT for a few steps with Adam and with AdamW under
warmup + cosine, exported to the Hugging Face PEFT layout and loaded back by PEFT; all through the real trial
entrypoint (`python -m adapterops_train run`).

Skipped where there is no CUDA GPU or no NeMo (this is the case on the CPU machines the suite usually runs on:
NeMo 2's LLM collection needs Megatron Core and Transformer Engine on CUDA). Run it inside the trainer-nemo
image on a GPU node: `pytest -q tests/train/test_train_nemo_gpu.py`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="the train tests need the training extra")
if not torch.cuda.is_available():
    pytest.skip("the nemo backend needs a CUDA GPU; none here", allow_module_level=True)
if importlib.util.find_spec("nemo") is None or importlib.util.find_spec("nemo_run") is None:
    pytest.skip("NeMo 2 (nemo, nemo_run) is not installed: run inside the trainer-nemo image", allow_module_level=True)

from testworld.tiny_model import build_tokenizer, corpus, llama_config  # noqa: E402
from testworld.trials import COMMERCE, metrics, run_trial, trial_spec  # noqa: E402

BASE = "meta-llama/Llama-3.2-1B"  # recipe llama32_1b (adapterops_common.nemo_models)
STEPS, WARMUP, PEAK, MINIMUM = 6, 2, 1e-3, 1e-4
# Llama 3.2 1B's architecture (NeMo's Llama32Config1B; the HF checkpoint's config.json): the recipe builds its
# model from this config and restores the imported weights into it, so the shapes must be these.
LLAMA32_1B = {
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "rope_theta": 500000.0,
    "rope_scaling": {
        "rope_type": "llama3",
        "factor": 32.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
}


@pytest.fixture(scope="module")
def random_llama32_1b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights in Llama 3.2 1B's shape, bf16, with the test world's small tokenizer (its ids fit the
    vocabulary) and chat template: nothing downloaded."""
    from transformers import LlamaForCausalLM

    dest = tmp_path_factory.mktemp("llama32-1b-random")
    tokenizer = build_tokenizer(corpus())
    config = llama_config(tokenizer, **LLAMA32_1B)
    config.tie_word_embeddings = True  # as the 1B checkpoint (share_embeddings_and_output_weights)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    return dest


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_nemo_lora_sft_imports_trains_exports_and_peft_loads_it(
    random_llama32_1b: Path, tmp_path: Path, optimizer: str
) -> None:
    out = tmp_path / "out"
    spec = trial_spec(
        str(random_llama32_1b),
        str(out),
        backend="nemo",
        baseModel={"name": BASE, "uri": str(random_llama32_1b)},
        dataset={"train": str(COMMERCE / "train.jsonl")},
        training={
            "maxSteps": STEPS,
            "learningRate": PEAK,
            "optimizer": optimizer,
            "weightDecay": 0.01,
            "scheduler": {"type": "cosine", "warmupSteps": WARMUP, "minLearningRate": MINIMUM},
            "globalBatchSize": 8,
            "microBatchSize": 2,
            "seqLength": 256,
            "precision": "bf16",
        },
    )
    code, result = run_trial(tmp_path / "run", spec)
    assert code == 0 and result["status"] == "succeeded", result
    doc: dict[str, Any] = metrics(str(out))
    observed = doc["observed"]
    assert observed["recipe"] == "llama32_1b" and observed["device"] == "cuda"
    # Adam is Megatron's adam without decoupled decay; AdamW with it.
    assert observed["optimizer"]["decoupledWeightDecay"] is (optimizer == "adamw")
    lrs = observed["learningRates"]
    assert len(lrs) == STEPS and max(lrs) == pytest.approx(PEAK, rel=0.05)
    assert all(a >= b for a, b in zip(lrs[WARMUP:], lrs[WARMUP + 1 :], strict=False))  # cosine decays
    assert lrs[-1] >= MINIMUM * 0.99  # to the minimum, not zero

    adapter = out / "adapter"
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == spec["lora"]["rank"]
    assert (adapter / "adapter_model.safetensors").is_file()
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(random_llama32_1b, torch_dtype=torch.bfloat16)
    loaded = PeftModel.from_pretrained(base, adapter)
    lora_weights = [n for n, _ in loaded.named_parameters() if "lora_" in n]
    assert lora_weights, "PEFT found no LoRA weights in the exported adapter"
