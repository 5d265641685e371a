"""Trial runner on a GPU (a benchmark, not a test): one LoRA trial through the real entrypoint
(`adapterops_train` run, hf backend) on a model of a real Llama shape, with seeded random weights.

What a platform engineer sizing `gpusPerTrial` wants to know: does an 8B-class LoRA trial fit one GPU at
this micro batch and sequence length, how long do the steps take, how much memory does it hold. The
weights are random (nothing is downloaded): the loss is meaningless, the compute and memory are real.

    python bench/trainer/run.py --shape 8b --method sft --steps 20    # needs a CUDA GPU with >= 40 GB
    python bench/trainer/run.py --shape tiny --steps 8                # any machine

Prints one JSON document per run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "hack"), str(REPO / "operator"), str(REPO / "training-jobs")]

from testworld.tiny_model import build_tokenizer, corpus, llama_config  # noqa: E402
from testworld.trials import COMMERCE, metrics, run_trial, trial_spec  # noqa: E402

# Llama 3.2 1B and Llama 3.1 8B (the architecture of Llama-3.1-Nemotron-Nano-8B), real vocabulary size.
SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 64, "intermediate_size": 192, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "vocab_size": 1024},
    "1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
           "num_key_value_heads": 8, "vocab_size": 128256},
    "8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 8, "vocab_size": 128256},
}  # fmt: skip


def build_base(dest: Path, shape: str, seed: int, tokenizer: Any) -> int:
    """Save a seeded random model of `shape` (bf16 safetensors) with `tokenizer`; returns its parameters."""
    import torch
    from transformers import LlamaForCausalLM

    config = llama_config(tokenizer, **SHAPES[shape], max_position_embeddings=8192)
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):  # initialising 8B parameters on the CPU takes minutes
        model: Any = LlamaForCausalLM(config)
        model = model.to(torch.bfloat16)
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    params = int(sum(p.numel() for p in model.parameters()))
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return params


def mean_tokens(method: str, tokenizer: Any) -> float:
    """Mean tokens per training example (chat template applied), to turn samples/s into tokens/s."""
    path = COMMERCE / ("preference.jsonl" if method == "dpo" else "train.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if method == "dpo":  # prompt + chosen and prompt + rejected both go through the model
        texts = [2 * (r.get("system", "") + r["prompt"]) + r["chosen"] + r["rejected"] for r in rows]
    else:
        texts = [tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in rows]
    return sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts) / len(texts)


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import torch

    tokenizer = build_tokenizer(corpus())  # the test tokenizer, chat template included
    t0 = time.monotonic()
    params = build_base(work / "base", args.shape, args.seed, tokenizer)
    built = time.monotonic() - t0
    dataset: dict[str, Any] = {"train": str(COMMERCE / "train.jsonl"), "format": "chat", "seed": 42}
    if args.method == "dpo":
        dataset = {"train": str(COMMERCE / "preference.jsonl"), "format": "preference", "seed": 42}
    spec = trial_spec(
        str(work / "base"),
        str(work / "out"),
        method=args.method,
        dataset=dataset,
        lora={"rank": args.rank, "alpha": 2 * args.rank, "dropout": 0.0},
        training={
            "maxSteps": args.steps,
            "learningRate": 2e-4,
            "optimizer": "adamw",
            "weightDecay": 0.01,
            "scheduler": {"warmupSteps": 2, "minLearningRate": 2e-5},
            "globalBatchSize": args.global_batch,
            "microBatchSize": args.micro_batch,
            "seqLength": args.seq_length,
            "precision": "bf16",
            "seed": args.seed,
        },
    )
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t1 = time.monotonic()
    code, result = run_trial(work / "trial", spec)
    wall = time.monotonic() - t1
    doc: dict[str, Any] = {"shape": args.shape, "parameters": params, "method": args.method, "exitCode": code}
    if code != 0:
        return doc | {"result": result}
    m = metrics(str(work / "out"))
    train_s = m["timings"]["trainer"].get("train")
    samples = args.steps * args.global_batch
    tokens = mean_tokens(args.method, tokenizer) * samples
    losses = [p["loss"] for p in m["lossCurve"]]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return doc | {
        "gpu": gpu,
        "device": m["observed"]["device"],
        "precision": m["observed"]["precision"],
        "lora": m["observed"]["lora"],
        "steps": result["steps"],
        "microBatch": args.micro_batch,
        "globalBatch": args.global_batch,
        "buildSeconds": round(built, 1),
        "trialWallSeconds": round(wall, 1),
        "phases": {k: round(v, 1) for k, v in m["timings"]["phases"].items()},
        "trainer": {k: round(v, 2) for k, v in m["timings"]["trainer"].items()},
        "samplesPerSecond": round(samples / train_s, 2) if train_s else None,
        "tokensPerSecond": round(tokens / train_s) if train_s else None,
        "peakGpuMemoryGiB": round(torch.cuda.max_memory_allocated() / 2**30, 1) if gpu else None,
        "lossFirstLast": [round(losses[0], 3), round(losses[-1], 3)] if losses else None,
        "validationLoss": result.get("validationLoss"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--method", choices=["sft", "dpo"], default="sft")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--global-batch", type=int, default=16)
    parser.add_argument("--seq-length", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder, removed after")
    args = parser.parse_args()
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        print(json.dumps(run(args, args.workdir)), flush=True)
    else:
        with tempfile.TemporaryDirectory(prefix="adapterops-bench-trainer-") as tmp:
            print(json.dumps(run(args, Path(tmp))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
