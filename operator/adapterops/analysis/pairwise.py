"""The pairwise judge test: the canary's win rate against stable, from both-order judge comparisons.

Each prompt gives an outcome o in [-1, 1] from the canary's side (`adapterops_common.pairwise`: +1 won in
both orders, -1 lost in both, 0 a tie or a position-biased split); the win rate is (1 + mean o) / 2. The
outcomes arrive as score pairs (1, 1 + o) so that the providers, the evidence kept across restarts and
the sequential test are the paired-score ones (`paired_scores`), on a 0-2 scale:

- Fail refutes "the canary equals stable": then its answer and stable's are exchangeable, and swapping
  them turns o into -o, so the sign of each outcome is a fair coin given its size (the betting sign test).
- Pass refutes "the canary's win rate is minWinRate or less", i.e. a mean outcome <= -(1 - 2 minWinRate)
  (the betting test of a mean bounded below).

Both bet only on earlier prompts: anytime-valid, looked at after every step at no cost in error rates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from adapterops.analysis.paired_scores import MIN_DROP, _betting_log_wealth, _decide, _sign_log_wealth
from adapterops.analysis.verdict import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    MetricVerdict,
    ScorePair,
    check_risks,
    pct,
    ratio_text,
)

NAME = "pairwise"


def outcome_pair(outcome: float) -> ScorePair:
    """A comparison's outcome as the (stable, canary) score pair the paired-judge machinery carries."""
    return 1.0, 1.0 + outcome


def pairwise_verdict(
    pairs: Sequence[ScorePair] | None,
    *,
    min_win_rate: float = 0.45,
    agreement: float | None = None,
    alpha: float = 0.05,
    beta: float = 0.05,
) -> MetricVerdict:
    """Outcome pairs (1, 1 + o) in judging order; None pairs are comparisons that failed (skipped)."""
    check_risks(alpha, beta)
    if not 0.0 < min_win_rate < 0.5:
        raise ValueError(f"min_win_rate must be in (0, 0.5), got {min_win_rate}")
    drop = max(1.0 - 2.0 * min_win_rate, MIN_DROP)
    threshold = f"canary win rate vs stable > {(1.0 - drop) / 2.0:.3g} (ties count half; equal revisions: 0.5)"
    outcomes = [
        c - s
        for s, c in pairs or []
        if s is not None and c is not None and -1.0 <= c - s <= 1.0  # anything else is not an outcome
    ]
    skipped = len(pairs or []) - len(outcomes)
    skipped_text = f" ({skipped} prompts without a comparison skipped)" if skipped else ""
    if not outcomes:
        why = "no comparison yet" if pairs else "no comparisons (the judge or the revisions did not answer)"
        return MetricVerdict(
            NAME, INCONCLUSIVE, None, None, 0, threshold, f"pairwise: no verdict, {why}{skipped_text}."
        )
    n = len(outcomes)
    wins, ties, losses = sum(o > 0 for o in outcomes), sum(o == 0 for o in outcomes), sum(o < 0 for o in outcomes)
    win_rate = (1.0 + sum(outcomes) / n) / 2.0
    agreed = f", the judge agreed with itself across orders on {pct(agreement)}" if agreement is not None else ""
    seen = f"canary won {wins}, tied {ties}, lost {losses} of {n} prompts (win rate {win_rate:.3g}){agreed}"
    w_pass = _betting_log_wealth([o + drop for o in outcomes], drop, -1.0 + drop)
    w_fail = _sign_log_wealth(outcomes, drop, math.log(1.0 / beta), 1.0)
    verdict = _decide(w_pass, w_fail, alpha, beta)
    if verdict == FAIL:
        sentence = (
            f"Canary loses to stable: the comparisons refute a canary as good as stable (evidence "
            f"{ratio_text(w_fail)} >= {1.0 / beta:.3g}; false-rollback risk <= {pct(beta)})."
        )
    elif verdict == PASS:
        sentence = (
            f"Canary holds against stable: the comparisons refute a win rate <= {(1.0 - drop) / 2.0:.3g} (evidence "
            f"{ratio_text(w_pass)} >= {1.0 / alpha:.3g}; false-promotion risk <= {pct(alpha)})."
        )
    else:
        sentence = (
            f"No decision yet: evidence against a win rate <= {(1.0 - drop) / 2.0:.3g} {ratio_text(w_pass)} (pass at "
            f">= {1.0 / alpha:.3g}), against a canary as good as stable {ratio_text(w_fail)} (fail at >= "
            f"{1.0 / beta:.3g})."
        )
    message = f"pairwise: {seen}; threshold {threshold}{skipped_text}. {sentence}"
    return MetricVerdict(NAME, verdict, 0.5, round(win_rate, 6), n, threshold, message)
