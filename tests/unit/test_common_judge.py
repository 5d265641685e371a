"""The judge client against the stand-in judge over real HTTP: scores, strict parsing, failures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapterops_common.judge import (
    InvalidReply,
    JudgeConfig,
    JudgeItem,
    Verdict,
    build_messages,
    judge_sync,
    parse_score,
    read_api_key,
    rubric_text,
    score_sync,
    summarize,
)
from testworld.judge import StandInJudge, score_prompt
from testworld.s3 import free_port

REFERENCE = "black insulated travel mug for my commute under $30"
FAST = {"backoff_s": 0.01, "backoff_max_s": 0.02, "timeout_s": 5.0}


@pytest.fixture
def judge() -> Iterator[StandInJudge]:
    with StandInJudge(api_key="s3cret") as server:
        yield server


def config(url: str, key: str | None = "s3cret", **kw: float) -> JudgeConfig:
    return JudgeConfig(endpoint=url, model="judge", api_key=key, **{**FAST, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ('{"score": 4, "reason": "fine"}', 4.0),
        ('{"score": 0}', 0.0),
        ('{"score": 3.5}', 3.5),
        ('```json\n{"score": 5, "reason": "x"}\n```', 5.0),
        ('<think>hmm</think>\n{"score": 2}', 2.0),
    ],
)
def test_parse_accepts_only_strict_scores(reply: str, score: float) -> None:
    assert parse_score(reply)[0] == score


@pytest.mark.parametrize(
    "reply",
    [
        "4",
        "Score: 4",
        '{"score": "4"}',
        '{"score": 6}',
        '{"score": -1}',
        '{"score": true}',
        '{"grade": 4}',
        '{"score": NaN}',
        "I'd give it a 4/5",
        "[4]",
        "",
    ],
)
def test_parse_rejects_everything_else(reply: str) -> None:
    with pytest.raises(InvalidReply):
        parse_score(reply)


def test_prompt_carries_rubric_reference_and_answer() -> None:
    system, user = build_messages(rubric_text("query-formulation"), "I need a mug", "red mug", REFERENCE)
    assert "ONE product search query" in system["content"] and '{"score"' in system["content"]
    assert f"<reference>\n{REFERENCE}\n</reference>" in user["content"]
    assert "<answer>\nred mug\n</answer>" in user["content"]
    assert rubric_text(text="  my rubric  ") == "my rubric"
    with pytest.raises(ValueError):
        rubric_text("no-such-rubric")


def test_scores_with_the_key_from_the_mounted_secret(judge: StandInJudge, tmp_path, monkeypatch) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text("s3cret\n")
    monkeypatch.setenv("ADAPTEROPS_JUDGE_API_KEY_FILE", str(key_file))
    key = read_api_key()
    assert key == "s3cret"
    perfect = score_sync(config(judge.url, key), rubric_text("query-formulation"), "mug?", REFERENCE, REFERENCE)
    assert perfect == Verdict("ok", score=5.0, reason="token F1 1.00 against the reference", attempts=1)
    assert judge.auth_headers[-1] == "Bearer s3cret"
    items = [
        JudgeItem("q", REFERENCE, REFERENCE, id="a"),
        JudgeItem("q", "black travel mug", REFERENCE, id="b"),
        JudgeItem("q", "garden hose", REFERENCE, id="c"),
    ]
    verdicts, summary = judge_sync(config(judge.url), rubric_text("query-formulation"), items)
    assert [v.score for v in verdicts] == [5.0, 3.0, 0.0] and [v.id for v in verdicts] == ["a", "b", "c"]
    assert (summary.status, summary.mean, summary.samples, summary.requested) == ("ok", 2.6667, 3, 3)
    assert summary.std == pytest.approx(2.5166, abs=1e-4)


def test_wrong_key_is_unavailable_without_retrying(judge: StandInJudge) -> None:
    verdict = score_sync(config(judge.url, "wrong"), "r", "p", "a", REFERENCE)
    assert verdict.status == "unavailable" and verdict.score is None
    assert "HTTP 401" in str(verdict.message) and verdict.attempts == 1 and judge.requests == 0


def test_overloaded_judge_is_retried_then_unavailable(judge: StandInJudge) -> None:
    judge.mode = "error"
    verdict = score_sync(config(judge.url, max_attempts=3), "r", "p", "a", REFERENCE)
    assert (verdict.status, verdict.attempts, judge.requests) == ("unavailable", 3, 3)
    assert "HTTP 503" in str(verdict.message)


@pytest.mark.parametrize("mode", ["garbage", "bad-json"])
def test_garbage_is_invalid_never_a_score(judge: StandInJudge, mode: str) -> None:
    judge.mode = mode
    items = [JudgeItem("p", "a", REFERENCE, id=str(i)) for i in range(4)]
    verdicts, summary = judge_sync(config(judge.url), "r", items)
    assert {v.status for v in verdicts} == {"invalid"} and all(v.score is None for v in verdicts)
    assert judge.requests == 8  # each item asked once more (invalid_retries=1), then given up
    assert (summary.status, summary.mean, summary.std, summary.samples) == ("invalid", None, None, 0)


def test_judge_down_opens_the_circuit() -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    items = [JudgeItem("p", "a", REFERENCE, id=str(i)) for i in range(30)]
    verdicts, summary = judge_sync(
        config(dead, max_attempts=2, concurrency=1, max_consecutive_unavailable=3), "r", items
    )
    assert all(v.status == "unavailable" for v in verdicts)
    assert sum(v.attempts for v in verdicts) == 6  # 3 items x 2 attempts, then the rest are not sent
    assert "ConnectError" in str(verdicts[0].message)
    assert (summary.status, summary.mean, summary.requested) == ("unavailable", None, 30)


def test_summary_needs_most_samples_scored() -> None:
    ok = [Verdict("ok", score=4.0)] * 9
    partly = summarize([*ok, Verdict("invalid", message="not JSON: meh")])
    assert (partly.status, partly.mean, partly.samples, partly.requested) == ("ok", 4.0, 9, 10)
    assert "1 invalid" in str(partly.message)
    mostly_bad = summarize([Verdict("ok", score=5.0), Verdict("unavailable"), Verdict("unavailable")])
    assert (mostly_bad.status, mostly_bad.mean) == ("unavailable", None)
    assert summarize([]).status == "unavailable"


def test_stand_in_scores_deterministically() -> None:
    msg = build_messages("r", "p", "black travel mug", REFERENCE)[1]["content"]
    assert score_prompt(msg) == score_prompt(msg) == {"score": 3, "reason": "token F1 0.50 against the reference"}
