"""Small, distribution-free summaries for the FineTuneJob benchmark's figures."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from scipy.stats import binom


def median_ci(xs: Sequence[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """(median, low, high, coverage): the median with the order-statistic interval around it.

    Distribution-free: for n i.i.d. samples, [x_(k), x_(n-k+1)] covers the true median with probability
    1 - 2 P(Binomial(n, 1/2) < k); k is the largest rank whose coverage is still >= `level` (with 10
    samples: ranks 2 and 9, 97.9%). With too few samples for `level`, the full range and its coverage."""
    data = sorted(xs)
    n = len(data)
    k = 1
    while k + 1 <= n // 2 and 1 - 2 * binom.cdf(k, n, 0.5) >= level:
        k += 1
    coverage = 1 - 2 * binom.cdf(k - 1, n, 0.5)
    return statistics.median(data), data[k - 1], data[n - k], coverage


def quantile(xs: Sequence[float], q: float) -> float:
    """The q-quantile by the nearest-rank rule (a value that was measured)."""
    data = sorted(xs)
    return data[max(0, math.ceil(q * len(data)) - 1)]


def summary(xs: Sequence[float], digits: int = 2) -> dict[str, float | int]:
    med, lo, hi, coverage = median_ci(xs)
    return {
        "n": len(xs),
        "median": round(med, digits),
        "ci_low": round(lo, digits),
        "ci_high": round(hi, digits),
        "ci_coverage": round(coverage, 3),
        "min": round(min(xs), digits),
        "max": round(max(xs), digits),
    }
