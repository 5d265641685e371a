"""The error-rate test: Wald's binomial likelihood ratio on the canary's share of errors."""

from __future__ import annotations

import math

from adapterops.analysis.verdict import (
    FAIL,
    GOOD_FRACTION,
    INCONCLUSIVE,
    PASS,
    MetricVerdict,
    binomial_llr,
    check_risks,
    pct,
    ratio_text,
)


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

    Counts are cumulative since the canary began; stable's are reported for comparison only. A Fail
    refutes "the canary's error rate is at most half the limit", not "within the limit": a canary
    between the two may be rolled back (false rollback <= beta holds at half the limit and below).
    ``max_percent`` 0 allows no error at all: the first canary error fails.
    """
    check_risks(alpha, beta)
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
    seen = f"{k} errors in {n} canary requests ({pct(rate)})"
    if stable_value is not None and stable_total is not None:
        seen += f" vs {pct(stable_value)} of {round(float(stable_total))} stable requests"
    if max_percent >= 100.0:
        return MetricVerdict(
            "errorRate", PASS, stable_value, rate, n, threshold, f"errorRate: {seen}; any rate passes."
        )
    p_bad = max(max_percent, 0.1) / 100.0
    p_good = p_bad * GOOD_FRACTION
    llr = binomial_llr(k, n, p_good, p_bad)
    if max_percent <= 0.0 and k > 0:
        verdict, why = FAIL, f"errorRate above the 0% limit: {seen}; no error is allowed."
    elif llr >= math.log(1.0 / beta):
        verdict, why = (
            FAIL,
            (
                f"errorRate near or above the {max_percent:g}% limit: {seen}; likelihood ratio "
                f"{ratio_text(llr)} >= {1.0 / beta:.3g} for {pct(p_bad)} against {pct(p_good)} (half the limit): "
                f"were the canary's error rate <= {pct(p_good)}, evidence this strong would come with "
                f"probability <= {pct(beta)}."
            ),
        )
    elif llr <= math.log(alpha):
        verdict, why = (
            PASS,
            (
                f"errorRate within the {max_percent:g}% limit: {seen} (likelihood ratio {ratio_text(llr)} <= "
                f"{alpha:.3g}: a canary at the limit would get here with probability <= {pct(alpha)})."
            ),
        )
    else:
        verdict, why = (
            INCONCLUSIVE,
            (
                f"errorRate: no decision yet, {seen}; likelihood ratio {ratio_text(llr)} (fail at >= "
                f"{1.0 / beta:.3g}, pass at <= {alpha:.3g})."
            ),
        )
    return MetricVerdict("errorRate", verdict, stable_value, rate, n, threshold, why)
