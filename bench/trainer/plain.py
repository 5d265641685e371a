"""The baseline for `run.py`: a plain TRL/PEFT script, as a user would write it from the TRL and PEFT
documentation (SFTTrainer + LoraConfig, defaults wherever our trainer does not set something), with the
settings our trainer uses for the same trial (bench/trainer/workload.py `Settings`): rank, alpha, dropout,
the 7 target projections, micro and global batch, sequence length, bf16, AdamW with our betas/eps/weight
decay, cosine schedule to the same minimum, gradient clipping 1.0, gradient checkpointing (TRL's default,
which our trainer keeps), loss on the answer only. Same base, same data, same seed.

Left as the plain user gets them (differences that are part of what is measured, not settings): TRL's
default optimizer implementation (`adamw_torch_fused`, ours passes the `torch.optim.AdamW` class, which
picks the foreach implementation) and no evaluation passes before/after (ours evaluates; the steady-state
figures exclude it).

    python bench/trainer/plain.py --shape 8b --seq-length 4096 --micro-batch 2 --global-batch 8   # a GPU
    python bench/trainer/plain.py --shape tiny --seq-length 128 --steps 4 --warmup-steps 1          # any machine

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "hack")]  # workload.py uses the test tokenizer's layout

import workload  # noqa: E402
from workload import (  # noqa: E402
    ADAM_BETAS,
    ADAM_EPS,
    HF_TARGET_MODULES,
    MAX_GRAD_NORM,
    SHAPES,
    Settings,
    build_base,
    cuda_memory,
    settings_from,
    steady_state,
    write_dataset,
)


def build_trainer(settings: Settings, base: Path, train: Path, out: Path, callbacks: list[Any] | None = None) -> Any:
    """The plain script's trainer (exposed so the unit test can compare it with ours before training)."""
    import torch
    from datasets import Dataset  # type: ignore[attr-defined]
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer  # type: ignore[attr-defined]

    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.bfloat16 if bf16 else torch.float32)
    model = model.to("cuda" if cuda else "cpu")
    rows = [json.loads(line) for line in train.read_text(encoding="utf-8").splitlines() if line.strip()]
    # prompt = every turn before the last, completion = the last (the assistant's answer)
    dataset = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows])
    config = SFTConfig(
        output_dir=str(out),
        max_steps=settings.steps,
        per_device_train_batch_size=settings.micro_batch,
        gradient_accumulation_steps=settings.accumulation,
        max_length=settings.seq_length,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        adam_beta1=ADAM_BETAS[0],
        adam_beta2=ADAM_BETAS[1],
        adam_epsilon=ADAM_EPS,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr": settings.min_learning_rate},
        warmup_steps=settings.warmup_steps,
        max_grad_norm=MAX_GRAD_NORM,
        gradient_checkpointing=True,
        completion_only_loss=True,
        packing=False,
        bf16=bf16,
        use_cpu=not cuda,
        seed=settings.seed,
        data_seed=settings.seed,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    lora = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=HF_TARGET_MODULES,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return SFTTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=callbacks or [],
    )


def step_timer() -> Any:
    """The same per-step clock as our trainer's observer (backends/hf.py `_Observer.on_step_end`)."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self._last = 0.0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._last = time.monotonic()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            now = time.monotonic()
            self.seconds.append(round(now - self._last, 6))
            self._last = now

    return StepTimer()


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import torch

    settings = settings_from(args)
    t0 = time.monotonic()
    base = build_base(args.base_dir or work / "base", args.shape)
    built = time.monotonic() - t0
    train, _ = write_dataset(work / "data", settings, SHAPES[args.shape]["vocab_size"])
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    timer = step_timer()
    t1 = time.monotonic()
    trainer = build_trainer(settings, base, train, work / "out", [timer])
    setup = time.monotonic() - t1
    lengths = {len(ids) for ids in trainer.train_dataset["input_ids"]}
    t2 = time.monotonic()
    result = trainer.train()
    train_s = time.monotonic() - t2
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return {
        "script": "plain",
        "shape": args.shape,
        "settings": settings.__dict__,
        "gpu": gpu,
        "rowLengths": sorted(lengths),  # one value, seq_length: every row full
        "trainableParameters": trainable,
        "optim": str(trainer.args.optim),
        "steps": int(trainer.state.global_step),
        "steady": steady_state(timer.seconds, settings, args.shape, gpu),
        "memory": cuda_memory(),
        "buildSeconds": round(built, 1),
        "trainer": {"setup": round(setup, 2), "train": round(train_s, 2)},
        "stepSeconds": timer.seconds,
        "trainLoss": round(float(result.training_loss), 3),
    }


if __name__ == "__main__":
    sys.exit(workload.main(__doc__ or "", run, "adapterops-bench-plain-"))
