"""Sequential canary analysis: observed data in, a Pass / Fail / Inconclusive verdict per metric out.

Pure functions, standard library only (no I/O, Kubernetes or HTTP). The controller calls them on every
reconcile with data CUMULATED since the canary began and acts on the first Pass or Fail, so every test
is sequential and anytime-valid: a likelihood ratio or betting wealth that is a (super)martingale under
the hypothesis it refutes, compared with 1/alpha or 1/beta (Ville's inequality), so the error bounds
hold however often it is evaluated and whenever it stops. Per metric, by default 5% each:

* false promotion ``P(Pass | the tolerated regression or worse) <= alpha``;
* false rollback ``P(Fail | canary behaves like stable) <= beta``, split between the rules of a metric
  when several are set (latency maxSeconds + maxIncreasePercent, judge maxDrop + minScore). Across
  metrics the controller rolls back on any Fail: the total false rollback is at most the sum.

Methods (longer, with assumptions and the benchmark: bench/README.md):

* Latency vs stable (``max_increase_percent`` = d): histograms only reveal counts above bucket bounds,
  so the quantile is tested through the share of requests slower than a bound ``x``: the largest one at
  or below ``(1 + d)`` x stable's quantile. Given whether a request was slower than ``x``, the revision
  that served it is a coin flip with probability ``n_c / (n_c + n_s)`` when both revisions are alike,
  whatever stable's own share is; a canary slowed down by ``1 + d`` skews the slow requests towards the
  canary by ``r = S(x / (1 + d)) / S(x)``, S being stable's survival function interpolated inside
  buckets (monotone cubic in log-log). Wald's likelihood ratio of these coin flips decides (Fail
  ``>= 1/beta``, Pass ``<= alpha``). A tail guard at the next bound up can fail the canary and holds a
  Pass while it points to a regression. Assumption: near the quantile, a regression acts like a stretch
  of the latency distribution (exact for proportional slowdowns; with coarse buckets such as vLLM/NIM's
  2.5 s -> 5 s, regressions confined to the slowest few percent are only partly seen).
* Latency ceiling (``max_seconds``) and error rate (``max_percent``): Wald's binomial likelihood ratio
  on the canary's share above the ceiling / of errors between ``bad = limit`` (``1 - quantile`` for
  latency) and ``good = limit / 2``; a ceiling between bucket bounds is bracketed conservatively.
* Judge (paired 0-5 scores): exact nonparametric testing by betting on ``D = canary - stable`` per
  prompt. Pass when ``prod(1 + l (D + max_drop)) >= 1/alpha`` (refutes any distribution with a mean drop
  >= max_drop); Fail when ``prod(1 + f sign(-D)) >= 1/beta`` (refutes "canary equals stable", under
  which the sign of D is a fair coin given |D|; ``f = tanh(theta |D|)``, the Kelly bet against the
  least favourable drop of max_drop). Bets use earlier pairs only (and the Fail bet |D| itself), so
  pairs must be passed in judging order (append-only). ``min_score``: the same mean test on canary
  scores against the floor.

Never Pass without data: missing inputs (Prometheus or judge down), empty windows and too little stable
reference data are Inconclusive and the message says which. Tolerances of 0 cannot be certified by a
sequential test and are raised to a small minimum (1% latency increase, 0.05 judge points).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Verdict = Literal["Pass", "Fail", "Inconclusive"]
Bucket = tuple[float, float]
"""One Prometheus histogram bucket: (``le`` upper bound in seconds, cumulative count); +Inf included."""
ScorePair = tuple[float | None, float | None]
"""Judge scores of one prompt: (stable answer, canary answer); None when that judgement failed."""

PASS: Verdict = "Pass"
FAIL: Verdict = "Fail"
INCONCLUSIVE: Verdict = "Inconclusive"

MIN_STABLE_TAIL = 20
"""Stable requests slower than the cut needed before stable's shape is trusted."""
MIN_GUARD_TAIL = 10
"""Stable requests slower than the tail guard's bound needed to use the guard."""
GUARD_SHARE = 0.1
"""Share of the latency false-rollback risk spent by the tail guard."""
GUARD_PASS_LLR = 0.0
"""A Pass waits while the tail guard's log likelihood ratio is above this (it points to a regression)."""
MIN_INCREASE_PERCENT = 1.0
MIN_DROP = 0.05
GOOD_FRACTION = 0.5
"""For ceilings (latency maxSeconds, error rate): 'good' is half the limit, 'bad' the limit itself."""
MIN_EFFECT_RATIO = 1.02
"""A cut where the tolerated slowdown moves the tail share by less than 2 % cannot decide anything."""
BET_CAP = 0.99
"""Largest bet as a fraction of the one that could lose everything on the worst possible score."""
PRIOR_VAR = 1.0
PRIOR_WEIGHT = 4.0
"""Variance of judge scores / differences assumed before data (0-5 scale), worth 4 observations."""
DROP_PRIOR_WEIGHT = 20.0
"""The judge's Fail bet targets max_drop; a larger observed drop counts once it outweighs 20 prompts."""
MAGNITUDE_BINS = 200
"""The Fail bet's tilt is solved on |D| rounded to 1/200 of the scale (at most 201 distinct values)."""


