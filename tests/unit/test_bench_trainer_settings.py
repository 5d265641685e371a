"""The trainer benchmark compares like with like: the plain TRL/PEFT script (bench/trainer/plain.py) trains
the same LoRA, batches, schedule, optimizer and data as our trainer does for the benchmark's trial spec, and
the FLOPs formula counts the LoRA parameters the trainer really creates."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench" / "trainer"))

import workload  # noqa: E402

# TrainingArguments that may differ, each for a reason that does not change what is trained.
ALLOWED_ARG_DIFFERENCES = {
    "output_dir",
    "adam_beta1",  # ours passes betas/eps to the optimizer class itself (compared below on the built optimizers)
    "adam_beta2",
    "adam_epsilon",
    "optim",  # ours: optimizer_cls_and_kwargs (torch.optim.AdamW); plain: TRL's default adamw_torch_fused
    "ddp_find_unused_parameters",  # ours sets False for DDP; one process here
    "per_device_eval_batch_size",  # the plain script does not evaluate
}
LORA_FIELDS = (
    "r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "bias",
    "use_rslora",
    "use_dora",
    "init_lora_weights",
)


def test_llama_8b_lora_parameter_count_matches_the_measured_adapter() -> None:
    # 41.9 M trainable parameters: r 16 on all 7 projections, as metrics.json observed on the H200 run
    assert workload.lora_parameters("8b", 16) == 41_943_040
    n = workload.matmul_parameters("8b")
    norms = 32 * 2 * 4096 + 4096
    assert n["layers"] + n["lmHead"] + n["embedding"] + norms == 8_030_261_248  # Llama 3.1 8B


def test_lora_flops_count_less_than_six_n_and_grow_with_sequence_length() -> None:
    short, long = workload.flops_per_token("8b", 2048, 16), workload.flops_per_token("8b", 4096, 16)
    assert short["lora"] < short["sixN"]
    assert long["lora"] - short["lora"] == 3 * 2 * 32 * 2048 * 4096  # causal attention term only


def test_steady_state_leaves_out_the_warm_up_steps_and_uses_the_gpus_dense_peak() -> None:
    settings = workload.Settings(micro_batch=2, global_batch=8, seq_length=4096, steps=5, warmup_steps=2)
    doc = workload.steady_state([30.0, 9.0, 4.0, 4.0, 4.0], settings, "8b", "NVIDIA H200")
    assert doc["measuredSteps"] == 3 and doc["tokensPerSecond"] == 8 * 4096 / 4.0
    flops = workload.flops_per_token("8b", 4096, 16)
    assert doc["mfu"] == round(8 * 4096 / 4.0 * flops["lora"] / 989e12, 4)
    assert doc["mfu"] < doc["mfuSixN"]
    assert "mfu" not in workload.steady_state([1.0, 1.0, 1.0], settings, "8b", "NVIDIA H100 NVL")  # no cited peak


def _optimizer_groups(trainer: Any) -> list[dict[str, Any]]:
    opt = trainer.create_optimizer()
    return [
        {
            "params": sorted(tuple(p.shape) for p in g["params"]),
            "lr": g["lr"],
            "betas": tuple(g["betas"]),
            "eps": g["eps"],
            "weight_decay": g["weight_decay"],
            "class": type(opt).__name__ if not hasattr(opt, "optimizer") else type(opt.optimizer).__name__,
        }
        for g in opt.param_groups
    ]


@pytest.mark.train
def test_plain_script_trains_the_same_lora_batches_optimizer_and_rows_as_our_trainer(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="needs the training extra")
    from plain import build_trainer

    from adapterops_common.contract import TrialSpec
    from adapterops_train.backends.hf import HfBackend
    from adapterops_train.runner import prepare_data

    settings = workload.Settings(micro_batch=2, global_batch=4, seq_length=64, steps=3, warmup_steps=1)
    base = workload.build_base(tmp_path / "base", "tiny")
    train, val = workload.write_dataset(tmp_path / "data", settings, workload.SHAPES["tiny"]["vocab_size"])
    spec = TrialSpec.model_validate(settings.trial_spec(str(base), str(tmp_path / "out"), str(train), str(val)))
    ours = HfBackend(spec, base, tmp_path / "ours").build_trainer(prepare_data(spec, tmp_path / "scratch"))
    plain = build_trainer(settings, base, train, tmp_path / "plain")

    a, b = ours.args.to_dict(), plain.args.to_dict()
    differing = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
    assert differing <= ALLOWED_ARG_DIFFERENCES, {k: (a.get(k), b.get(k)) for k in differing - ALLOWED_ARG_DIFFERENCES}
    assert plain.args.gradient_checkpointing and not plain.args.packing  # what ours gets from TRL's defaults

    lora_ours, lora_plain = ours.model.peft_config["default"], plain.model.peft_config["default"]
    assert {f: getattr(lora_ours, f) for f in LORA_FIELDS} == {f: getattr(lora_plain, f) for f in LORA_FIELDS}
    trainable = {n for n, p in ours.model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, p in plain.model.named_parameters() if p.requires_grad}
    assert sum(p.numel() for p in ours.model.parameters() if p.requires_grad) == workload.lora_parameters("tiny", 16)

    assert _optimizer_groups(ours) == _optimizer_groups(plain)
    assert _optimizer_groups(ours)[0]["betas"] == workload.ADAM_BETAS

    # the same rows, each exactly seq_length tokens (full, as packing would make them), loss on the same tokens
    for column in ("input_ids", "labels"):  # labels: -100 outside the answer
        assert ours.train_dataset[column] == plain.train_dataset[column]
    assert {len(ids) for ids in plain.train_dataset["input_ids"]} == {settings.seq_length}
    assert max(max(ids) for ids in plain.train_dataset["input_ids"]) > workload.SHAPES["tiny"]["vocab_size"] * 0.9
