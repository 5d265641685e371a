"""Simulated canaries: LLM request latencies seen through Prometheus buckets, and paired judge scores.

Everything here is numpy; the analysis under test (adapterops.analysis) is pure standard library.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.stats import norm

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# vllm:e2e_request_latency_seconds (NIM's e2e_request_latency_seconds uses the same bounds).
VLLM_BUCKETS: tuple[float, ...] = (
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
)
# Prometheus native-histogram resolution (schema 3: each bound 2^(1/8) = 1.09x the previous).
FINE_BUCKETS: tuple[float, ...] = tuple(round(0.1 * 2 ** (k / 8), 4) for k in range(72))

QUANTILE = 0.95
SLOWDOWN = 1.15  # the tolerated regression: +15% on p95


# --------------------------------------------------------------------------- latency


def stable_latency(rng: np.random.Generator, n: int) -> FloatArray:
    """End-to-end latency of a chat request to an 8B model: time to first token + decode.

    Output length is log-normal (median 150 tokens, long tail, capped at 2048), time per output token
    ~7 ms, time to first token ~150 ms with queueing spread: p50 ~1.2 s, p95 ~3.1 s, p99 ~4.6 s.
    """
    tokens = np.clip(rng.lognormal(math.log(150.0), 0.6, n), 1.0, 2048.0)
    tpot = rng.lognormal(math.log(0.007), 0.15, n)
    ttft = rng.lognormal(math.log(0.15), 0.5, n)
    out: FloatArray = ttft + tpot * tokens
    return out


@dataclass(frozen=True)
class LatencyWorld:
    """Cell probabilities of one bucket layout for stable and for each kind of canary."""

    bounds: tuple[float, ...]
    stable_p95: float
    cells: dict[str, FloatArray]  # "null", "scale", "tail" -> P(request lands in each bucket), +Inf last

    def survival(self, kind: str, bound: float) -> float:
        """Share of requests slower than a bucket bound."""
        i = self.bounds.index(bound)
        return float(self.cells[kind][i + 1 :].sum())


def latency_world(bounds: tuple[float, ...], n: int = 4_000_000, seed: int = 12345) -> LatencyWorld:
    """Cell probabilities from a large sample; the regressions are calibrated to exactly +15% on p95.

    scale: every request 15% slower (slower decode, e.g. a TP or adapter change).
    tail: only requests slower than stable's p80 slow down, their excess over it stretched so that p95
    moves by +15% while the median does not (KV-cache pressure on long answers).
    """
    rng = np.random.default_rng(seed)
    x = stable_latency(rng, n)
    p80, p95 = np.quantile(x, [0.80, QUANTILE])
    stretch = (SLOWDOWN * p95 - p80) / (p95 - p80)
    kinds = {
        "null": x,
        "scale": x * SLOWDOWN,
        "tail": np.where(x > p80, p80 + stretch * (x - p80), x),
    }
    edges = np.array(bounds)
    cells = {}
    for kind, sample in kinds.items():
        idx = np.searchsorted(edges, sample, side="left")  # le semantics: x <= bound lands in it
        cells[kind] = np.bincount(idx, minlength=len(bounds) + 1).astype(np.float64) / n
    return LatencyWorld(bounds, float(p95), cells)


def cumulative_histograms(
    rng: np.random.Generator,
    world: LatencyWorld,
    kind: str,
    runs: int,
    checkpoints: int,
    per_checkpoint: int,
    weight: float,
) -> tuple[IntArray, IntArray]:
    """Per run and checkpoint, cumulative bucket counts (not yet cumulated over buckets).

    Each request goes to the canary with probability `weight` (HTTPRoute weights route per request);
    a checkpoint (a reconcile) happens every `per_checkpoint` requests in total.
    Returns (stable, canary) arrays of shape (runs, checkpoints, buckets + 1).
    """
    n_c = rng.binomial(per_checkpoint, weight, size=(runs, checkpoints))
    n_s = per_checkpoint - n_c
    canary = rng.multinomial(n_c, world.cells[kind])
    stable = rng.multinomial(n_s, world.cells["null"])
    return np.cumsum(stable, axis=1), np.cumsum(canary, axis=1)


def histogram_quantile(q: float, bounds: FloatArray, counts: IntArray | FloatArray) -> FloatArray:
    """Prometheus histogram_quantile over the last axis of per-bucket counts (+Inf bucket last)."""
    cum = np.cumsum(counts, axis=-1)
    total = cum[..., -1:]
    rank = q * total
    j = np.argmax(cum >= rank, axis=-1)  # first bucket reaching the rank
    j = np.minimum(j, len(bounds) - 1)  # +Inf bucket: Prometheus returns the largest finite bound
    upper = bounds[j]
    lower = np.where(j > 0, bounds[np.maximum(j - 1, 0)], 0.0)
    c_hi = np.take_along_axis(cum, j[..., None], axis=-1)[..., 0]
    c_lo = np.where(j > 0, np.take_along_axis(cum, np.maximum(j - 1, 0)[..., None], axis=-1)[..., 0], 0)
    width = np.maximum(c_hi - c_lo, 1)
    out: FloatArray = lower + (upper - lower) * (rank[..., 0] - c_lo) / width
    return out


# --------------------------------------------------------------------------- judge

SCORE_MEAN = 3.4  # latent quality of the stable adapter (judge means around 3.3 on 0-5)
DIFFICULTY_SD = 1.0  # per-prompt difficulty, shared by both answers to the same prompt
ANSWER_SD = 0.7  # answer-to-answer and judge noise; stable/canary score correlation ~0.62
SUBSET = 0.15  # "subset" regression: one category of prompts (15%) gets much worse


def _mean_score(mu: float) -> float:
    sd = math.hypot(DIFFICULTY_SD, ANSWER_SD)
    ks = np.arange(6)
    upper = np.where(ks == 5, 1.0, norm.cdf((ks + 0.5 - mu) / sd))
    lower = np.where(ks == 0, 0.0, norm.cdf((ks - 0.5 - mu) / sd))
    return float((ks * (upper - lower)).sum())


def _solve(f: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """Bisection for an increasing function."""
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class JudgeWorld:
    shift: float  # latent shift of every canary answer giving a mean drop of exactly 0.3
    subset_shift: float  # latent shift of the SUBSET category giving a mean drop of exactly 0.3


def judge_world(drop: float = 0.3) -> JudgeWorld:
    base = _mean_score(SCORE_MEAN)
    shift = _solve(lambda d: _mean_score(SCORE_MEAN + d) - base, -drop, -3.0, 0.0)
    subset = _solve(
        lambda d: SUBSET * (_mean_score(SCORE_MEAN + d) - base), -drop, -5.0, 0.0
    )  # exact: the categories are independent of difficulty
    return JudgeWorld(shift, subset)


def judge_scores(
    rng: np.random.Generator, world: JudgeWorld, kind: str, runs: int, prompts: int
) -> tuple[FloatArray, FloatArray]:
    """Integer 0-5 judge scores of the stable and the canary answer to the same prompts."""
    shape = (runs, prompts)
    difficulty = rng.normal(0.0, DIFFICULTY_SD, shape)
    stable = SCORE_MEAN + difficulty + rng.normal(0.0, ANSWER_SD, shape)
    canary = SCORE_MEAN + difficulty + rng.normal(0.0, ANSWER_SD, shape)
    if kind == "shift":
        canary += world.shift
    elif kind == "subset":
        canary += np.where(rng.random(shape) < SUBSET, world.subset_shift, 0.0)
    return np.clip(np.rint(stable), 0, 5), np.clip(np.rint(canary), 0, 5)