@dataclass(frozen=True)
class MetricVerdict:
    """The analysis of one metric; mirrors the API's ``MetricResult`` (see ``to_status``)."""

    name: str
    verdict: Verdict
    stable_value: float | None
    canary_value: float | None
    samples: int
    threshold: str
    message: str

    def to_status(self) -> dict[str, Any]:
        """camelCase dict for ``status.analysis.metrics[]``."""
        return {
            "name": self.name,
            "verdict": self.verdict,
            "stableValue": self.stable_value,
            "canaryValue": self.canary_value,
            "samples": self.samples,
            "threshold": self.threshold,
            "message": self.message,
        }


def overall_verdict(verdicts: Iterable[MetricVerdict]) -> Verdict:
    """Fail if any metric fails, Pass if there is at least one metric and all pass, else Inconclusive."""
    found = [v.verdict for v in verdicts]
    if FAIL in found:
        return FAIL
    if found and all(v == PASS for v in found):
        return PASS
    return INCONCLUSIVE


# --------------------------------------------------------------------------- small helpers


def _check_risks(alpha: float, beta: float) -> None:
    if not (0.0 < alpha < 1.0 and 0.0 < beta < 1.0):
        raise ValueError(f"alpha and beta must be in (0, 1), got {alpha}, {beta}")


def _pct(x: float) -> str:
    return f"{100.0 * x:.3g}%"


def _secs(x: float | None) -> str:
    if x is None:
        return "n/a"
    if math.isinf(x):
        return "+Inf"
    return f"{x:.3g}s"


def _qname(q: float) -> str:
    return "p" + f"{100.0 * q:.10g}"


def _combine(parts: list[tuple[Verdict, str]]) -> Verdict:
    verdicts = [v for v, _ in parts]
    if FAIL in verdicts:
        return FAIL
    if all(v == PASS for v in verdicts):
        return PASS
    return INCONCLUSIVE


def _message(parts: list[tuple[Verdict, str]], verdict: Verdict) -> str:
    """Fail: the failing rules first; otherwise every rule's sentence."""
    chosen = [m for v, m in parts if v == FAIL] if verdict == FAIL else [m for _, m in parts]
    return " ".join(chosen)


def _binomial_llr(k: float, n: float, p_good: float, p_bad: float) -> float:
    """log of P(k of n | p_bad) / P(k of n | p_good)."""
    return k * math.log(p_bad / p_good) + (n - k) * math.log((1.0 - p_bad) / (1.0 - p_good))


def _ratio_text(llr: float) -> str:
    if llr > 700:
        return "> 1e300"
    if llr < -700:
        return "< 1e-300"
    return f"{math.exp(llr):.3g}"


# --------------------------------------------------------------------------- histograms


@dataclass(frozen=True)
class _Hist:
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


def _parse_hist(raw: Sequence[Bucket] | None, what: str) -> _Hist | str:
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
    return _Hist(tuple(finite), tuple(min(c, total) for c in cum), total)


def _histogram_quantile(q: float, hist: _Hist) -> float:
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


def _pchip_slopes(u: list[float], v: list[float]) -> list[float]:
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


