"""Paired-judge benchmark: judged prompts per minute at each concurrency, prompts to a verdict, and the
share of canaries still undecided at the prompt cap.

    .venv/bin/python bench/judge/run.py                  # about 6 minutes on 2 cores
    .venv/bin/python bench/judge/run.py --quick          # a smoke run, about a minute

Throughput: the operator's own PairedJudge (adapterops.analysis.providers.judge) over real HTTP against
two stand-in serving pods (testworld.nim, the shipped challenge prompts, log-normal latency) and the
stand-in judge (testworld.judge, token-F1 scores, a fixed delay per judgement standing in for a hosted
judge's latency), `spec.canary.analysis.judge.concurrency` = 1, 4, 8, 16; repeated for a spread.

Prompts to a verdict: the operator's judge test (adapterops.analysis.paired_scores.judge_verdict)
looked at after every judged prompt, on simulated paired 0-5 scores (bench/canary/sim.py's model)
drawn from REPORT seeds, never the seed the bet's constants were chosen on (20240601, bench/canary).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "hack"), str(ROOT / "bench" / "canary")]
import sim  # noqa: E402
from aiohttp import web  # noqa: E402

from adapterops.analysis.paired_scores import judge_verdict  # noqa: E402
from adapterops.analysis.providers.judge import PairedJudge, parse_prompts  # noqa: E402
from adapterops.api.modeldeployment import JudgeAnalysis  # noqa: E402
from testworld.judge import StandInJudge  # noqa: E402
from testworld.nim import CHALLENGE, StandIn  # noqa: E402

REPORT_SEEDS = (101, 202, 303)  # never 20240601, the seed the bet's constants were tuned on


async def serve(median: float, quality: float, seed: int) -> tuple[web.AppRunner, str]:
    os.environ.update(STANDIN_LATENCY_MEDIAN=str(median), STANDIN_QUALITY=str(quality), STANDIN_SEED=str(seed))
    app = StandIn("nim", "base", None, {"commerce": "/adapters/commerce"}).app()
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def throughput(concurrency: int, prompts: int, judge_url: str, stable: str, canary: str) -> float:
    """Judged prompts per minute for one canary's worth of prompts."""
    spec = JudgeAnalysis.model_validate(
        {
            "dataset": "configmap://p/p.jsonl",
            "samples": prompts,
            "concurrency": concurrency,
            "judge": {"endpoint": judge_url, "model": "judge"},
        }
    )
    rows = parse_prompts(CHALLENGE.read_text())
    rows = (rows * (prompts // len(rows) + 1))[:prompts]
    judge = PairedJudge(rows, spec, None, prompts)
    started = time.perf_counter()
    judge.start(stable, canary, "commerce", "commerce")
    assert judge.task is not None
    await judge.task
    elapsed = time.perf_counter() - started
    if judge.problem or len(judge.pairs) != prompts:
        raise RuntimeError(f"judging failed: {judge.problem} ({len(judge.pairs)} pairs)")
    return 60.0 * prompts / elapsed


async def measure_throughput(args: argparse.Namespace) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    with StandInJudge() as judge:
        judge.delay_s = args.judge_seconds
        s_runner, stable = await serve(args.pod_median, 0.9, 1)
        c_runner, canary = await serve(args.pod_median, 0.8, 2)
        try:
            for c in args.concurrency:
                out[c] = []
                for _ in range(args.repeats):
                    n = min(args.prompts, max(8, 8 * c))  # enough prompts to keep c workers busy a while
                    out[c].append(await throughput(c, n, judge.url, stable, canary))
                print(f"  concurrency {c:>2}: {fmt_spread(out[c])} prompts/minute", flush=True)
        finally:
            await s_runner.cleanup()
            await c_runner.cleanup()
    return out


def prompts_to_verdict(seed: int, drop_kind: str, runs: int, cap: int) -> tuple[list[int], list[str]]:
    rng = np.random.default_rng(seed)
    world = sim.judge_world(0.3)
    stable, canary = sim.judge_scores(rng, world, drop_kind, runs, cap)
    counts, verdicts = [], []
    for s_run, c_run in zip(stable.tolist(), canary.tolist(), strict=True):
        pairs = list(zip(s_run, c_run, strict=True))
        verdict, n = "Inconclusive", cap
        for t in range(1, cap + 1):  # the controller looks after every judged prompt (every 2 s)
            v = judge_verdict(pairs[:t], max_drop=0.3)
            if v.verdict != "Inconclusive":
                verdict, n = v.verdict, t
                break
        counts.append(n)
        verdicts.append(verdict)
    return counts, verdicts


def fmt_spread(xs: list[float]) -> str:
    if len(xs) == 1:
        return f"{xs[0]:.1f}"
    return f"{statistics.median(xs):.1f} (min {min(xs):.1f}, max {max(xs):.1f}, n={len(xs)})"


def p90(xs: list[int]) -> float:
    return float(np.quantile(np.array(xs), 0.9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 4, 8, 16])
    parser.add_argument("--prompts", type=int, default=64, help="most prompts per throughput run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pod-median", type=float, default=0.5, help="stand-in pods' median latency, seconds")
    parser.add_argument("--judge-seconds", type=float, default=0.5, help="stand-in judge's time per judgement")
    parser.add_argument("--runs", type=int, default=400, help="simulated canaries per hypothesis and seed")
    parser.add_argument("--cap", type=int, default=100, help="prompt cap (spec samples; default 100)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer repeats, runs and settings")
    args = parser.parse_args()
    if args.quick:
        args.concurrency, args.repeats, args.runs, args.prompts = [1, 8], 1, 40, 16
    print(f"# Paired judge benchmark (load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(
        f"\n## Throughput: pods median {args.pod_median} s, judge {args.judge_seconds} s per judgement "
        "(contended machine: wall-clock figures)"
    )
    rates = asyncio.run(measure_throughput(args))
    print(f"\n## Prompts to a verdict (max drop 0.3, cap {args.cap}, looked at after every prompt)")
    print("\n| canary | seed | verdicts Pass / Fail / undecided at cap | prompts to verdict: median | P90 |")
    print("|---|---:|---|---:|---:|")
    medians: dict[str, list[float]] = {}
    for kind, label in (("null", "as good as stable"), ("shift", "mean drop 0.3 (the tolerance)")):
        for seed in REPORT_SEEDS:
            counts, verdicts = prompts_to_verdict(seed, kind, args.runs, args.cap)
            decided = [n for n, v in zip(counts, verdicts, strict=True) if v != "Inconclusive"] or [args.cap]
            share = {v: verdicts.count(v) / len(verdicts) for v in ("Pass", "Fail", "Inconclusive")}
            medians.setdefault(label, []).append(statistics.median(counts))
            print(
                f"| {label} | {seed} | {100 * share['Pass']:.1f}% / {100 * share['Fail']:.1f}% / "
                f"{100 * share['Inconclusive']:.1f}% | {statistics.median(decided):.0f} | {p90(decided):.0f} |"
            )
    print("\n(median and P90 over the canaries that decided; undecided ones stop at the cap)")
    print("\n## Minutes to a verdict (median prompts / median throughput)")
    for label, meds in medians.items():
        m = statistics.median(meds)
        cells = ", ".join(f"c={c}: {m / statistics.median(r):.1f} min" for c, r in rates.items())
        print(f"- {label}: {m:.0f} prompts -> {cells}")


if __name__ == "__main__":
    main()
