"""The latency tests: canary vs stable at a quantile (relative), and a ceiling (absolute)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from adapterops.analysis.histogram import Histogram, Survival, histogram_quantile, parse_histogram
from adapterops.analysis.verdict import (
    FAIL,
    GOOD_FRACTION,
    INCONCLUSIVE,
    PASS,
    Bucket,
    MetricVerdict,
    Verdict,
    binomial_llr,
    check_risks,
    combine,
    message_of,
    pct,
    quantile_name,
    ratio_text,
    secs,
)

MIN_STABLE_TAIL = 20
"""Stable requests slower than the cut needed before stable's shape is trusted."""
MIN_GUARD_TAIL = 10
"""Stable requests slower than the tail guard's bound needed to use the guard."""
GUARD_SHARE = 0.1
"""Share of the latency false-rollback risk spent by the tail guard."""
GUARD_PASS_LLR = 0.0
"""A Pass waits while the tail guard's log likelihood ratio is above this (it points to a regression)."""
MIN_INCREASE_PERCENT = 1.0
MIN_EFFECT_RATIO = 1.02
"""A cut where the tolerated slowdown moves the tail share by less than 2 % cannot decide anything."""


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
    stable: Histogram, canary: Histogram, q: float, increase_percent: float, alpha: float, beta: float
) -> tuple[Verdict, str]:
    tail = 1.0 - q
    rho = 1.0 + increase_percent / 100.0
    name = quantile_name(q)
    rule = f"+{increase_percent:g}%"
    surv = Survival(stable)
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
                f"{stable.total} stable requests slower than {secs(b)}, need {MIN_STABLE_TAIL})."
            )
        if (r := effect(b)) >= MIN_EFFECT_RATIO:
            cut, r1 = b, r
            break
    if cut is None:
        return INCONCLUSIVE, (
            f"latency {name} vs stable: the histogram's bucket bounds cannot resolve a {rule} change "
            f"near stable's {name} ({secs(s_q)})."
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
            f"{pct(k_c / n_c)} of {n_c} canary requests were slower than {secs(b)} vs {pct(k_s / n_s)} "
            f"of {n_s} stable requests, where a {rule} slowdown would make about {pct(k_s / n_s * r)}"
        )

    llr = _race_llr(n_s, n_c, stable.above(cut), canary.above(cut), r1)
    ratio = ratio_text(llr)
    if llr >= math.log(1.0 / beta_main):
        return FAIL, (
            f"latency {name} regressed beyond {rule} over stable: {evidence(cut, r1)} (likelihood ratio "
            f"{ratio} >= {1.0 / beta_main:.3g}; false-rollback risk <= {pct(beta)})."
        )
    llr_g = -math.inf
    if r_g >= MIN_EFFECT_RATIO and guard is not None:
        llr_g = _race_llr(n_s, n_c, stable.above(guard), canary.above(guard), r_g)
        limit_g = 1.0 / (beta * GUARD_SHARE)
        if llr_g >= math.log(limit_g):
            return FAIL, (
                f"latency tail regressed beyond {rule} over stable: {evidence(guard, r_g)} (likelihood "
                f"ratio {ratio_text(llr_g)} >= {limit_g:.3g}; false-rollback risk <= {pct(beta)})."
            )
    if llr <= math.log(alpha) and llr_g > GUARD_PASS_LLR and guard is not None:
        return INCONCLUSIVE, (
            f"latency {name} vs stable ({rule}): within {rule} at {secs(cut)} (likelihood ratio {ratio}) "
            f"but not yet at {secs(guard)}: {evidence(guard, r_g)} (likelihood ratio {ratio_text(llr_g)}, "
            f"needs <= 1 to pass)."
        )
    if llr <= math.log(alpha):
        return PASS, (
            f"latency {name} within {rule} of stable: {evidence(cut, r1)} (likelihood ratio {ratio} <= "
            f"{alpha:.3g}; false-promotion risk <= {pct(alpha)})."
        )
    return INCONCLUSIVE, (
        f"latency {name} vs stable ({rule}): no decision yet, {evidence(cut, r1)}; likelihood ratio "
        f"{ratio} (fail at >= {1.0 / beta_main:.3g}, pass at <= {alpha:.3g})."
    )