class _Survival:
    """Share of requests slower than y, interpolated between bucket bounds.

    Monotone cubic through (log bound, log share): latency tails are close to straight lines there
    (power law) and bent down for log-normal-like tails, which a chord would underestimate. Below the
    first bound, or where a share is 0, linear in the share.
    """

    def __init__(self, hist: _Hist) -> None:
        self.points = hist.survival()
        knots = [(math.log(b), math.log(sv)) for b, sv in self.points if b > 0.0 and sv > 0.0]
        self.u = [k[0] for k in knots]
        self.v = [k[1] for k in knots]
        self.m = _pchip_slopes(self.u, self.v)

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


# --------------------------------------------------------------------------- latency


def _race_llr(n_s: int, n_c: int, k_s: int, k_c: int, r: float) -> float:
    """log LR of "the canary's share above the cut is r x stable's" vs "equal shares".

    The likelihood of which revision served each request given whether it was slow: under equal
    shares every request is the canary's with probability n_c / (n_c + n_s) whatever its latency, so
    stable's own (unknown) share drops out; a slow request points to the canary when r > 1. The fast
    requests' term uses stable's observed share.
    """
    pi0 = n_c / (n_c + n_s)
    slow1 = n_c * r / (n_c * r + n_s)
    p_s = min(k_s / n_s, 0.999 / r)
    fast1 = n_c * (1.0 - r * p_s) / (n_c * (1.0 - r * p_s) + n_s * (1.0 - p_s))
    return (
        k_c * math.log(slow1 / pi0)
        + k_s * math.log((1.0 - slow1) / (1.0 - pi0))
        + (n_c - k_c) * math.log(fast1 / pi0)
        + (n_s - k_s) * math.log((1.0 - fast1) / (1.0 - pi0))
    )


def _latency_relative(
    stable: _Hist, canary: _Hist, q: float, increase_percent: float, alpha: float, beta: float
) -> tuple[Verdict, str]:
    tail = 1.0 - q
    rho = 1.0 + increase_percent / 100.0
    name = _qname(q)
    rule = f"+{increase_percent:g}%"
    surv = _Survival(stable)
    s_q = surv.quantile(tail)
    if s_q is None:
        s_q = stable.bounds[-1] if stable.bounds else math.inf
    if not stable.bounds or math.isinf(s_q):
        return INCONCLUSIVE, f"latency {name}: the histogram has no finite bucket bound near stable's {name}."
    shared = [b for b in stable.bounds if b in canary.bounds]

    def effect(b: float) -> float:  # share ratio at bound b under a slowdown by rho
        return surv.at(b / rho) / surv.at(b)

    # The cut: the largest bound at or below the tolerated quantile rho * s_q (where any shape of
    # regression of that size moves the share the same way), skipping bounds where the slowdown moves
    # the share too little to measure; with too few stable requests there yet, wait.
    cut, r1 = None, 0.0
    for b in sorted((b for b in shared if b <= rho * s_q), reverse=True):
        if stable.above(b) < MIN_STABLE_TAIL:
            return INCONCLUSIVE, (
                f"latency {name} vs stable: too little stable reference data yet ({stable.above(b)} of "
                f"{stable.total} stable requests slower than {_secs(b)}, need {MIN_STABLE_TAIL})."
            )
        if (r := effect(b)) >= MIN_EFFECT_RATIO:
            cut, r1 = b, r
            break
    if cut is None:
        return INCONCLUSIVE, (
            f"latency {name} vs stable: the histogram's bucket bounds cannot resolve a {rule} change "
            f"near stable's {name} ({_secs(s_q)})."
        )
    n_s, n_c = stable.total, canary.total
    # Tail guard: the first bound at or above the tolerated quantile (1 + d) x stable's, where a
    # regression confined to the slowest requests shows at least as strongly as a proportional one
    # (the main cut, below it, under-weights such regressions when buckets are coarse). It can fail
    # the canary (with GUARD_SHARE of beta) and holds a Pass while it points to a regression.
    guard = next((b for b in shared if b > cut and b >= rho * s_q), None)
    usable = guard is not None and GUARD_SHARE > 0.0 and stable.above(guard) >= MIN_GUARD_TAIL
    r_g = effect(guard) if guard is not None and usable else 0.0
    beta_main = beta * (1.0 - GUARD_SHARE) if r_g >= MIN_EFFECT_RATIO else beta

    def evidence(b: float, r: float) -> str:
        k_s, k_c = stable.above(b), canary.above(b)
        return (
            f"{_pct(k_c / n_c)} of {n_c} canary requests were slower than {_secs(b)} vs {_pct(k_s / n_s)} "
            f"of {n_s} stable requests, where a {rule} slowdown would make about {_pct(k_s / n_s * r)}"
        )

    llr = _race_llr(n_s, n_c, stable.above(cut), canary.above(cut), r1)
    ratio = _ratio_text(llr)
    if llr >= math.log(1.0 / beta_main):
        return FAIL, (
            f"latency {name} regressed beyond {rule} over stable: {evidence(cut, r1)} (likelihood ratio "
            f"{ratio} >= {1.0 / beta_main:.3g}; false-rollback risk <= {_pct(beta)})."
        )
    llr_g = -math.inf
    if r_g >= MIN_EFFECT_RATIO and guard is not None:
        llr_g = _race_llr(n_s, n_c, stable.above(guard), canary.above(guard), r_g)
        limit_g = 1.0 / (beta * GUARD_SHARE)
        if llr_g >= math.log(limit_g):
            return FAIL, (
                f"latency tail regressed beyond {rule} over stable: {evidence(guard, r_g)} (likelihood "
                f"ratio {_ratio_text(llr_g)} >= {limit_g:.3g}; false-rollback risk <= {_pct(beta)})."
            )
    if llr <= math.log(alpha) and llr_g > GUARD_PASS_LLR and guard is not None:
        return INCONCLUSIVE, (
            f"latency {name} vs stable ({rule}): within {rule} at {_secs(cut)} (likelihood ratio {ratio}) "
            f"but not yet at {_secs(guard)}: {evidence(guard, r_g)} (likelihood ratio {_ratio_text(llr_g)}, "
            f"needs <= 1 to pass)."
        )
    if llr <= math.log(alpha):
        return PASS, (
            f"latency {name} within {rule} of stable: {evidence(cut, r1)} (likelihood ratio {ratio} <= "
            f"{alpha:.3g}; false-promotion risk <= {_pct(alpha)})."
        )
    return INCONCLUSIVE, (
        f"latency {name} vs stable ({rule}): no decision yet, {evidence(cut, r1)}; likelihood ratio "
        f"{ratio} (fail at >= {1.0 / beta_main:.3g}, pass at <= {alpha:.3g})."
    )


