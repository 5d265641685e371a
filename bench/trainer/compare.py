"""Ours vs a plain TRL/PEFT script on the same GPU (issue 15, item 7): for each sequence length, runs
`run.py` (our entrypoint) and `plain.py` alternately, each in its own process (a fresh CUDA caching
allocator, so reserved memory is each run's own), on one base model built once; then prints every run and
a summary: steady-state tokens/s (median and min-max over the repeats), ours/plain per pair, MFU, peak
reserved and allocated memory, and the gap to NeMo's published LoRA throughput.

    python bench/trainer/compare.py --shape 8b --configs 2048:4:16,4096:2:8 --repeats 2 --budget 420   # GPU
    python bench/trainer/compare.py --shape tiny                                                        # CPU smoke

A config is seq_length:micro_batch:global_batch. `--budget` (seconds) stops starting runs that would not
finish in time (a run is assumed to take as long as the slowest so far), so a lent machine's time limit
cuts repeats, never a run in the middle.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "hack")]  # workload.py uses the test tokenizer's layout

from workload import build_base, flops_per_token  # noqa: E402

# NeMo's published LoRA fine-tuning throughput (NeMo 24.07, DGX-H100, FP8, inputs packed to 4096 tokens;
# the closest published LoRA figure to an 8B model we found: LLAMA2-7B, not Llama 3 8B):
# https://github.com/NVIDIA/NeMo/blob/070a0bb168d405d653b9734c0017cf5078e77c0d/docs/source/performance/performance_summary.md
NEMO_LORA = {
    "source": "NVIDIA/NeMo docs/source/performance/performance_summary.md (NeMo 24.07), Finetuning table",
    "model": "llama2-7b",
    "system": "DGX-H100, 8 GPUs, TP 1 PP 1, GBS 32 MBS 1",
    "precision": "FP8",
    "packedSeqLength": 4096,
    "tokensPerSecondPerGpu": 25206,
    "modelTflopsPerGpuAsPublished": 673,
    "h100Fp8DenseTflops": 1979,  # H100 SXM datasheet: FP8 3,958 with sparsity
}


def run_one(
    script: str, args: argparse.Namespace, config: tuple[int, int, int], base: Path, work: Path
) -> dict[str, Any]:
    seq, micro, global_ = config
    cmd = [
        sys.executable, str(HERE / script), "--shape", args.shape, "--base-dir", str(base), "--workdir", str(work),
        "--seq-length", str(seq), "--micro-batch", str(micro), "--global-batch", str(global_),
        "--steps", str(args.steps), "--warmup-steps", str(args.warmup_steps), "--rank", str(args.rank),
        "--seed", str(args.seed),
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.run_timeout, check=False)
    last = [line for line in proc.stdout.splitlines() if line.startswith('{"script"')]
    if proc.returncode or not last:
        return {"script": script, "error": f"exit {proc.returncode}", "stderrTail": proc.stderr[-2000:]}
    doc: dict[str, Any] = json.loads(last[-1])
    doc["processSeconds"] = round(time.monotonic() - t0, 1)
    return doc


def spread(values: list[float]) -> dict[str, Any]:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4), "n": len(values)}  # fmt: skip


def summarise(runs: list[dict[str, Any]], shape: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for seq in sorted({r["settings"]["seq_length"] for r in runs if "settings" in r}):
        row: dict[str, Any] = {"seqLength": seq}
        by: dict[str, list[dict[str, Any]]] = {}
        for r in runs:
            if r.get("settings", {}).get("seq_length") == seq and "tokensPerSecond" in r.get("steady", {}):
                by.setdefault(r["script"], []).append(r)
        for script, rs in by.items():
            tps = [r["steady"]["tokensPerSecond"] for r in rs]
            row[script] = {
                "tokensPerSecond": spread(tps),
                "modelTflopsPerSecond": spread([r["steady"]["modelTflopsPerSecond"] for r in rs]),
                "mfu": spread([r["steady"]["mfu"] for r in rs]) if "mfu" in rs[0]["steady"] else None,
                "mfuSixN": spread([r["steady"]["mfuSixN"] for r in rs]) if "mfuSixN" in rs[0]["steady"] else None,
                "memoryGiB": {
                    "maxReserved": max(r["memory"]["maxReservedGiB"] for r in rs),
                    "maxAllocated": max(r["memory"]["maxAllocatedGiB"] for r in rs),
                }
                if rs[0].get("memory")
                else None,
                "microGlobal": [rs[0]["settings"]["micro_batch"], rs[0]["settings"]["global_batch"]],
            }
        if "ours" in by and "plain" in by:  # pairs in run order: each plain run right after its ours run
            pairs = zip(by["ours"], by["plain"], strict=False)
            row["oursOverPlain"] = spread(
                [o["steady"]["tokensPerSecond"] / p["steady"]["tokensPerSecond"] for o, p in pairs]
            )
        if seq == NEMO_LORA["packedSeqLength"] and "ours" in by:
            nemo = NEMO_LORA["tokensPerSecondPerGpu"] * flops_per_token("llama2-7b", seq, 16)["lora"] / 1e12
            ours = statistics.median(r["steady"]["modelTflopsPerSecond"] for r in by["ours"])
            row["nemoGap"] = {
                "nemoModelTflopsOurFormula": round(nemo, 1),
                "oursModelTflops": float(f"{ours:.4g}"),
                "oursOverNemo": float(f"{ours / nemo:.3g}"),
                "nemoShareOfFp8Peak": round(nemo / NEMO_LORA["h100Fp8DenseTflops"], 3),
                "note": "NeMo: FP8, Llama 2 7B, 8 GPUs data-parallel, per GPU; ours: BF16, this shape, one GPU",
            }
        out.append(row)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="tiny")
    parser.add_argument("--configs", default="128:2:4,256:1:4", help="seq:micro:global, comma-separated")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget", type=float, default=3600, help="seconds; no run starts that would overrun")
    parser.add_argument("--run-timeout", type=float, default=600)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    configs = [tuple(int(x) for x in c.split(":")) for c in args.configs.split(",")]
    started = time.monotonic()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="adapterops-bench-compare-"))
    base = build_base(work / f"base-{args.shape}", args.shape)
    print(json.dumps({"baseBuiltSeconds": round(time.monotonic() - started, 1), "base": str(base)}), flush=True)
    runs: list[dict[str, Any]] = []
    slowest = 0.0
    stopped = None
    for repeat in range(args.repeats):
        for config in configs:
            for script in ("run.py", "plain.py"):
                left = args.budget - (time.monotonic() - started)
                if left < slowest * 1.2:
                    stopped = f"budget: {left:.0f} s left, slowest run {slowest:.0f} s"
                    break
                t0 = time.monotonic()
                doc = run_one(script, args, config, base, work / f"{script[:-3]}-{config[0]}-{repeat}")  # type: ignore[arg-type]
                slowest = max(slowest, time.monotonic() - t0)
                doc["repeat"] = repeat
                runs.append(doc)
                print(json.dumps(doc), flush=True)
            if stopped:
                break
        if stopped:
            break
    summary = {"shape": args.shape, "summary": summarise(runs, args.shape), "nemoReference": NEMO_LORA,
               "stopped": stopped, "seconds": round(time.monotonic() - started, 1)}  # fmt: skip
    print(json.dumps(summary, indent=1), flush=True)
    return 0 if runs and all("error" not in r for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
