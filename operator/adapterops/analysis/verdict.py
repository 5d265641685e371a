"""A metric's verdict and the small helpers every test shares (formatting, likelihood ratios)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["Pass", "Fail", "Inconclusive"]
Bucket = tuple[float, float]
"""One Prometheus histogram bucket: (``le`` upper bound in seconds, cumulative count); +Inf included."""
ScorePair = tuple[float | None, float | None]
"""Judge scores of one prompt: (stable answer, canary answer); None when that judgement failed."""

PASS: Verdict = "Pass"
FAIL: Verdict = "Fail"
INCONCLUSIVE: Verdict = "Inconclusive"

GOOD_FRACTION = 0.5
"""For ceilings (latency maxSeconds, error rate): 'good' is half the limit, 'bad' the limit itself."""


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


def overall_verdict(verdicts: Iterable[MetricVerdict]) -> Verdict:
    """Fail if any metric fails, Pass if there is at least one metric and all pass, else Inconclusive."""
    found = [v.verdict for v in verdicts]
    if FAIL in found:
        return FAIL
    if found and all(v == PASS for v in found):
        return PASS
    return INCONCLUSIVE


def check_risks(alpha: float, beta: float) -> None:
    if not (0.0 < alpha < 1.0 and 0.0 < beta < 1.0):
        raise ValueError(f"alpha and beta must be in (0, 1), got {alpha}, {beta}")


def pct(x: float) -> str:
    return f"{100.0 * x:.3g}%"


def secs(x: float | None) -> str:
    if x is None:
        return "n/a"
    if math.isinf(x):
        return "+Inf"
    return f"{x:.3g}s"


def quantile_name(q: float) -> str:
    return "p" + f"{100.0 * q:.10g}"


def combine(parts: list[tuple[Verdict, str]]) -> Verdict:
    verdicts = [v for v, _ in parts]
    if FAIL in verdicts:
        return FAIL
    if all(v == PASS for v in verdicts):
        return PASS
    return INCONCLUSIVE


def message_of(parts: list[tuple[Verdict, str]], verdict: Verdict) -> str:
    """Fail: the failing rules first; otherwise every rule's sentence."""
    chosen = [m for v, m in parts if v == FAIL] if verdict == FAIL else [m for _, m in parts]
    return " ".join(chosen)


def binomial_llr(k: float, n: float, p_good: float, p_bad: float) -> float:
    """log of P(k of n | p_bad) / P(k of n | p_good)."""
    return k * math.log(p_bad / p_good) + (n - k) * math.log((1.0 - p_bad) / (1.0 - p_good))


def ratio_text(llr: float) -> str:
    if llr > 700:
        return "> 1e300"
    if llr < -700:
        return "< 1e-300"
    return f"{math.exp(llr):.3g}"