def _latency_ceiling(canary: _Hist, q: float, max_seconds: float, alpha: float, beta: float) -> tuple[Verdict, str]:
    tail = 1.0 - q
    name = _qname(q)
    p_bad, p_good = tail, tail * GOOD_FRACTION
    n = canary.total
    below = [b for b in canary.bounds if b <= max_seconds]
    above = [b for b in canary.bounds if b >= max_seconds]
    lo = below[-1] if below else 0.0  # count above lo >= count above max_seconds: used to pass
    hi = above[0] if above else math.inf  # count above hi <= count above max_seconds: used to fail
    k_pass, k_fail = canary.above(lo), canary.above(hi)
    llr_pass = _binomial_llr(k_pass, n, p_good, p_bad)
    llr_fail = _binomial_llr(k_fail, n, p_good, p_bad)
    if lo == hi:
        seen = f"{_pct(k_fail / n)} of {n} canary requests were slower than {_secs(max_seconds)}"
    else:
        nearest = f"between bounds {_secs(lo)} and {_secs(hi)}" if lo > 0.0 else f"below the first bound {_secs(hi)}"
        seen = (
            f"between {_pct(k_fail / n)} and {_pct(k_pass / n)} of {n} canary requests were slower than "
            f"{_secs(max_seconds)} (not a bucket bound: {nearest})"
        )
    rule = f"{name} <= {_secs(max_seconds)}, i.e. at most {_pct(p_bad)} slower"
    if llr_fail >= math.log(1.0 / beta):
        return FAIL, (
            f"latency {name} above the {_secs(max_seconds)} ceiling: {seen}, allowed {_pct(p_bad)} "
            f"(likelihood ratio {_ratio_text(llr_fail)} >= {1.0 / beta:.3g}; false-rollback risk <= "
            f"{_pct(beta)})."
        )
    if llr_pass <= math.log(alpha):
        return PASS, (
            f"latency {name} under the {_secs(max_seconds)} ceiling: {seen} ({rule}; likelihood ratio "
            f"{_ratio_text(llr_pass)} <= {alpha:.3g}; false-promotion risk <= {_pct(alpha)})."
        )
    if lo == 0.0:
        return INCONCLUSIVE, (
            f"latency {name} ceiling {_secs(max_seconds)} is below the smallest bucket bound; it can "
            "never be shown to hold."
        )
    return INCONCLUSIVE, (
        f"latency {name} ceiling {_secs(max_seconds)}: no decision yet, {seen}; likelihood ratio "
        f"{_ratio_text(llr_fail)} (fail at >= {1.0 / beta:.3g}, pass at <= {alpha:.3g})."
    )


