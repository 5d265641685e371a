"""Simulated canaries seen through a stand-in for Prometheus' query API, for the canary statistics'
property tests and benchmark: thousands of canaries in seconds, where the local cluster (real
Prometheus, real stand-in engines) runs one in minutes.

What is simulated: requests arriving at a time-varying rate (a load ramp that also slows every request
down, as queueing does), routed at random to stable or canary by the step's weight, spread over the
revisions' pods; each pod's latency multiplied per batch window by a shared factor (correlated
batches: requests batched together finish together); the canary optionally slowed, either every request
("scale") or only the slow tail ("tail": requests above stable's p80 stretched so that p95 moves by the
same factor, the median not at all). Each pod's cumulative bucket counters are scraped every 15 s at
its own phase.

What is answered: `GET /api/v1/query?query=...&time=...` for the controller's own latency queries:
the counters as scraped (`sum by (le) (<metric>_bucket{namespace=..., adapterops_io_revision=...})`,
each pod's last scrape within the 5-minute lookback) and their increase (`sum by (le) (increase(...[<n>s]))`), with
`increase()` computed the way Prometheus computes it (promql/functions.go `extrapolatedRate`: samples
in the left-open range, counter resets, extrapolation to the range's ends when the first/last sample is
within 1.1 average sample intervals of them, else by half an interval, never below a zero count).
Served through an httpx transport, so the controller's Prometheus client (`prom_query`) parses it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx
import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr

# vllm:e2e_request_latency_seconds / NIM's e2e_request_latency_seconds bounds.
VLLM_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0)
ORIGIN = 1_800_000_000.0  # Unix seconds of the canary's start (t = 0)
Z80, Z95 = 0.8416212335729143, 1.6448536269514722
LOOKBACK = 300.0  # Prometheus' default lookback delta for instant vectors

QUERY = re.compile(
    r"^sum by \(le\) \(increase\((?P<metric>[^{]+)_bucket\{namespace=\"(?P<ns>[^\"]*)\","
    r"adapterops_io_revision=\"(?P<rev>[^\"]*)\"\}\[(?P<window>\d+)s\]\)\)$"
)
COUNTS = re.compile(
    r"^sum by \(le\) \((?P<metric>[^{(]+)_bucket\{namespace=\"(?P<ns>[^\"]*)\","
    r"adapterops_io_revision=\"(?P<rev>[^\"]*)\"\}\)$"
)


@dataclass(frozen=True)
class Scenario:
    """One canary's world. Times in seconds from the canary's start; rates in requests per second."""

    duration: float = 900.0
    baseline: float = 600.0  # stable alone before the canary starts
    rate: tuple[float, float] = (20.0, 20.0)  # total request rate at the start and at the end (a linear ramp)
    steps: tuple[tuple[float, float], ...] = ((0.0, 0.1),)  # (from t, canary weight)
    stable_pods: int = 4
    canary_pods: int = 1
    median: float = 1.2  # latency of a request at the lowest load (log-normal)
    sigma: float = 0.55
    load_effect: float = 0.0  # latency x (1 + load_effect x rate / max rate)
    batch_sigma: float = 0.0  # log-sd of a pod's shared factor per batch window
    batch_seconds: float = 5.0
    slowdown: float = 1.0  # the canary's p95 / stable's p95
    kind: str = "scale"  # "scale": every request; "tail": only above stable's p80
    scrape: float = 15.0
    bounds: tuple[float, ...] = VLLM_BUCKETS

    def weight(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        w = np.zeros_like(t)
        for start, value in self.steps:
            w = np.where(t >= start, value, w)
        return np.where(t >= 0.0, w, 0.0)


def _norm_cdf(z: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = ndtr(z)
    return out


def _bucket_probs(sc: Scenario, scale: NDArray[np.float64], slowed: bool) -> NDArray[np.float64]:
    """P(request in each bucket) for latency scale factors `scale` (any shape): (..., buckets + 1)."""
    b = np.array(sc.bounds)
    y = b / scale[..., None]  # in units of the unscaled stable distribution
    if slowed and sc.kind == "scale":
        y = y / sc.slowdown
    elif slowed and sc.kind == "tail":
        p80, p95 = sc.median * math.exp(sc.sigma * Z80), sc.median * math.exp(sc.sigma * Z95)
        stretch = (sc.slowdown * p95 - p80) / (p95 - p80)
        y = np.where(y > p80, p80 + (y - p80) / stretch, y)
    cdf = _norm_cdf((np.log(np.maximum(y, 1e-12)) - math.log(sc.median)) / sc.sigma)
    cells = np.diff(np.concatenate([np.zeros((*cdf.shape[:-1], 1)), cdf, np.ones((*cdf.shape[:-1], 1))], -1), axis=-1)
    out: NDArray[np.float64] = np.clip(cells, 0.0, 1.0)
    return out / out.sum(axis=-1, keepdims=True)


@dataclass
class PodSeries:
    times: NDArray[np.float64]  # scrape times (Unix seconds)
    cum: NDArray[np.float64]  # (scrapes, buckets + 1): cumulative counts per `le` (+Inf last), cumulative in time


@dataclass
class World:
    scenario: Scenario
    pods: dict[str, list[PodSeries]] = field(default_factory=dict)
    requests: dict[str, NDArray[np.float64]] = field(default_factory=dict)  # per revision: per second since -baseline
    now: float = ORIGIN

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.answer)

    def answer(self, request: httpx.Request) -> httpx.Response:
        params = parse_qs(request.url.query.decode())
        query = params.get("query", [""])[0]
        at = float(params["time"][0]) if "time" in params else self.now
        m = QUERY.match(query)
        raw = COUNTS.match(query)
        result = []
        counts: NDArray[np.float64] | None = None
        if m and m["rev"] in self.pods:
            counts = self.increase(m["rev"], float(m["window"]), at)
        elif raw and raw["rev"] in self.pods:
            counts = self.counters(raw["rev"], at)
        if counts is not None:
            les = [*(f"{b:g}" for b in self.scenario.bounds), "+Inf"]
            result = [{"metric": {"le": le}, "value": [at, repr(float(v))]} for le, v in zip(les, counts, strict=True)]
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return httpx.Response(200, content=json.dumps(body).encode())

    def counters(self, revision: str, at: float) -> NDArray[np.float64] | None:
        """sum by (le) (...) at time `at`: each pod's last scrape within the lookback, summed."""
        total: NDArray[np.float64] | None = None
        for pod in self.pods[revision]:
            inside = np.nonzero((pod.times <= at) & (pod.times > at - LOOKBACK))[0]
            if len(inside):
                got = pod.cum[inside[-1]]
                total = got.copy() if total is None else total + got
        return total

    def increase(self, revision: str, window: float, at: float) -> NDArray[np.float64] | None:
        """sum by (le) (increase(...[window])) at time `at`, over the revision's pods."""
        total: NDArray[np.float64] | None = None
        for pod in self.pods[revision]:
            inside = (pod.times > at - window) & (pod.times <= at)
            if inside.sum() < 2:
                continue
            got = extrapolated_increase(pod.times[inside], pod.cum[inside], at - window, at)
            total = got if total is None else total + got
        return total


