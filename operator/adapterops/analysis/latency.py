"""The latency tests: canary vs stable at a quantile (relative), and a ceiling (absolute).

The relative test is a product of per-interval likelihood ratios (a sequential, stratified two-sample
test): the canary's share of requests slower than a cut, compared with stable's in the SAME interval,
given how many requests each revision served there and how many of all were slow. See `RelativeEvidence`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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
"""Stable reference requests slower than the cut needed before stable's shape is trusted."""
MIN_GUARD_TAIL = 10
"""Stable reference requests slower than the tail guard's bound needed to use the guard."""
GUARD_SHARE = 0.1
"""Share of the latency false-rollback risk spent by the tail guard."""
GUARD_PASS_LLR = 0.0
"""A Pass waits while the tail guard's log likelihood ratio is above this (it points to a regression)."""
MIN_INCREASE_PERCENT = 1.0
MIN_EFFECT_RATIO = 1.02
"""A cut where the tolerated slowdown moves the tail share by less than 2 % cannot decide anything."""
MAX_SHARE = 0.999
"""A slowed share r x p is capped below 1 (the odds ratio would be infinite)."""

Snapshot = tuple[Sequence[Bucket] | None, Sequence[Bucket] | None]
"""(stable, canary) cumulative histograms since the canary began, at one of the data path's fixed times."""


def _lchoose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def log_mgf_hypergeometric(total: int, slow: int, draws: int, log_psi: float) -> float:
    """log E[psi^K] for K ~ Hypergeometric(total, slow, draws): the slow requests among `draws` of
    `total` requests taken at random, `slow` of which are slow."""
    lo, hi = max(0, draws - (total - slow)), min(draws, slow)
    if lo >= hi:
        return lo * log_psi
    log_p = _lchoose(slow, lo) + _lchoose(total - slow, draws - lo) - _lchoose(total, draws)
    terms = []
    for k in range(lo, hi + 1):
        terms.append(log_p + k * log_psi)
        if k < hi:
            log_p += math.log((slow - k) * (draws - k)) - math.log((k + 1) * (total - slow - draws + k + 1))
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms))


def block_llr(n_s: int, k_s: int, n_c: int, k_c: int, log_psi: float) -> float:
    """log of Fisher's noncentral / central hypergeometric likelihood of the canary's slow count.

    Given one interval's margins (requests per revision, slow requests in all), the canary's slow
    count is hypergeometric when both revisions serve alike (routing at random makes the requests of
    an interval exchangeable), whatever the interval's latency level; with an odds ratio psi between
    the revisions' shares it is Fisher's noncentral hypergeometric. Intervals with one revision only,
    or no (or only) slow requests, carry no evidence: 0.
    """
    return k_c * log_psi - log_mgf_hypergeometric(n_s + n_c, k_s + k_c, n_c, log_psi)


@dataclass(frozen=True)
class _Cut:
    bound: float
    share: float  # stable reference's share slower than the bound
    ratio: float  # r: the share's ratio under the tolerated slowdown
    log_psi: float  # log odds ratio between the slowed and the stable share


def _hist(raw: Sequence[Bucket] | None) -> Histogram | None:
    got = parse_histogram(raw, "") if raw is not None else None
    return got if isinstance(got, Histogram) else None


def _add(a: Histogram | None, b: Histogram | None) -> Histogram | None:
    """Two histograms' counts summed over their shared bounds."""
    if a is None or b is None:
        return a or b
    if a.bounds == b.bounds:
        return Histogram(a.bounds, tuple(x + y for x, y in zip(a.cum, b.cum, strict=True)), a.total + b.total)
    shared = [x for x in a.bounds if x in b.bounds]
    cum = tuple(a.total - a.above(x) + b.total - b.above(x) for x in shared)
    return Histogram(tuple(shared), cum, a.total + b.total)


def _above(h: Histogram | None) -> dict[float, int]:
    """Requests slower than each bucket bound (none without a histogram)."""
    if h is None:
        return {}
    return {b: h.total - c for b, c in zip(h.bounds, h.cum, strict=True)}