def latency_verdict(
    stable_hist: Sequence[Bucket] | None,
    canary_hist: Sequence[Bucket] | None,
    *,
    quantile: float = 0.95,
    max_seconds: float | None = None,
    max_increase_percent: float | None = None,
    alpha: float = 0.05,
    beta: float = 0.05,
) -> MetricVerdict:
    """Latency quantile of the canary against a ceiling and/or an increase over stable.

    Histograms are Prometheus cumulative buckets ``[(le_seconds, cumulative_count), ...]`` with +Inf,
    counted over the same window since the canary began (e.g. the difference of the ``_bucket``
    counters; ``increase()`` extrapolates and inflates counts slightly, prefer raw differences).
    """
    _check_risks(alpha, beta)
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    if max_seconds is None and max_increase_percent is None:
        raise ValueError("latency analysis needs max_seconds, max_increase_percent or both")
    name = _qname(quantile)
    rules: list[str] = []
    increase = None
    if max_increase_percent is not None:
        increase = max(float(max_increase_percent), MIN_INCREASE_PERCENT)
        raised = " (0% raised to 1%)" if increase != max_increase_percent else ""
        rules.append(f"{name} <= stable {name} +{increase:g}%{raised}")
    if max_seconds is not None:
        rules.append(f"{name} <= {_secs(max_seconds)}")
    threshold = " and ".join(rules)

    stable = _parse_hist(stable_hist, "stable")
    canary = _parse_hist(canary_hist, "canary")
    stable_value = _histogram_quantile(quantile, stable) if isinstance(stable, _Hist) else None
    canary_value = _histogram_quantile(quantile, canary) if isinstance(canary, _Hist) else None
    samples = canary.total if isinstance(canary, _Hist) else 0
    needed = (stable, canary) if increase is not None else (canary,)
    problems = [p for p in needed if isinstance(p, str)]
    if problems or not isinstance(canary, _Hist):
        return MetricVerdict(
            "latency",
            INCONCLUSIVE,
            stable_value,
            canary_value,
            samples,
            threshold,
            "latency: no verdict, " + "; ".join(problems) + ".",
        )
    n_rules = len(rules)
    parts: list[tuple[Verdict, str]] = []
    if increase is not None and isinstance(stable, _Hist):
        parts.append(_latency_relative(stable, canary, quantile, increase, alpha, beta / n_rules))
    if max_seconds is not None:
        parts.append(_latency_ceiling(canary, quantile, float(max_seconds), alpha, beta / n_rules))
    verdict = _combine(parts)
    values = f"latency {name}: canary {_secs(canary_value)}" + (
        f", stable {_secs(stable_value)}" if stable_value is not None else ""
    )
    if stable_value and canary_value is not None and not math.isinf(stable_value):
        values += f" ({100.0 * (canary_value / stable_value - 1.0):+.1f}%)"
    message = f"{values}; threshold {threshold}. " + _message(parts, verdict)
    return MetricVerdict("latency", verdict, stable_value, canary_value, samples, threshold, message)


# --------------------------------------------------------------------------- error rate


