"""Prometheus histograms: parsing cumulative buckets, quantiles, and a survival function interpolated
inside buckets (monotone cubic in log-log) for the latency test."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from adapterops.analysis.verdict import Bucket


@dataclass(frozen=True)
class Histogram:
    bounds: tuple[float, ...]  # finite upper bounds, increasing
    cum: tuple[int, ...]  # cumulative counts at those bounds
    total: int  # count at +Inf

    def above(self, bound: float) -> int:
        """Requests slower than a bucket bound (0 for +Inf, everything for a bound below the first)."""
        if math.isinf(bound):
            return 0
        if bound <= 0.0:
            return self.total
        return self.total - self.cum[self.bounds.index(bound)]

    def survival(self) -> list[tuple[float, float]]:
        """(bound, share of requests slower than it), starting at (0, 1)."""
        pts = [(0.0, 1.0)]
        pts.extend((b, (self.total - c) / self.total) for b, c in zip(self.bounds, self.cum, strict=True))
        return pts


def parse_histogram(raw: Sequence[Bucket] | None, what: str) -> Histogram | str:
    """Sanitise Prometheus buckets, or say why they cannot be used."""
    if raw is None:
        return f"no {what} latency histogram (Prometheus returned nothing or was unreachable)"
    by_bound: dict[float, float] = {}
    for le, count in raw:
        bound, value = float(le), float(count)
        if math.isnan(bound) or math.isnan(value):
            continue
        by_bound[bound] = max(by_bound.get(bound, 0.0), value)
    if math.inf not in by_bound:
        return f"the {what} latency histogram has no +Inf bucket"
    finite = sorted(b for b in by_bound if not math.isinf(b) and b > 0.0)
    running, cum = 0.0, []
    for b in finite:  # cumulative counts never decrease (increase() extrapolation can break that)
        running = max(running, by_bound[b])
        cum.append(round(running))
    total = round(max(running, by_bound[math.inf]))
    if total <= 0:
        return f"no {what} requests in the analysis window"
    return Histogram(tuple(finite), tuple(min(c, total) for c in cum), total)


def histogram_quantile(q: float, hist: Histogram) -> float:
    """Prometheus' histogram_quantile (linear inside a bucket), for the values users see on dashboards."""
    rank = q * hist.total
    lower_bound, lower_count = 0.0, 0
    for b, c in zip(hist.bounds, hist.cum, strict=True):
        if c >= rank:
            if c == lower_count:
                return b
            return lower_bound + (b - lower_bound) * (rank - lower_count) / (c - lower_count)
        lower_bound, lower_count = b, c
    return hist.bounds[-1] if hist.bounds else math.inf


def pchip_slopes(u: list[float], v: list[float]) -> list[float]:
    """Knot derivatives of the monotone cubic (Fritsch-Carlson, as scipy's PchipInterpolator)."""
    n = len(u)
    if n < 2:
        return [0.0] * n
    h = [u[k + 1] - u[k] for k in range(n - 1)]
    d = [(v[k + 1] - v[k]) / h[k] for k in range(n - 1)]
    if n == 2:
        return [d[0], d[0]]
    m = [0.0] * n
    for k in range(1, n - 1):
        if d[k - 1] * d[k] > 0.0:
            w1, w2 = 2.0 * h[k] + h[k - 1], h[k] + 2.0 * h[k - 1]
            m[k] = (w1 + w2) / (w1 / d[k - 1] + w2 / d[k])
    for end, (h0, h1, d0, d1) in ((0, (h[0], h[1], d[0], d[1])), (n - 1, (h[-1], h[-2], d[-1], d[-2]))):
        e = ((2.0 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
        if e * d0 <= 0.0:
            e = 0.0
        elif d0 * d1 <= 0.0 and abs(e) > 3.0 * abs(d0):
            e = 3.0 * d0
        m[end] = e
    return m


class Survival:
    """Share of requests slower than y, interpolated between bucket bounds.

    Monotone cubic through (log bound, log share): latency tails are close to straight lines there
    (power law) and bent down for log-normal-like tails, which a chord would underestimate. Below the
    first bound, or where a share is 0, linear in the share.
    """

    def __init__(self, hist: Histogram) -> None:
        self.points = hist.survival()
        knots = [(math.log(b), math.log(sv)) for b, sv in self.points if b > 0.0 and sv > 0.0]
        self.u = [k[0] for k in knots]
        self.v = [k[1] for k in knots]
        self.m = pchip_slopes(self.u, self.v)

    def at(self, y: float) -> float:
        u, v, m = self.u, self.v, self.m
        x = math.log(y) if y > 0.0 else -math.inf
        if u and u[0] <= x <= u[-1]:
            for k in range(len(u) - 1):
                if x <= u[k + 1]:
                    h = u[k + 1] - u[k]
                    t = (x - u[k]) / h
                    h00, h10 = (1 + 2 * t) * (1 - t) ** 2, t * (1 - t) ** 2
                    h01, h11 = t * t * (3 - 2 * t), t * t * (t - 1)
                    return math.exp(h00 * v[k] + h10 * h * m[k] + h01 * v[k + 1] + h11 * h * m[k + 1])
            return math.exp(v[-1])
        for (b0, s0), (b1, s1) in itertools.pairwise(self.points):
            if b0 <= y <= b1:
                return s1 if y == b1 else s0 + (s1 - s0) * (y - b0) / (b1 - b0)
        return self.points[-1][1]

    def quantile(self, tail: float) -> float | None:
        """Latency with `tail` of the requests slower (log-log chord); None beyond the last bound."""
        for (b0, s0), (b1, s1) in itertools.pairwise(self.points):
            if s0 >= tail >= s1 and s0 > s1:
                if b0 > 0.0 and s1 > 0.0:
                    w = math.log(tail / s0) / math.log(s1 / s0)
                    return math.exp(math.log(b0) + w * math.log(b1 / b0))
                return b0 + (b1 - b0) * (s0 - tail) / (s0 - s1)
        return None