def _choose(
    reference: Histogram, bounds: Sequence[float], q: float, rho: float
) -> tuple[_Cut | None, _Cut | None, float, str | None]:
    """The cut and the tail guard from the stable reference, or why there is none yet."""
    tail = 1.0 - q
    name = quantile_name(q)
    surv = Survival(reference)
    s_q = surv.quantile(tail)
    if s_q is None:
        s_q = reference.bounds[-1] if reference.bounds else math.inf
    if not reference.bounds or math.isinf(s_q):
        return None, None, s_q, f"the histogram has no finite bucket bound near stable's {name}"
    shared = [b for b in bounds if b in reference.bounds]

    def cut_at(b: float) -> _Cut:
        share = reference.above(b) / reference.total
        ratio = surv.at(b / rho) / surv.at(b)
        slowed = min(share * ratio, MAX_SHARE)
        return _Cut(b, share, ratio, math.log(slowed * (1.0 - share) / (share * (1.0 - slowed))))

    # The cut: the largest bound at or below the tolerated quantile rho * s_q (where any shape of
    # regression of that size moves the share the same way), skipping bounds where the slowdown moves
    # the share too little to measure.
    cut = None
    for b in sorted((b for b in shared if b <= rho * s_q), reverse=True):
        if reference.above(b) < MIN_STABLE_TAIL:
            return (
                None,
                None,
                s_q,
                (
                    f"too little stable reference data yet ({reference.above(b)} of {reference.total} stable "
                    f"requests slower than {secs(b)}, need {MIN_STABLE_TAIL})"
                ),
            )
        if (found := cut_at(b)).ratio >= MIN_EFFECT_RATIO:
            cut = found
            break
    if cut is None:
        return (
            None,
            None,
            s_q,
            (f"the histogram's bucket bounds cannot resolve the tolerated change near stable's {name} ({secs(s_q)})"),
        )
    # Tail guard: the first bound at or above the tolerated quantile, where a regression confined to
    # the slowest requests shows at least as strongly as a proportional one.
    guard = None
    above = next((b for b in shared if b > cut.bound and b >= rho * s_q), None)
    if above is not None and GUARD_SHARE > 0.0 and reference.above(above) >= MIN_GUARD_TAIL:
        found = cut_at(above)
        guard = found if found.ratio >= MIN_EFFECT_RATIO else None
    return cut, guard, s_q, None