def error_rate_verdict(
    stable_errors: float | None,
    stable_total: float | None,
    canary_errors: float | None,
    canary_total: float | None,
    *,
    max_percent: float,
    alpha: float = 0.05,
    beta: float = 0.05,
) -> MetricVerdict:
    """Canary error rate against ``max_percent`` (Wald's binomial test between max/2 and max).

    Counts are cumulative since the canary began; stable's are reported for comparison only.
    ``max_percent`` 0 allows no error at all: the first canary error fails.
    """
    _check_risks(alpha, beta)
    threshold = f"error rate <= {max_percent:g}%"
    stable_value = None
    if stable_errors is not None and stable_total:
        stable_value = float(stable_errors) / float(stable_total)
    if canary_errors is None or canary_total is None:
        return MetricVerdict(
            "errorRate",
            INCONCLUSIVE,
            stable_value,
            None,
            0,
            threshold,
            "errorRate: no verdict, no canary request counts (Prometheus returned nothing or was unreachable).",
        )
    n = round(float(canary_total))
    k = min(round(float(canary_errors)), n)
    if n <= 0:
        return MetricVerdict(
            "errorRate",
            INCONCLUSIVE,
            stable_value,
            None,
            0,
            threshold,
            "errorRate: no verdict, no canary requests in the analysis window.",
        )
    rate = k / n
    seen = f"{k} errors in {n} canary requests ({_pct(rate)})"
    if stable_value is not None and stable_total is not None:
        seen += f" vs {_pct(stable_value)} of {round(float(stable_total))} stable requests"
    if max_percent >= 100.0:
        return MetricVerdict(
            "errorRate", PASS, stable_value, rate, n, threshold, f"errorRate: {seen}; any rate passes."
        )
    p_bad = max(max_percent, 0.1) / 100.0
    p_good = p_bad * GOOD_FRACTION
    llr = _binomial_llr(k, n, p_good, p_bad)
    if max_percent <= 0.0 and k > 0:
        verdict, why = FAIL, f"errorRate above the 0% limit: {seen}; no error is allowed."
    elif llr >= math.log(1.0 / beta):
        verdict, why = (
            FAIL,
            (
                f"errorRate above the {max_percent:g}% limit: {seen} (likelihood ratio {_ratio_text(llr)} "
                f">= {1.0 / beta:.3g} between {_pct(p_bad)} and {_pct(p_good)}; false-rollback risk <= "
                f"{_pct(beta)})."
            ),
        )
    elif llr <= math.log(alpha):
        verdict, why = (
            PASS,
            (
                f"errorRate within the {max_percent:g}% limit: {seen} (likelihood ratio {_ratio_text(llr)} <= "
                f"{alpha:.3g}; false-promotion risk <= {_pct(alpha)})."
            ),
        )
    else:
        verdict, why = (
            INCONCLUSIVE,
            (
                f"errorRate: no decision yet, {seen}; likelihood ratio {_ratio_text(llr)} (fail at >= "
                f"{1.0 / beta:.3g}, pass at <= {alpha:.3g})."
            ),
        )
    return MetricVerdict("errorRate", verdict, stable_value, rate, n, threshold, why)


# --------------------------------------------------------------------------- judge


def _betting_log_wealth(xs: Sequence[float], target: float, lowest: float) -> float:
    """log wealth of ``prod(1 + l_i x_i)``: evidence that the mean of ``x`` exceeds 0.

    A test supermartingale whenever ``E[x] <= 0`` (so ``P(ever >= log(1/a)) <= a``), for any
    distribution with ``x >= lowest`` (< 0). Each bet ``l_i = target / (v + target^2)`` uses only earlier
    observations (``v``: their variance, shrunk to PRIOR_VAR), capped at BET_CAP / -lowest.
    """
    cap = BET_CAP / -lowest if lowest < 0.0 else 1e6
    log_wealth, mean, m2 = 0.0, 0.0, 0.0
    for n, x in enumerate(xs, start=1):
        var = (PRIOR_WEIGHT * PRIOR_VAR + m2) / (PRIOR_WEIGHT + n - 1)
        bet = min(target / (var + target * target), cap)
        log_wealth += math.log1p(bet * x)
        delta = x - mean
        mean += delta / n
        m2 += delta * (x - mean)
    return log_wealth