def _latency_ceiling(canary: Histogram, q: float, max_seconds: float, alpha: float, beta: float) -> tuple[Verdict, str]:
    tail = 1.0 - q
    name = quantile_name(q)
    p_bad, p_good = tail, tail * GOOD_FRACTION
    n = canary.total
    below = [b for b in canary.bounds if b <= max_seconds]
    above = [b for b in canary.bounds if b >= max_seconds]
    lo = below[-1] if below else 0.0  # count above lo >= count above max_seconds: used to pass
    hi = above[0] if above else math.inf  # count above hi <= count above max_seconds: used to fail
    k_pass, k_fail = canary.above(lo), canary.above(hi)
    llr_pass = binomial_llr(k_pass, n, p_good, p_bad)
    llr_fail = binomial_llr(k_fail, n, p_good, p_bad)
    if lo == hi:
        seen = f"{pct(k_fail / n)} of {n} canary requests were slower than {secs(max_seconds)}"
    else:
        nearest = f"between bounds {secs(lo)} and {secs(hi)}" if lo > 0.0 else f"below the first bound {secs(hi)}"
        seen = (
            f"between {pct(k_fail / n)} and {pct(k_pass / n)} of {n} canary requests were slower than "
            f"{secs(max_seconds)} (not a bucket bound: {nearest})"
        )
    rule = f"{name} <= {secs(max_seconds)}, i.e. at most {pct(p_bad)} slower"
    if llr_fail >= math.log(1.0 / beta):
        return FAIL, (
            f"latency {name} above the {secs(max_seconds)} ceiling: {seen}, allowed {pct(p_bad)} "
            f"(likelihood ratio {ratio_text(llr_fail)} >= {1.0 / beta:.3g}; false-rollback risk <= "
            f"{pct(beta)})."
        )
    if llr_pass <= math.log(alpha):
        return PASS, (
            f"latency {name} under the {secs(max_seconds)} ceiling: {seen} ({rule}; likelihood ratio "
            f"{ratio_text(llr_pass)} <= {alpha:.3g}; false-promotion risk <= {pct(alpha)})."
        )
    if lo == 0.0:
        return INCONCLUSIVE, (
            f"latency {name} ceiling {secs(max_seconds)} is below the smallest bucket bound; it can "
            "never be shown to hold."
        )
    return INCONCLUSIVE, (
        f"latency {name} ceiling {secs(max_seconds)}: no decision yet, {seen}; likelihood ratio "
        f"{ratio_text(llr_fail)} (fail at >= {1.0 / beta:.3g}, pass at <= {alpha:.3g})."
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
    check_risks(alpha, beta)
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    if max_seconds is None and max_increase_percent is None:
        raise ValueError("latency analysis needs max_seconds, max_increase_percent or both")
    name = quantile_name(quantile)
    rules: list[str] = []
    increase = None
    if max_increase_percent is not None:
        increase = max(float(max_increase_percent), MIN_INCREASE_PERCENT)
        raised = " (0% raised to 1%)" if increase != max_increase_percent else ""
        rules.append(f"{name} <= stable {name} +{increase:g}%{raised}")
    if max_seconds is not None:
        rules.append(f"{name} <= {secs(max_seconds)}")
    threshold = " and ".join(rules)

    stable = parse_histogram(stable_hist, "stable")
    canary = parse_histogram(canary_hist, "canary")
    stable_value = histogram_quantile(quantile, stable) if isinstance(stable, Histogram) else None
    canary_value = histogram_quantile(quantile, canary) if isinstance(canary, Histogram) else None
    samples = canary.total if isinstance(canary, Histogram) else 0
    needed = (stable, canary) if increase is not None else (canary,)
    problems = [p for p in needed if isinstance(p, str)]
    if problems or not isinstance(canary, Histogram):
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
    if increase is not None and isinstance(stable, Histogram):
        parts.append(_latency_relative(stable, canary, quantile, increase, alpha, beta / n_rules))
    if max_seconds is not None:
        parts.append(_latency_ceiling(canary, quantile, float(max_seconds), alpha, beta / n_rules))
    verdict = combine(parts)
    values = f"latency {name}: canary {secs(canary_value)}" + (
        f", stable {secs(stable_value)}" if stable_value is not None else ""
    )
    if stable_value and canary_value is not None and not math.isinf(stable_value):
        values += f" ({100.0 * (canary_value / stable_value - 1.0):+.1f}%)"
    message = f"{values}; threshold {threshold}. " + message_of(parts, verdict)
    return MetricVerdict("latency", verdict, stable_value, canary_value, samples, threshold, message)