def extrapolated_increase(
    t: NDArray[np.float64], v: NDArray[np.float64], start: float, end: float
) -> NDArray[np.float64]:
    """Prometheus' increase() for each column of `v` (samples at times `t`, at least two)."""
    result = v[-1] - v[0]
    drops = np.clip(v[:-1] - v[1:], 0.0, None)
    result = result + np.where(drops > 0, v[:-1], 0.0).sum(axis=0)  # counter resets
    sampled = t[-1] - t[0]
    avg = sampled / (len(t) - 1)
    to_start, to_end = t[0] - start, end - t[-1]
    if to_start >= avg * 1.1:
        to_start = avg / 2
    if to_end >= avg * 1.1:
        to_end = avg / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        to_zero = np.where(result > 0, sampled * v[0] / np.where(result > 0, result, 1.0), np.inf)
    start_ext = np.where((result > 0) & (v[0] >= 0), np.minimum(to_zero, to_start), to_start)
    factor = (sampled + start_ext + to_end) / sampled
    out: NDArray[np.float64] = result * factor
    return out


def simulate(rng: np.random.Generator, sc: Scenario) -> World:
    """Draw one canary's requests and scrape them."""
    ticks = np.arange(-sc.baseline, sc.duration, 1.0)  # requests finishing in (t, t + 1]
    r0, r1 = sc.rate
    rate = r0 + (r1 - r0) * np.clip(ticks / max(sc.duration, 1.0), 0.0, 1.0)
    level = 1.0 + sc.load_effect * rate / max(r0, r1)
    w = sc.weight(ticks)
    world = World(sc)
    for revision, pods, share, slowed in (
        ("stable", sc.stable_pods, 1.0 - w, False),
        ("canary", sc.canary_pods, w, True),
    ):
        n = rng.poisson((rate * share / pods)[:, None] * np.ones((1, pods)))  # (ticks, pods)
        windows = math.ceil(len(ticks) / sc.batch_seconds) + 1
        batch = np.exp(sc.batch_sigma * rng.standard_normal((windows, pods)))
        idx = (np.arange(len(ticks)) // sc.batch_seconds).astype(int)
        scale = level[:, None] * batch[idx]
        counts = rng.multinomial(n, _bucket_probs(sc, scale, slowed and sc.slowdown != 1.0))  # (ticks, pods, B+1)
        cum_time = np.cumsum(counts, axis=0)
        cum = np.cumsum(cum_time, axis=2).astype(np.float64)  # cumulative over `le` too
        world.requests[revision] = n.sum(axis=1).astype(np.float64)
        series = []
        for p in range(pods):
            phase = rng.uniform(0.0, sc.scrape)
            first = -sc.baseline if revision == "stable" else 0.0
            times = np.arange(first + phase, sc.duration, sc.scrape)
            done = np.floor(times - ticks[0]).astype(int)  # ticks finished by the scrape
            values = np.where(done[:, None] > 0, cum[np.clip(done - 1, 0, None), p], 0.0)
            series.append(PodSeries(ORIGIN + times, values))
        world.pods[revision] = series
    return world