class RelativeEvidence:
    """The relative test's log likelihood ratios over the intervals between consecutive snapshots.

    Interval j holds the requests between snapshot j-1 (or the canary's start) and snapshot j. Its
    likelihood ratio (`block_llr`) conditions on the interval's own margins, so the latency level of
    the interval (load, time of day) and the canary's share of traffic (the step's weight) drop out:
    steps with different weights, and a load that changes between intervals, cannot fake a regression.
    The cut and the effect of the tolerated slowdown (the odds ratio psi) are computed from stable's
    histogram BEFORE the interval (the baseline, i.e. stable before the canary, plus stable's earlier
    intervals): a predictable plug-in. So when both revisions serve alike, the product of the
    intervals' ratios is a martingale whatever psi is (evidence >= 1/beta with probability <= beta,
    Ville's inequality); and the inverse product is a supermartingale under a regression that moves
    the share at the cut by psi or more (a Pass with probability <= alpha).

    `extend` folds further snapshots in (the controller keeps one per canary test and adds each new
    snapshot once); `RelativeEvidence(...).extend(all_snapshots)` is the same thing from scratch.
    """

    def __init__(
        self,
        baseline: Sequence[Bucket] | None,
        q: float,
        increase_percent: float,
        origin: Snapshot | None = None,
    ) -> None:
        """``origin``: when snapshots are raw counter values (exact counts), the counters at the canary's
        start: the first interval is counted from them (and stable's history before it joins the
        reference). Without it, snapshots count from the canary's start (increase() since then)."""
        self.q, self.rho = q, 1.0 + increase_percent / 100.0
        self.base = _hist(baseline)
        self.llr = 0.0
        self.llr_guard = 0.0
        self.guard_share: float | None = None  # the guard's part of beta, fixed at the first interval used
        self.cut: _Cut | None = None  # as used for the last interval with data
        self.guard: _Cut | None = None
        self.s_q: float | None = None  # stable reference's quantile when the last cut was chosen
        self.waiting: str | None = None  # why no interval could be used yet
        self.intervals = 0  # intervals in which both revisions served
        self.snapshots = 0  # snapshots folded in
        # Per bucket bound, over the intervals in which both revisions served: [n_s, k_s, n_c, k_c, and
        # the Mantel-Haenszel odds ratio's numerator and denominator (the canary's odds of a slow request
        # vs stable's within the same intervals: what the test weighs, unlike the pooled shares, which a
        # load ramp during a step change confounds)].
        self.pooled: dict[float, list[float]] = {}
        self._prev_s: Histogram | None = _hist(origin[0]) if origin else None
        self._prev_c: Histogram | None = _hist(origin[1]) if origin else None

    def extend(self, snapshots: Sequence[Snapshot]) -> RelativeEvidence:
        for raw_s, raw_c in snapshots:
            self._interval(_hist(raw_s), _hist(raw_c))
            self.snapshots += 1
        return self

    def _interval(self, cur_s: Histogram | None, cur_c: Histogram | None) -> None:
        prev_s, prev_c = self._prev_s, self._prev_c
        reference = _add(self.base, prev_s)
        if cur_s is not None and cur_c is not None:
            bounds = [b for b in cur_s.bounds if b in cur_c.bounds]
            dn_s = max(0, cur_s.total - (prev_s.total if prev_s else 0))
            dn_c = max(0, cur_c.total - (prev_c.total if prev_c else 0))

            above = [_above(h) for h in (cur_s, prev_s, cur_c, prev_c)]

            def slow(b: float) -> tuple[int, int]:
                # increase() is an estimate: an interval's difference can come out negative.
                ds = above[0].get(b, 0) - above[1].get(b, 0)
                dc = above[2].get(b, 0) - above[3].get(b, 0)
                return min(max(0, ds), dn_s), min(max(0, dc), dn_c)

            if dn_s and dn_c:
                self.intervals += 1
                for b in bounds:
                    k_s, k_c = slow(b)
                    acc = self.pooled.setdefault(b, [0.0] * 6)
                    whole = dn_s + dn_c
                    for i, x in enumerate(
                        (dn_s, k_s, dn_c, k_c, k_c * (dn_s - k_s) / whole, k_s * (dn_c - k_c) / whole)
                    ):
                        acc[i] += x
            if reference is not None:
                cut, guard, s_q, why = _choose(reference, bounds, self.q, self.rho)
                if cut is None:
                    self.waiting = why
                else:
                    if self.guard_share is None:  # fixed once, before the first interval's evidence
                        self.guard_share = GUARD_SHARE if guard is not None else 0.0
                    self.cut, self.s_q, self.waiting = cut, s_q, None
                    self.guard = guard if self.guard_share else None
                    if dn_s and dn_c:
                        k_s, k_c = slow(cut.bound)
                        self.llr += block_llr(dn_s, k_s, dn_c, k_c, cut.log_psi)
                        if self.guard is not None:
                            k_s, k_c = slow(self.guard.bound)
                            self.llr_guard += block_llr(dn_s, k_s, dn_c, k_c, self.guard.log_psi)
        if cur_s is not None:
            self._prev_s = cur_s
        if cur_c is not None:
            self._prev_c = cur_c