def _tilt(mags: list[tuple[float, float]], target: float, start: float, theta_max: float) -> float:
    """theta with ``sum(c m tanh(theta m)) = target * sum(c)`` over (count c, magnitude m) pairs.

    The left side is increasing and concave in theta: Newton's method from the first-order root (below
    the exact one, as tanh(x) <= x) climbs monotonically to it, and a step from above lands below it,
    so the previous prompt's theta is a safe warm start. Without a root (too few large differences for
    the target): theta_max.
    """
    goal = target * sum(c for c, _ in mags)
    low = goal / sum(c * m * m for c, m in mags)
    theta = min(max(low, start), theta_max)
    for _ in range(100):
        g, slope = -goal, 0.0
        for c, m in mags:
            t = math.tanh(theta * m)
            g += c * m * t
            slope += c * m * m * (1.0 - t * t)
        if slope <= 0.0:  # every tanh saturated
            if g < 0.0:
                return theta_max
            theta = low
            continue
        new = max(low, theta - g / slope)
        if new >= theta_max:
            return theta_max
        if abs(new - theta) <= 1e-9 * theta:
            return new
        theta = new
    return theta


def _sign_log_wealth(diffs: Sequence[float], drop: float, goal: float, score_max: float) -> float:
    """log wealth of ``prod(1 + f_i sign(-D_i))``: evidence against "the canary equals stable".

    Under that null the two answers to a prompt are exchangeable: given ``|D_i|`` and the earlier pairs,
    the sign of ``D_i`` is a fair coin, so any fraction ``0 <= f_i < 1`` computed from them makes the
    wealth an exact martingale. ``f_i = tanh(theta_i |D_i|)`` is the Kelly bet against the least
    favourable alternative with a mean drop ``delta_i``: the signs tilted by ``exp(theta m)`` (the
    closest to fair coins, given the magnitudes), theta solved on the magnitudes seen so far (rounded to
    1/MAGNITUDE_BINS of the scale) and PRIOR_WEIGHT prompts of magnitude sqrt(PRIOR_VAR). ``delta_i`` is
    max_drop, or the observed mean drop when larger (shrunk towards max_drop with the weight of
    DROP_PRIOR_WEIGHT prompts). Capped at BET_CAP, and so that a win lands on ``goal`` rather than
    beyond it (wealth above the threshold buys nothing; the smaller bet loses less): once at the
    threshold, the wealth stays there.
    """
    step = score_max / MAGNITUDE_BINS
    theta_max = 50.0 / drop
    counts: dict[int, int] = {}
    log_wealth, drop_sum, theta = 0.0, 0.0, 0.0
    for n, d in enumerate(diffs):
        m = abs(d)
        if m > 0.0 and log_wealth < goal:
            target = max(drop, (DROP_PRIOR_WEIGHT * drop + drop_sum) / (DROP_PRIOR_WEIGHT + n))
            mags = [(PRIOR_WEIGHT, math.sqrt(PRIOR_VAR)), (float(counts.get(0, 0)), 0.0)]
            mags += [(float(c), k * step) for k, c in counts.items() if k]
            theta = _tilt(mags, target, theta, theta_max)
            bet = min(math.tanh(theta * m), BET_CAP, math.expm1(goal - log_wealth + 1e-9))
            log_wealth += math.log1p(bet if d < 0.0 else -bet)
        k = round(m / step)
        counts[k] = counts.get(k, 0) + 1
        drop_sum -= d
    return log_wealth


def _decide(w_pass: float, w_fail: float, alpha: float, beta: float) -> Verdict:
    if w_fail >= math.log(1.0 / beta):
        return FAIL
    if w_pass >= math.log(1.0 / alpha):
        return PASS
    return INCONCLUSIVE


