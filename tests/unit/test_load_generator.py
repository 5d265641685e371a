"""The serving profile's load generator (`python -m adapterops_common load`) against the stand-in engine:
the open loop starts requests at the rate whatever the latency, the closed loop keeps the concurrency,
only the window's requests are counted, failed requests are counted as errors, and its report is the
JSON the operator parses."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from test_engine_standin import engine, running

from adapterops.servingprofile.observe import LoadReport, parse_report
from adapterops_common import cli, load
from testworld import engines


def args(url: str, prompts: Path, **over: object) -> argparse.Namespace:
    base = {"url": url, "model": "base", "prompts": str(prompts), "rate": 0.0, "concurrency": 0, "duration": 1.0}
    base |= {"warmup": 0.5, "max_tokens": 16, "termination_log": "", "scratch": "/tmp"}
    return argparse.Namespace(**(base | over))


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "red shoes", "system": "s"}\n\n{"prompt": "blue socks"}\n')
    return path


async def test_the_open_loop_starts_the_rate_and_counts_only_the_window(tmp_path: Path, prompts: Path) -> None:
    e = engine(engines.NIM2, tmp_path, STANDIN_LATENCY_MEDIAN="0.2")
    async with running(e) as client:
        url = str(client.make_url("")).rstrip("/")
        tally = await load.run(args(url, prompts, rate=20.0), load.read_prompts(str(prompts), tmp_path))
    # 20/s over a 1 s window: 20 started in it (a scheduling hiccup at an edge may move one across).
    assert 19 <= tally.sent <= 21 and tally.ok == tally.sent and tally.errors == 0
    assert tally.end - tally.start == pytest.approx(1.0)
    report = tally.report()
    assert 0.1 < report["client"]["mean"] < 1.0


async def test_the_closed_loop_keeps_its_concurrency_and_failures_are_errors(tmp_path: Path, prompts: Path) -> None:
    e = engine(engines.NIM2, tmp_path, STANDIN_LATENCY_MEDIAN="0.1")
    async with running(e) as client:
        url = str(client.make_url("")).rstrip("/")
        ok = await load.run(args(url, prompts, concurrency=2), load.read_prompts(str(prompts), tmp_path))
        missing = await load.run(args(url, prompts, concurrency=2, model="nope"), [{"prompt": "x"}])
    # Two in flight for about 1 s at ~0.1 s each: about 20 requests, all answered.
    assert 8 <= ok.sent <= 40 and ok.errors == 0
    assert missing.sent > 0 and missing.errors == missing.sent and missing.ok == 0


def test_the_report_is_what_the_operator_reads(tmp_path: Path, prompts: Path) -> None:
    tally = load.Tally(start=100.0, end=160.0, sent=3, ok=2, errors=1, latencies=[0.5, 0.7])
    assert parse_report(json.dumps(tally.report())) == LoadReport(100.0, 160.0, 3, 2, 1)


def test_bad_arguments_exit_2_and_unreadable_prompts_exit_1(tmp_path: Path) -> None:
    base = ["load", "--url", "http://127.0.0.1:9", "--model", "m", "--duration", "1"]
    assert cli.main([*base, "--prompts", str(tmp_path / "p.jsonl")]) == 2  # neither --rate nor --concurrency
    assert cli.main([*base, "--prompts", str(tmp_path / "missing.jsonl"), "--rate", "1"]) == 1
    (tmp_path / "bad.jsonl").write_text('{"no": "prompt"}\n')
    assert cli.main([*base, "--prompts", str(tmp_path / "bad.jsonl"), "--rate", "1"]) == 1