def _latency_relative(
    ev: RelativeEvidence, increase_percent: float, alpha: float, beta: float, measured: str
) -> tuple[Verdict, str]:
    """The relative test's verdict. What a Fail shows is that the canary is slower than stable (a canary
    as fast as stable gives such evidence with probability <= beta), not that it is beyond the tolerance:
    a canary slower by less than the tolerance is rolled back with a probability between beta and 1 - alpha
    (the bench's operating-characteristic curve)."""
    name = quantile_name(ev.q)
    rule = f"+{increase_percent:g}%"
    if ev.cut is None:
        why = ev.waiting or "no interval with data from both revisions yet"
        return INCONCLUSIVE, f"latency {name} vs stable: no verdict yet, {why}."
    cut, guard = ev.cut, ev.guard
    guard_share = ev.guard_share or 0.0
    beta_main = beta * (1.0 - guard_share)

    def evidence(at: _Cut) -> str:
        n_s, k_s, n_c, k_c, mh_num, mh_den = ev.pooled.get(at.bound, (0.0,) * 6)
        if not (n_s and n_c):
            return f"no interval yet in which both revisions served requests slower or faster than {secs(at.bound)}"
        share_s, share_c = k_s / n_s, k_c / n_c
        odds = f"x{mh_num / mh_den:.2f}" if mh_den > 0 else "undefined (no slow stable request)"
        return (
            f"{pct(share_c)} of {n_c:.0f} canary requests were slower than {secs(at.bound)} vs {pct(share_s)} of "
            f"{n_s:.0f} stable requests in the same intervals (odds ratio within intervals {odds}; a {rule} "
            f"slowdown would make it about x{math.exp(at.log_psi):.2f})"
        )

    ratio = ratio_text(ev.llr)
    if ev.llr >= math.log(1.0 / beta_main):
        return FAIL, (
            f"latency {name}: canary slower than stable ({measured}, tolerance {rule}): {evidence(cut)}; "
            f"likelihood ratio {ratio} >= "
            f"{1.0 / beta_main:.3g} for a {rule} slowdown against none: were the canary as fast as stable, "
            f"evidence this strong would come with probability <= {pct(beta_main)}."
        )
    if guard is not None and guard_share > 0.0:
        limit_g = 1.0 / (beta * guard_share)
        if ev.llr_guard >= math.log(limit_g):
            return FAIL, (
                f"latency {name}: canary's slowest requests slower than stable's ({measured}, tolerance "
                f"{rule}): {evidence(guard)}; "
                f"likelihood ratio {ratio_text(ev.llr_guard)} >= {limit_g:.3g} for a {rule} slowdown against "
                f"none: were the canary as fast as stable, evidence this strong would come with probability "
                f"<= {pct(beta * guard_share)}."
            )
    if ev.llr <= math.log(alpha) and guard is not None and ev.llr_guard > GUARD_PASS_LLR:
        return INCONCLUSIVE, (
            f"latency {name} vs stable ({rule}): within {rule} at {secs(cut.bound)} (likelihood ratio {ratio}) "
            f"but not yet at {secs(guard.bound)}: {evidence(guard)} (likelihood ratio "
            f"{ratio_text(ev.llr_guard)}, needs <= 1 to pass)."
        )
    if ev.llr <= math.log(alpha):
        return PASS, (
            f"latency {name} within {rule} of stable: {evidence(cut)}; likelihood ratio {ratio} <= {alpha:.3g}: "
            f"a canary slowed by {rule} would get here with probability <= {pct(alpha)}."
        )
    return INCONCLUSIVE, (
        f"latency {name} vs stable ({rule}): no decision yet, {evidence(cut)}; likelihood ratio {ratio} "
        f"(fail at >= {1.0 / beta_main:.3g}, pass at <= {alpha:.3g})."
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
            f"latency {name} near or above the {secs(max_seconds)} ceiling: {seen}, allowed {pct(p_bad)}; "
            f"likelihood ratio {ratio_text(llr_fail)} >= {1.0 / beta:.3g} for {pct(p_bad)} slower against "
            f"{pct(p_good)}: were at most {pct(p_good)} of canary requests slower, evidence this strong would "
            f"come with probability <= {pct(beta)}."
        )
    if llr_pass <= math.log(alpha):
        return PASS, (
            f"latency {name} under the {secs(max_seconds)} ceiling: {seen} ({rule}; likelihood ratio "
            f"{ratio_text(llr_pass)} <= {alpha:.3g}: a canary at the ceiling would get here with probability "
            f"<= {pct(alpha)})."
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
    snapshots: Sequence[Snapshot] | None = None,
    baseline: Sequence[Bucket] | None = None,
    evidence: RelativeEvidence | None = None,
) -> MetricVerdict:
    """Latency quantile of the canary against a ceiling and/or an increase over stable.

    Histograms are Prometheus cumulative buckets ``[(le_seconds, cumulative_count), ...]`` with +Inf.
    ``stable_hist`` / ``canary_hist``: counted since the canary began, now (the values shown, and the
    ceiling's test, a one-sample test on the canary's cumulative counts).

    ``snapshots``: the same pair at fixed times since the canary began (every 30 s in the controller),
    oldest first, never the current, still growing interval: the relative test is a product over the
    intervals between them (`RelativeEvidence`), valid however often it is looked at. ``baseline``:
    stable's histogram over a window before the canary began (the first intervals' cut and effect).
    ``evidence``: the same, already folded (the controller extends one per canary test with each new
    snapshot instead of recomputing them all at every look); when given, snapshots and baseline are not
    used. Without any of them the current pair is one interval: a fixed-sample test for a single look (its cut
    from the baseline, or from stable's own histogram without one), NOT valid when repeated.
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
    if increase is not None:
        if evidence is None:
            if snapshots is None:
                snapshots, baseline = [(stable_hist, canary_hist)], baseline if baseline is not None else stable_hist
            evidence = RelativeEvidence(baseline, quantile, increase).extend(snapshots)
        measured = f"{name} ratio n/a"
        if stable_value and canary_value is not None and not math.isinf(stable_value):
            measured = f"{name} ratio x{canary_value / stable_value:.3g} measured"
        parts.append(_latency_relative(evidence, increase, alpha, beta / n_rules, measured))
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
