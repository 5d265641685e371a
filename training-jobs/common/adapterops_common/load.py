"""The serving profile's load generator: a real OpenAI-API client driving one candidate.

    python -m adapterops_common load --url URL --model NAME --prompts PATH|s3://... (--rate R | --concurrency C)
        --duration D [--warmup W] [--max-tokens N] [--termination-log PATH]

Open loop (`--rate`): a request starts every 1/R seconds whatever the latency (the load level of an SLO
such as "p95 <= 2 s at 10 req/s"); closed loop (`--concurrency`): C requests in flight at all times. The
first W seconds warm the engine and are not measured; the window is the next D seconds. The report (JSON,
to the termination log and stdout) gives the window in Unix seconds and the client's own counts of the
requests it started in the window; the operator reads the engine's series over that window. Exit 0 once the
window ran (failed requests are data, not a failure of the run), 1 when the prompts cannot be read,
2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from adapterops_common import storage

REQUEST_TIMEOUT = 300.0


@dataclass
class Tally:
    start: float
    end: float
    sent: int = 0
    ok: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        out: dict[str, Any] = {"start": self.start, "end": self.end, "sent": self.sent, "ok": self.ok}
        out["errors"] = self.errors
        if lat:
            out["client"] = {
                "p50": round(lat[len(lat) // 2], 4),
                "p95": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 4),
                "mean": round(statistics.fmean(lat), 4),
            }
        return out


def read_prompts(source: str, scratch: Path) -> list[dict[str, str]]:
    path = storage.fetch_file(source, scratch) if source.startswith(("s3://", "pvc://")) else Path(source)
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            raise ValueError(f"{source}:{n}: each line is a JSON object with a string prompt")
        rows.append({k: str(v) for k, v in row.items() if k in ("prompt", "system")})
    if not rows:
        raise ValueError(f"{source}: no prompts")
    return rows


async def one(
    http: httpx.AsyncClient, url: str, model: str, row: dict[str, str], max_tokens: int, tally: Tally
) -> None:
    messages = ([{"role": "system", "content": row["system"]}] if row.get("system") else []) + [
        {"role": "user", "content": row["prompt"]}
    ]
    body = {"model": model, "messages": messages, "max_tokens": max_tokens}
    begun = time.time()
    measured = tally.start <= begun < tally.end
    try:
        resp = await http.post(f"{url.rstrip('/')}/v1/chat/completions", json=body, timeout=REQUEST_TIMEOUT)
        ok = resp.status_code == 200
    except httpx.HTTPError:
        ok = False
    if measured:
        tally.sent += 1
        if ok:
            tally.ok += 1
            tally.latencies.append(time.time() - begun)
        else:
            tally.errors += 1


async def run(args: argparse.Namespace, prompts: list[dict[str, str]]) -> Tally:
    began = time.time()
    tally = Tally(start=began + args.warmup, end=began + args.warmup + args.duration)
    stop = tally.end
    rows = itertools.cycle(prompts)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits) as http:
        if args.rate:
            tasks = []
            interval, n = 1.0 / args.rate, 0
            while (due := began + n * interval) < stop:
                await asyncio.sleep(max(0.0, due - time.time()))
                tasks.append(asyncio.create_task(one(http, args.url, args.model, next(rows), args.max_tokens, tally)))
                n += 1
            await asyncio.gather(*tasks)
        else:

            async def worker() -> None:
                while time.time() < stop:
                    await one(http, args.url, args.model, next(rows), args.max_tokens, tally)

            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return tally


def cmd_load(args: argparse.Namespace) -> int:
    if bool(args.rate) == bool(args.concurrency) or args.duration <= 0:
        print("load: give exactly one of --rate or --concurrency, and a positive --duration", file=sys.stderr)
        return 2
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would bury the report
    try:
        prompts = read_prompts(args.prompts, Path(args.scratch))
    except (OSError, ValueError, storage.UriError) as exc:
        print(f"load: cannot read prompts: {exc}", file=sys.stderr)
        return 1
    tally = asyncio.run(run(args, prompts))
    report = json.dumps(tally.report(), separators=(",", ":"))
    if args.termination_log:
        try:
            Path(args.termination_log).write_text(report)
        except OSError as exc:
            print(f"load: cannot write {args.termination_log}: {exc}", file=sys.stderr)
    print(report)
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("load", help="drive a serving endpoint for a serving profile's window")
    p.add_argument("--url", required=True, help="the engine's base URL (http://POD_IP:8000)")
    p.add_argument("--model", required=True, help="served model name requested")
    p.add_argument("--prompts", required=True, help="JSON Lines file: a path, s3:// or pvc://")
    p.add_argument("--rate", type=float, default=0.0, help="open loop: requests started per second")
    p.add_argument("--concurrency", type=int, default=0, help="closed loop: requests in flight")
    p.add_argument("--duration", type=float, required=True, help="measured window, seconds")
    p.add_argument("--warmup", type=float, default=0.0, help="seconds of load before the window")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--termination-log", default="", help="where the report goes (the pod's termination message)")
    p.add_argument("--scratch", default="/tmp/prompts", help="download folder for s3:// prompts")
    p.set_defaults(fn=cmd_load)
