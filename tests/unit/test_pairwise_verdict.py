"""The canary's pairwise metric: the sequential test on both-order comparison outcomes (win rate vs stable)."""

from __future__ import annotations

import random

import pytest

from adapterops.analysis.pairwise import outcome_pair, pairwise_verdict
from adapterops.api.modeldeployment import JudgeAnalysis


def verdict_of(outcomes: list[float], **kw: float) -> str:
    return pairwise_verdict([outcome_pair(o) for o in outcomes], **kw).verdict


def test_a_canary_that_wins_passes_and_one_that_loses_fails() -> None:
    # 13 straight wins (or losses) decide; 12 do not yet (evidence capped per prompt, prior variance).
    assert verdict_of([1.0] * 12) == verdict_of([-1.0] * 12) == "Inconclusive"
    assert verdict_of([1.0] * 13) == "Pass" and verdict_of([-1.0] * 13) == "Fail"


def test_ties_alone_pass_once_a_low_win_rate_is_refuted() -> None:
    # All ties is a win rate of exactly 0.5: it takes more prompts than wins, but it passes, never fails.
    assert verdict_of([0.0] * 5) == "Inconclusive"
    first_pass = next(n for n in range(1, 200) if verdict_of([0.0] * n) == "Pass")
    assert 5 < first_pass <= 100, first_pass
    assert all(verdict_of([0.0] * n) != "Fail" for n in range(1, first_pass + 1))


def test_a_position_biased_judge_gives_ties_and_no_verdict_from_bias() -> None:
    # prefer-first: +1 in one order, -1 in the other: outcome 0 whichever revision is better.
    v = pairwise_verdict([outcome_pair(0.0)] * 3, agreement=0.0)
    assert v.verdict == "Inconclusive" and "agreed with itself across orders on 0%" in v.message


def test_the_message_counts_wins_ties_and_losses_and_the_win_rate() -> None:
    v = pairwise_verdict([outcome_pair(o) for o in (1.0, 0.5, 0.0, -1.0)] + [(None, None)], agreement=0.75)
    assert "canary won 2, tied 1, lost 1 of 4 prompts (win rate 0.562)" in v.message
    assert "1 prompts without a comparison skipped" in v.message
    assert v.name == "pairwise" and v.stable_value == 0.5 and v.canary_value == pytest.approx(0.5625)


def test_no_comparison_is_inconclusive() -> None:
    assert pairwise_verdict(None).verdict == "Inconclusive"
    assert pairwise_verdict([(None, None)]).verdict == "Inconclusive"


def test_an_equal_canary_is_rolled_back_at_most_beta_of_the_time() -> None:
    # Exchangeable answers: each outcome's sign a fair coin given its size (sizes as a real judge gives them).
    rng = random.Random(7)
    runs, fails = 400, 0
    for _ in range(runs):
        outcomes = [rng.choice((1.0, 0.5, 0.0, 0.0)) * rng.choice((1, -1)) for _ in range(100)]
        fails += verdict_of(outcomes) == "Fail"
    assert fails / runs <= 0.05, fails


def test_a_canary_at_the_lowest_acceptable_win_rate_is_promoted_at_most_alpha_of_the_time() -> None:
    # Win rate 0.45 exactly: wins 45%, losses 55% (no ties).
    rng = random.Random(11)
    runs, passes = 400, 0
    for _ in range(runs):
        passes += verdict_of([1.0 if rng.random() < 0.45 else -1.0 for _ in range(100)]) == "Pass"
    assert passes / runs <= 0.05, passes


def test_the_api_refuses_a_min_win_rate_the_test_cannot_use() -> None:
    base = {"dataset": "configmap://p/k", "judge": {"endpoint": "http://j/v1", "model": "j"}, "mode": "pairwise"}
    assert JudgeAnalysis.model_validate(base).min_win_rate == 0.45
    with pytest.raises(ValueError, match=r"min_win_rate|minWinRate"):
        JudgeAnalysis.model_validate({**base, "minWinRate": 0.5})