def judge_verdict(
    pairs: Sequence[ScorePair] | None,
    *,
    min_score: float | None = None,
    max_drop: float | None = 0.3,
    alpha: float = 0.05,
    beta: float = 0.05,
    score_max: float = 5.0,
) -> MetricVerdict:
    """Paired judge scores (stable, canary) per prompt, in judging order, against max_drop / min_score.

    max_drop: Fail when the canary's mean is lower than stable's (evidence against "no drop"), Pass when
    a drop of max_drop or more is refuted. min_score: Pass when a canary mean <= min_score is refuted,
    Fail when a mean >= min_score + margin is (margin = max_drop, or 0.3 without it).
    """
    _check_risks(alpha, beta)
    if max_drop is None and min_score is None:
        raise ValueError("judge analysis needs max_drop, min_score or both")
    if min_score is not None and not 0.0 <= min_score <= score_max:
        raise ValueError(f"min_score must be within 0-{score_max:g}, got {min_score}")
    drop = max(float(max_drop), MIN_DROP) if max_drop is not None else None
    rules: list[str] = []
    if drop is not None:
        rules.append(f"mean drop vs stable < {drop:g}")
    if min_score is not None:
        rules.append(f"canary mean > {min_score:g}")
    threshold = " and ".join(rules) + f" (0-{score_max:g} scale)"
    if pairs is None:
        return MetricVerdict(
            "judge",
            INCONCLUSIVE,
            None,
            None,
            0,
            threshold,
            "judge: no verdict, no judge scores (the judge or the revisions did not answer).",
        )
    valid: list[tuple[float, float]] = []
    for s, c in pairs:
        if s is None or c is None or not (0.0 <= s <= score_max and 0.0 <= c <= score_max):
            continue
        valid.append((float(s), float(c)))
    skipped = len(pairs) - len(valid)
    skipped_text = f" ({skipped} prompts without two valid scores skipped)" if skipped else ""
    if not valid:
        return MetricVerdict(
            "judge",
            INCONCLUSIVE,
            None,
            None,
            0,
            threshold,
            f"judge: no verdict, no prompt has been scored for both revisions yet{skipped_text}.",
        )
    n = len(valid)
    mean_s = sum(s for s, _ in valid) / n
    mean_c = sum(c for _, c in valid) / n
    seen = f"canary mean {mean_c:.3g} vs stable {mean_s:.3g} ({mean_c - mean_s:+.3g}) over {n} prompts"
    n_rules = len(rules)
    parts: list[tuple[Verdict, str]] = []
    if drop is not None:
        diffs = [c - s for s, c in valid]
        w_pass = _betting_log_wealth([d + drop for d in diffs], drop, -score_max + drop)
        # Fail refutes "canary equals stable": the two answers to a prompt are then exchangeable, so
        # the sign of each difference is a fair coin given its size, and bets on it may use the size.
        w_fail = _sign_log_wealth(diffs, drop, math.log(1.0 / (beta / n_rules)), score_max)
        v = _decide(w_pass, w_fail, alpha, beta / n_rules)
        parts.append(
            (
                v,
                _judge_sentence(
                    v,
                    f"a drop of {drop:g} or more",
                    "a canary as good as stable",
                    w_pass,
                    w_fail,
                    alpha,
                    beta / n_rules,
                ),
            )
        )
    if min_score is not None:
        margin = min(drop if drop is not None else 0.3, score_max - min_score)  # 0 at the top: never Pass
        floor_cs = [c for _, c in valid]
        gap = max(margin, MIN_DROP)
        w_pass = _betting_log_wealth([c - min_score for c in floor_cs], gap, -min_score)
        w_fail = _betting_log_wealth([min_score + margin - c for c in floor_cs], gap, -(score_max - min_score - margin))
        v = _decide(w_pass, w_fail, alpha, beta / n_rules)
        parts.append(
            (
                v,
                _judge_sentence(
                    v,
                    f"a canary mean <= {min_score:g}",
                    f"a canary mean >= {min_score + margin:.3g}",
                    w_pass,
                    w_fail,
                    alpha,
                    beta / n_rules,
                ),
            )
        )
    verdict = _combine(parts)
    message = f"judge: {seen}; threshold {threshold}{skipped_text}. " + _message(parts, verdict)
    return MetricVerdict("judge", verdict, mean_s, mean_c, n, threshold, message)


def _judge_sentence(
    verdict: Verdict, bad: str, good: str, w_pass: float, w_fail: float, alpha: float, beta: float
) -> str:
    if verdict == FAIL:
        return (
            f"Judge score regressed: the paired scores refute {good} (evidence {_ratio_text(w_fail)} >= "
            f"{1.0 / beta:.3g}; false-rollback risk <= {_pct(beta)})."
        )
    if verdict == PASS:
        return (
            f"Judge score holds: the paired scores refute {bad} (evidence {_ratio_text(w_pass)} >= "
            f"{1.0 / alpha:.3g}; false-promotion risk <= {_pct(alpha)})."
        )
    return (
        f"No decision yet on {bad}: evidence against it {_ratio_text(w_pass)} (pass at >= "
        f"{1.0 / alpha:.3g}), against {good} {_ratio_text(w_fail)} (fail at >= {1.0 / beta:.3g})."
    )
