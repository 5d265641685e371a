"""Pairwise judging: the judge sees two answers to the same prompt and says which is better, or a tie.

LLM judges favour a position (often the first answer shown). Every pair is therefore asked in both
orders and the two verdicts are averaged: from the point of view of answer X against answer Y,

    order 1 (X shown as A):  A -> +1, B -> -1, tie -> 0
    order 2 (Y shown as A):  B -> +1, A -> -1, tie -> 0
    outcome = (order 1 + order 2) / 2          in {-1, -0.5, 0, +0.5, +1}

A judge that always prefers the first position gives +1 and -1: outcome 0, a tie, whatever the answers.
The two orders *agree* when they give the same value; the share of pairs where they do (the agreement
rate) says how much the judge's preference depends on position rather than content. The win rate is
`(1 + mean outcome) / 2`: 1 when X always wins, 0.5 for equals, ties counting half.

Used by the baseline Job (champion against base model) and by the operator (canary against stable).

    async with JudgeClient(config, rubric) as client:
        c = await compare(client, prompt, x, y, reference)   # Comparison(status, outcome, agree)
    tally = Tally.of([c, ...])                               # wins, ties, losses, winRate, agreement
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from adapterops_common.judge import InvalidReply, JudgeClient, JudgeConfig, _Unavailable, reply_document

Preference = Literal["A", "B", "tie"]
PREFERENCES: tuple[Preference, ...] = ("A", "B", "tie")

PAIRWISE_SYSTEM_PROMPT = """You are a strict, consistent evaluator of a shopping assistant's answers.
Two candidate answers to the same prompt follow, ANSWER A and ANSWER B. Decide which one satisfies the
RUBRIC better, using the REFERENCE answer (when given) as an example of a top answer. Judge the content
only: the order in which the answers are shown and their length must not matter. When neither is better,
say tie. Reply with ONLY a JSON object, no other text: {"better": "A" | "B" | "tie", "reason": "<one short sentence>"}

RUBRIC:
"""


def build_pairwise_messages(
    rubric: str, prompt: str, first: str, second: str, reference: str | None
) -> list[dict[str, str]]:
    """The judge conversation: `first` is ANSWER A, `second` ANSWER B, in tagged sections."""
    parts = [f"<prompt>\n{prompt}\n</prompt>"]
    if reference is not None:
        parts.append(f"<reference>\n{reference}\n</reference>")
    parts.append(f"<answer_a>\n{first}\n</answer_a>")
    parts.append(f"<answer_b>\n{second}\n</answer_b>")
    parts.append("Which answer is better? JSON only.")
    return [
        {"role": "system", "content": PAIRWISE_SYSTEM_PROMPT + rubric},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def parse_preference(content: str) -> tuple[Preference, str | None]:
    """`{"better": "A" | "B" | "tie", "reason": ...}` -> (preference, reason); anything else raises InvalidReply.
    The same tolerance as scores (one <think> block, one ```json fence); case-insensitive values."""
    doc = reply_document(content, "better")
    raw = doc["better"]
    value = raw.strip() if isinstance(raw, str) else raw
    found = next((p for p in PREFERENCES if isinstance(value, str) and value.lower() == p.lower()), None)
    if found is None:
        raise InvalidReply(f"better is {raw!r}; accepted: A, B, tie")
    reason = doc.get("reason")
    return found, reason if isinstance(reason, str) else None


@dataclass(frozen=True)
class Comparison:
    """Answer X against answer Y, both orders asked. `outcome` and `agree` only when status is ok."""

    status: Literal["ok", "unavailable", "invalid"]
    outcome: float | None = None
    agree: bool | None = None
    message: str | None = None
    attempts: int = 0


async def prefer(
    client: JudgeClient, prompt: str, first: str, second: str, reference: str | None, rubric: str | None = None
) -> tuple[Preference | None, str | None, int]:
    """One order: (preference, problem, attempts). Never raises for judge trouble."""
    messages = build_pairwise_messages(rubric or client.rubric, prompt, first, second, reference)
    attempts, problem = 0, None
    for _ in range(client.config.invalid_retries + 1):
        try:
            content, used = await client._complete(messages)
        except _Unavailable as exc:
            return None, f"unavailable: {exc}", attempts + exc.attempts
        attempts += used
        try:
            return parse_preference(content)[0], None, attempts
        except InvalidReply as exc:
            problem = f"invalid: {exc}"
    return None, problem, attempts


async def compare(
    client: JudgeClient, prompt: str, x: str, y: str, reference: str | None = None, rubric: str | None = None
) -> Comparison:
    """X against Y, asked as (A=X, B=Y) and (A=Y, B=X)."""
    first, p1, n1 = await prefer(client, prompt, x, y, reference, rubric)
    if first is None:
        return _failed(p1, n1)
    second, p2, n2 = await prefer(client, prompt, y, x, reference, rubric)
    if second is None:
        return _failed(p2, n1 + n2)
    o1 = {"A": 1.0, "B": -1.0, "tie": 0.0}[first]
    o2 = {"A": -1.0, "B": 1.0, "tie": 0.0}[second]
    return Comparison("ok", outcome=(o1 + o2) / 2, agree=o1 == o2, attempts=n1 + n2)


def _failed(problem: str | None, attempts: int) -> Comparison:
    status: Literal["unavailable", "invalid"] = "unavailable" if (problem or "").startswith("unavail") else "invalid"
    return Comparison(status, message=(problem or "").split(": ", 1)[-1], attempts=attempts)


@dataclass(frozen=True)
class Tally:
    """Comparisons summed up from X's side."""

    pairs: int
    wins: int
    ties: int
    losses: int
    agreement: float | None
    win_rate: float | None
    failed: int = 0

    @classmethod
    def of(cls, comparisons: Sequence[Comparison]) -> Tally:
        ok = [c for c in comparisons if c.status == "ok" and c.outcome is not None]
        n = len(ok)
        outcomes = [c.outcome for c in ok if c.outcome is not None]
        return cls(
            pairs=n,
            wins=sum(o > 0 for o in outcomes),
            ties=sum(o == 0 for o in outcomes),
            losses=sum(o < 0 for o in outcomes),
            agreement=round(sum(bool(c.agree) for c in ok) / n, 6) if n else None,
            win_rate=round((1 + sum(outcomes) / n) / 2, 6) if n else None,
            failed=len(comparisons) - n,
        )


Row = tuple[str, str, str, str | None] | tuple[str, str, str, str | None, str | None]


def compare_all_sync(config: JudgeConfig, rubric: str, rows: Sequence[Row]) -> list[Comparison]:
    """(prompt, x, y, reference[, rubric]) rows compared from synchronous code (the baseline Job), a few at a
    time; a row's own rubric replaces `rubric`."""

    async def run() -> list[Comparison]:
        gate = asyncio.Semaphore(max(1, config.concurrency))
        async with JudgeClient(config, rubric) as client:

            async def one(row: Row) -> Comparison:
                async with gate:
                    own = row[4] if len(row) > 4 else None
                    return await compare(client, row[0], row[1], row[2], row[3], own)

            return list(await asyncio.gather(*(one(r) for r in rows)))

    return asyncio.run(run())
