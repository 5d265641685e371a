"""Pairwise judging (adapterops_common.pairwise) against the stand-in judge: both orders asked, position bias
cancelled, ties, the agreement rate, and strict parsing of the judge's preference."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from adapterops_common.judge import InvalidReply, JudgeClient, JudgeConfig
from adapterops_common.pairwise import Comparison, Tally, compare, compare_all_sync, parse_preference
from testworld.judge import StandInJudge

REFERENCE = "running shoes women size 8 under $100"
GOOD = "running shoes women size 8 under $100"
WORSE = "shoes"


@pytest.fixture
def judge() -> Iterator[StandInJudge]:
    with StandInJudge() as server:
        yield server


def run(judge: StandInJudge, x: str, y: str, reference: str | None = REFERENCE) -> Comparison:
    async def go() -> Comparison:
        async with JudgeClient(JudgeConfig(judge.url, "j", max_attempts=1), "rubric") as client:
            return await compare(client, "find running shoes", x, y, reference)

    return asyncio.run(go())


def test_the_better_answer_wins_in_both_orders(judge: StandInJudge) -> None:
    c = run(judge, GOOD, WORSE)
    assert c == Comparison("ok", outcome=1.0, agree=True, attempts=2)
    assert judge.requests == 2  # one question per order


def test_swapping_the_answers_swaps_the_outcome(judge: StandInJudge) -> None:
    assert run(judge, WORSE, GOOD).outcome == -run(judge, GOOD, WORSE).outcome == -1.0  # type: ignore[operator]


def test_equal_answers_are_a_tie_in_both_orders(judge: StandInJudge) -> None:
    assert run(judge, GOOD, GOOD) == Comparison("ok", outcome=0.0, agree=True, attempts=2)
    # Different words, the same rubric points: a tie too.
    assert run(judge, "running shoes women size 8", "women running shoes size 8").outcome == 0.0


def test_a_judge_that_always_prefers_the_first_answer_is_cancelled_to_a_tie(judge: StandInJudge) -> None:
    judge.mode = "prefer-first"
    c = run(judge, GOOD, WORSE)
    assert c.status == "ok" and c.outcome == 0.0 and c.agree is False
    tally = Tally.of([c, run(judge, WORSE, GOOD)])
    assert tally.agreement == 0.0 and tally.ties == 2 and tally.win_rate == 0.5


def test_tally_counts_wins_ties_losses_and_the_win_rate() -> None:
    comparisons = [
        Comparison("ok", 1.0, True),
        Comparison("ok", 0.5, False),
        Comparison("ok", 0.0, True),
        Comparison("ok", -1.0, True),
        Comparison("unavailable", message="HTTP 503"),
    ]
    t = Tally.of(comparisons)
    assert (t.pairs, t.wins, t.ties, t.losses, t.failed) == (4, 2, 1, 1, 1)
    assert t.agreement == 0.75 and t.win_rate == pytest.approx((1 + 0.5 / 4) / 2)


def test_a_judge_in_trouble_is_unavailable_or_invalid_never_an_outcome(judge: StandInJudge) -> None:
    judge.mode = "error"
    down = run(judge, GOOD, WORSE)
    assert down.status == "unavailable" and down.outcome is None and "HTTP 503" in (down.message or "")
    judge.mode = "garbage"
    assert run(judge, GOOD, WORSE).status == "invalid"


def test_compare_all_sync_keeps_the_rows_order(judge: StandInJudge) -> None:
    rows = [("p", GOOD, WORSE, REFERENCE), ("p", WORSE, GOOD, REFERENCE), ("p", GOOD, GOOD, REFERENCE)]
    out = compare_all_sync(JudgeConfig(judge.url, "j"), "rubric", rows)
    assert [c.outcome for c in out] == [1.0, -1.0, 0.0]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"better": "A", "reason": "x"}', "A"),
        ('```json\n{"better": "b"}\n```', "B"),
        ('<think>hmm</think> {"better": "Tie"}', "tie"),
    ],
)
def test_preferences_are_parsed_strictly(reply: str, expected: str) -> None:
    assert parse_preference(reply)[0] == expected


@pytest.mark.parametrize("reply", ['{"better": "both"}', '{"score": 4}', "A is better", '{"better": 1}'])
def test_anything_but_a_preference_is_invalid(reply: str) -> None:
    with pytest.raises(InvalidReply):
        parse_preference(reply)
