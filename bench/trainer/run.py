"""Our trainer's steady-state throughput (a benchmark, not a test): one LoRA SFT trial through the real
entrypoint (`adapterops_train` run, hf backend, the trial spec our operator would send) on a seeded random
Llama of a real shape, with a full-vocabulary synthetic tokenizer and rows filled to `--seq-length`
(bench/trainer/workload.py says why and how).

What a platform engineer sizing `gpusPerTrial` wants to know: tokens/s once warmed up, the share of the
GPU's peak that is (MFU), and the memory the caching allocator holds (reserved), not only what tensors use
(allocated). `plain.py` measures a plain TRL/PEFT script with the same settings; `compare.py` runs both.

    python bench/trainer/run.py --shape 8b --seq-length 4096 --micro-batch 2 --global-batch 8   # a GPU
    python bench/trainer/run.py --shape tiny --seq-length 128 --steps 4 --warmup-steps 1          # any machine

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(HERE), str(REPO / "hack"), str(REPO / "operator"), str(REPO / "training-jobs")]

import workload  # noqa: E402
from workload import SHAPES, build_base, cuda_memory, settings_from, steady_state, write_dataset  # noqa: E402

from testworld.trials import metrics, run_trial  # noqa: E402


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import torch

    settings = settings_from(args)
    t0 = time.monotonic()
    base = build_base(args.base_dir or work / "base", args.shape)
    built = time.monotonic() - t0
    train, val = write_dataset(work / "data", settings, SHAPES[args.shape]["vocab_size"])
    spec = settings.trial_spec(str(base), str(work / "out"), str(train), str(val))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t1 = time.monotonic()
    code, result = run_trial(work / "trial", spec)
    wall = time.monotonic() - t1
    doc: dict[str, Any] = {"script": "ours", "shape": args.shape, "settings": settings.__dict__, "exitCode": code}
    if code != 0:
        return doc | {"result": result}
    m = metrics(str(work / "out"))
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return doc | {
        "gpu": gpu,
        "device": m["observed"]["device"],
        "precision": m["observed"]["precision"],
        "lora": m["observed"]["lora"],
        "gradientAccumulationSteps": m["observed"]["gradientAccumulationSteps"],
        "steps": result["steps"],
        "steady": steady_state(m["timings"]["steps"], settings, args.shape, gpu),
        "memory": cuda_memory(),
        "buildSeconds": round(built, 1),
        "trialWallSeconds": round(wall, 1),
        "trainer": {k: round(v, 2) for k, v in m["timings"]["trainer"].items()},
        "stepSeconds": m["timings"]["steps"],
        "trainLoss": round(float(result["trainLoss"]), 3),
    }


if __name__ == "__main__":
    sys.exit(workload.main(__doc__ or "", run, "adapterops-bench-trainer-"))
