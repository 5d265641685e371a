"""The judge test: exact nonparametric testing by betting on paired 0-5 scores (canary - stable)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from adapterops.analysis.verdict import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    MetricVerdict,
    ScorePair,
    Verdict,
    check_risks,
    combine,
    message_of,
    pct,
    ratio_text,
)

MIN_DROP = 0.05
BET_CAP = 0.99
"""Largest bet as a fraction of the one that could lose everything on the worst possible score."""
PRIOR_VAR = 1.0
PRIOR_WEIGHT = 4.0
"""Variance of judge scores / differences assumed before data (0-5 scale), worth 4 observations."""
DROP_PRIOR_WEIGHT = 20.0
"""The judge's Fail bet targets max_drop; a larger observed drop counts once it outweighs 20 prompts."""
MAGNITUDE_BINS = 200
"""The Fail bet's tilt is solved on |D| rounded to 1/200 of the scale (at most 201 distinct values)."""


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
    check_risks(alpha, beta)
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
    verdict = combine(parts)
    message = f"judge: {seen}; threshold {threshold}{skipped_text}. " + message_of(parts, verdict)
    return MetricVerdict("judge", verdict, mean_s, mean_c, n, threshold, message)


def _judge_sentence(
    verdict: Verdict, bad: str, good: str, w_pass: float, w_fail: float, alpha: float, beta: float
) -> str:
    if verdict == FAIL:
        return (
            f"Judge score lower: the paired scores refute {good} (evidence {ratio_text(w_fail)} >= "
            f"{1.0 / beta:.3g}: were it so, evidence this strong would come with probability <= {pct(beta)})."
        )
    if verdict == PASS:
        return (
            f"Judge score holds: the paired scores refute {bad} (evidence {ratio_text(w_pass)} >= "
            f"{1.0 / alpha:.3g}: were it so, evidence this strong would come with probability <= {pct(alpha)})."
        )
    return (
        f"No decision yet on {bad}: evidence against it {ratio_text(w_pass)} (pass at >= "
        f"{1.0 / alpha:.3g}), against {good} {ratio_text(w_fail)} (fail at >= {1.0 / beta:.3g})."
    )
