"""The relative latency test's error bounds, by simulation through the controller's own data path:
`analyse` (what the reconciler calls) with its snapshots, Prometheus client and verdict, against a
stand-in for Prometheus' query API serving simulated canaries (testworld.promsim: load ramp, steps,
increase() as Prometheus computes it). Looked at every 10 s, as often as the evidence can change and
more; a look between two snapshots decides nothing the snapshot did not (checked below), so the
error-rate tests look once per snapshot, which is three times cheaper."""

from __future__ import annotations

import asyncio
import math

import httpx
import numpy as np
import pytest

from adapterops.analysis.providers.prometheus import QUERIES
from adapterops.analysis.run import SETTLE_SECONDS, LatencyTest, LatencyTests, analyse, fold_snapshots
from adapterops.api.modeldeployment import ModelDeploymentSpec, RevisionStatus
from testworld.promsim import ORIGIN, Scenario, World, simulate

RUNS = 200
TEMPLATE = QUERIES["vllm"].latency
BETA = 0.05  # analyse's false-rollback budget, one metric configured
TOLERANCE = BETA + 2.5 * math.sqrt(BETA * (1 - BETA) / RUNS)  # 5% plus 2.5 Monte Carlo standard errors

SPEC = ModelDeploymentSpec.model_validate(
    {
        "baseModel": {"name": "tiny-llama"},
        "runtime": {"engine": "vllm", "gpuType": "H100", "replicas": 5},
        "adapters": [{"name": "commerce", "uri": "pvc://work/adapters/v1"}],
        "canary": {"steps": [10, 50, 100], "analysis": {"latency": {"quantile": 0.95, "maxIncreasePercent": 15}}},
    }
)
# The two revisions as the reconciler hands them over (vLLM 0.11: the series the promsim stand-in serves).
STABLE, CANARY = (
    RevisionStatus(
        revision=name, engine="vllm", image="vllm/vllm-openai:v0.11.0", tensor_parallel_size=1, gpu_type="H100"
    )
    for name in ("stable", "canary")
)
# A morning ramp: 5 -> 40 requests/s over 15 minutes, latency up 60% with the load, steps at 10% then 50%.
RAMP = Scenario(rate=(5.0, 40.0), load_effect=0.6, steps=((0.0, 0.1), (450.0, 0.5)))


async def first_verdict(world: World, look_every: float = 30.0) -> tuple[str, str]:
    """Looks like the controller's until a verdict (or the end of the simulated canary)."""
    track = LatencyTest("sim", ORIGIN)
    async with httpx.AsyncClient(transport=world.transport()) as http:
        t = look_every
        while t <= world.scenario.duration:
            world.now = ORIGIN + t
            [v] = await analyse(http, SPEC, "http://prometheus", "ns", STABLE, CANARY, t, None, track, world.now)
            if v.verdict != "Inconclusive":
                return v.verdict, v.message
            t += look_every
    return "Inconclusive", v.message


def verdicts(seed: int, scenario: Scenario, runs: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [asyncio.run(first_verdict(simulate(rng, scenario)))[0] for _ in range(runs)]


def test_no_false_rollback_beyond_beta_under_a_load_ramp_and_steps() -> None:
    found = verdicts(11, RAMP, RUNS)
    assert found.count("Fail") / RUNS <= TOLERANCE, found.count("Fail")
    assert found.count("Pass") / RUNS >= 0.8, (found.count("Pass"), found.count("Inconclusive"))  # it decides


def test_tolerated_regression_is_rarely_promoted_and_mostly_rolled_back() -> None:
    found = verdicts(12, Scenario(rate=RAMP.rate, load_effect=0.6, steps=RAMP.steps, slowdown=1.15), RUNS // 2)
    assert found.count("Pass") / (RUNS // 2) <= BETA + 2.5 * math.sqrt(BETA * (1 - BETA) / (RUNS // 2)), found
    assert found.count("Fail") / (RUNS // 2) >= 0.8, found


def test_a_look_before_a_snapshot_settles_adds_no_evidence() -> None:
    """Evidence only grows by whole snapshots taken SETTLE_SECONDS after their time: looking every
    second gives the verdict looking once per snapshot gives, at the same snapshot."""
    world = simulate(np.random.default_rng(3), Scenario(slowdown=1.4))
    often, _ = asyncio.run(first_verdict(world, look_every=1.0))
    rare, _ = asyncio.run(first_verdict(world, look_every=30.0))
    assert often == rare == "Fail"
    assert SETTLE_SECONDS >= 15.0  # at least one scrape interval (Prometheus' default) after the snapshot


def test_snapshots_follow_the_scrape_interval_and_a_new_test_starts_over() -> None:
    from datetime import UTC, datetime

    tests = LatencyTests(scrape_seconds=1.0)
    start = datetime(2027, 1, 1, tzinfo=UTC)
    first = tests.of("md", "rev@t0", start)
    assert first is not None and (first.every, first.settle) == (2.0, 6.0)
    assert tests.of("md", "rev@t0", start) is first  # the same canary test: its evidence goes on
    again = tests.of("md", "rev@t1", start)  # a retried step or a new canary: a new test
    assert again is not first and again is not None and again.evidence is None
    assert tests.of("md", "rev@t2", None) is None  # not started: nothing to fold
    tests.forget("md")
    assert "md" not in tests.by_key


@pytest.mark.parametrize("slowdown", [1.3])
def test_rollback_message_says_what_was_shown(slowdown: float) -> None:
    verdict, message = asyncio.run(first_verdict(simulate(np.random.default_rng(5), Scenario(slowdown=slowdown))))
    assert verdict == "Fail"
    for text in ("canary slower than stable", "ratio x", "measured", "tolerance +15%", "were the canary as fast"):
        assert text in message, (text, message)
    assert "regressed beyond" not in message


def test_every_snapshot_window_begins_at_the_canary_start() -> None:
    """With 1 s scrapes (snapshots every 2 s), the shortest window Prometheus is asked for is 5 s: the
    first snapshot is the first whose window since the start is that long (6 s), never a 5 s window that
    would begin before the start."""
    world = simulate(np.random.default_rng(1), Scenario(duration=60.0, scrape=1.0))
    asked: list[tuple[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        asked.append((query[query.rindex("[") + 1 : query.rindex("]")], request.url.params.get("time", "now")))
        return world.answer(request)

    async def fold() -> None:
        track = LatencyTest("t", ORIGIN, None, every=2.0, settle=0.0)
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
            templates = (TEMPLATE, TEMPLATE)
            await fold_snapshots(http, "http://p", templates, "ns", "stable", "canary", track, 0.95, 15.0, ORIGIN + 10)
        assert track.evidence is not None and track.evidence.snapshots == 3

    asyncio.run(fold())
    windows = [(w, float(t) - ORIGIN) for w, t in asked[1:]]  # after the baseline
    assert windows == [("6s", 6.0), ("6s", 6.0), ("8s", 8.0), ("8s", 8.0), ("10s", 10.0), ("10s", 10.0)]
