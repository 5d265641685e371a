"""LLM-as-judge client: score an answer 0-5 on a rubric through an OpenAI-compatible chat endpoint.

Used by the trial runner (challenge set after training) and by the operator (paired canary judging),
so it depends on httpx and pydantic only. The API:

    async with JudgeClient(JudgeConfig(endpoint, model, api_key), rubric_text("query-formulation")) as j:
        verdict = await j.score(prompt, answer, reference)        # one answer -> Verdict
        verdicts = await j.score_many(items)                        # bounded concurrency, circuit breaker
    summary = summarize(verdicts)                                   # JudgeSummary(status, mean, std, samples)

    judge_sync(config, rubric, items) -> (verdicts, summary)      # the same from synchronous code

A verdict is `ok` (a real score), `unavailable` (the endpoint could not be reached or kept failing)
or `invalid` (it answered, but not a strict score). Only `ok` verdicts ever become numbers.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx

from adapterops_common.contract import BUILTIN_RUBRICS, JUDGE_API_KEY_PATH, JudgeSummary

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
SCORE_MIN, SCORE_MAX = 0.0, 5.0

SYSTEM_PROMPT = """You are a strict, consistent evaluator of a shopping assistant's answers.
Score the CANDIDATE answer against the RUBRIC, using the REFERENCE answer (when given) as an example
of a top-score answer; other wordings that satisfy the rubric equally well also deserve top scores.
Reply with ONLY a JSON object, no other text: {"score": <integer 0-5>, "reason": "<one short sentence>"}

RUBRIC:
"""


# --------------------------------------------------------------------------- rubric and prompt


def rubric_text(builtin: str | None = None, text: str | None = None) -> str:
    """The rubric given to the judge: a shipped one by name, or the user's own text."""
    if (builtin is None) == (text is None):
        raise ValueError("give exactly one of builtin or text")
    if text is not None:
        return text.strip()
    if builtin not in BUILTIN_RUBRICS:
        raise ValueError(f"unknown builtin rubric {builtin!r}; known: {', '.join(BUILTIN_RUBRICS)}")
    return resources.files("adapterops_common").joinpath(f"rubrics/{builtin}.md").read_text(encoding="utf-8").strip()


def build_messages(rubric: str, prompt: str, answer: str, reference: str | None) -> list[dict[str, str]]:
    """The judge conversation. The tagged sections keep prompt, reference and answer unambiguous."""
    parts = [f"<prompt>\n{prompt}\n</prompt>"]
    if reference is not None:
        parts.append(f"<reference>\n{reference}\n</reference>")
    parts.append(f"<answer>\n{answer}\n</answer>")
    parts.append("Score the answer now. JSON only.")
    return [
        {"role": "system", "content": SYSTEM_PROMPT + rubric},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


# --------------------------------------------------------------------------- strict parsing


class InvalidReply(ValueError):
    """The judge answered, but not with a usable score."""


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_THINK = re.compile(r"^<think>.*?</think>\s*", re.DOTALL)


def reply_document(content: str, field: str) -> dict[str, Any]:
    """A judge reply's JSON object, which must hold `field`; anything else raises InvalidReply.

    Tolerated, because common judge models emit them around valid JSON: one leading <think> block
    (reasoning models) and a single ```json fence. Nothing is guessed from free text.
    """
    text = _THINK.sub("", content.strip())
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidReply(f"not JSON: {_clip(content)}") from exc
    if not isinstance(doc, dict) or field not in doc:
        raise InvalidReply(f"no '{field}' field: {_clip(content)}")
    return doc


def parse_score(content: str) -> tuple[float, str | None]:
    """`{"score": 0..5, "reason": "..."}` -> (score, reason); anything else raises InvalidReply."""
    doc = reply_document(content, "score")
    score = doc["score"]
    # bool is an int subclass: true/false is not a score.
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise InvalidReply(f"score is not a number: {score!r}")
    if not SCORE_MIN <= score <= SCORE_MAX:
        raise InvalidReply(f"score {score} outside {SCORE_MIN:g}-{SCORE_MAX:g}")
    reason = doc.get("reason")
    return float(score), reason if isinstance(reason, str) else None


def _clip(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- client


@dataclass(frozen=True)
class JudgeConfig:
    endpoint: str
    model: str
    api_key: str | None = None
    timeout_s: float = 60.0
    max_attempts: int = 4
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0
    invalid_retries: int = 1
    concurrency: int = 4
    # After this many unavailable verdicts in a row the judge is treated as down: the remaining items
    # are not sent (each would cost every retry), and are reported unavailable.
    max_consecutive_unavailable: int = 5
    temperature: float = 0.0
    max_tokens: int = 256


@dataclass(frozen=True)
class JudgeItem:
    prompt: str
    answer: str
    reference: str | None = None
    id: str | None = None
    rubric: str | None = None  # overrides the client's rubric for this item


@dataclass(frozen=True)
class Verdict:
    status: Literal["ok", "unavailable", "invalid"]
    score: float | None = None
    reason: str | None = None
    message: str | None = None
    attempts: int = 0
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if v is not None}
        return out


class _Unavailable(Exception):
    def __init__(self, problem: str, attempts: int) -> None:
        super().__init__(problem)
        self.attempts = attempts


@dataclass
class _Breaker:
    limit: int
    consecutive: int = 0
    open: bool = field(default=False)

    def record(self, verdict: Verdict) -> None:
        self.consecutive = self.consecutive + 1 if verdict.status == "unavailable" else 0
        if self.limit > 0 and self.consecutive >= self.limit:
            self.open = True


class JudgeClient:
    """Async judge client. One instance holds one HTTP connection pool; close it (or use `async with`)."""

    def __init__(self, config: JudgeConfig, rubric: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.rubric = rubric
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._http = httpx.AsyncClient(
            base_url=config.endpoint.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s, connect=min(10.0, config.timeout_s)),
            transport=transport,
        )

    async def __aenter__(self) -> JudgeClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def score(
        self,
        prompt: str,
        answer: str,
        reference: str | None = None,
        *,
        id: str | None = None,
        rubric: str | None = None,
    ) -> Verdict:
        """Score one answer. Never raises for judge trouble: that is what the verdict's status is for."""
        messages = build_messages(rubric or self.rubric, prompt, answer, reference)
        attempts = 0
        last_invalid: str | None = None
        for _ in range(self.config.invalid_retries + 1):
            try:
                content, used = await self._complete(messages)
            except _Unavailable as exc:
                return Verdict("unavailable", message=str(exc), attempts=attempts + exc.attempts, id=id)
            attempts += used
            try:
                value, reason = parse_score(content)
            except InvalidReply as exc:
                last_invalid = str(exc)
                continue
            return Verdict("ok", score=value, reason=reason, attempts=attempts, id=id)
        return Verdict("invalid", message=last_invalid, attempts=attempts, id=id)

    async def score_many(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        """Score items with bounded concurrency; results keep the input order."""
        gate = asyncio.Semaphore(max(1, self.config.concurrency))
        breaker = _Breaker(self.config.max_consecutive_unavailable)

        async def one(item: JudgeItem) -> Verdict:
            async with gate:
                if breaker.open:
                    return Verdict("unavailable", message="not sent: judge was unavailable", id=item.id)
                verdict = await self.score(item.prompt, item.answer, item.reference, id=item.id, rubric=item.rubric)
                breaker.record(verdict)
                return verdict

        return list(await asyncio.gather(*(one(item) for item in items)))

    async def _complete(self, messages: list[dict[str, str]]) -> tuple[str, int]:
        """POST chat/completions with retries; returns the reply text and the attempts used."""
        body = {
            "model": self.config.model,
            "messages": messages,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
        }
        problem = "no attempt made"
        for attempt in range(1, self.config.max_attempts + 1):
            retry_after: float | None = None
            try:
                resp = await self._http.post("chat/completions", json=body)
            except httpx.TransportError as exc:  # refused, reset, DNS, timeouts
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if resp.status_code == 200:
                    return _reply_text(resp), attempt
                problem = f"HTTP {resp.status_code}: {_clip(resp.text)}"
                if resp.status_code not in RETRYABLE_STATUS:
                    # 400/401/403/404: retrying cannot help (bad key, wrong model or URL).
                    raise _Unavailable(problem, attempt)
                retry_after = _retry_after(resp)
            if attempt < self.config.max_attempts:
                await asyncio.sleep(self._backoff(attempt, retry_after))
        raise _Unavailable(f"{problem} (after {self.config.max_attempts} attempts)", self.config.max_attempts)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.config.backoff_max_s)
        base = min(self.config.backoff_s * 2 ** (attempt - 1), self.config.backoff_max_s)
        # Full jitter keeps concurrent clients from retrying in lockstep.
        return float(random.uniform(base / 2, base))


def _reply_text(resp: httpx.Response) -> str:
    """The assistant text of a chat completion; a malformed body is garbage, reported as invalid."""
    try:
        content = resp.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return resp.text  # parse_score then rejects it with the body in the message
    return content if isinstance(content, str) else json.dumps(content)


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- summary


def summarize(verdicts: Sequence[Verdict], min_valid_fraction: float = 0.9) -> JudgeSummary:
    """Mean/std over real scores only, and only when enough of the requested samples got one.

    A partly failing judge would bias the mean towards the prompts it happened to answer, so below
    `min_valid_fraction` no number is reported at all; the status says which failure dominated.
    """
    scores = [v.score for v in verdicts if v.status == "ok" and v.score is not None]
    requested = len(verdicts)
    unavailable = sum(v.status == "unavailable" for v in verdicts)
    invalid = sum(v.status == "invalid" for v in verdicts)
    detail = f"{len(scores)}/{requested} scored, {unavailable} unavailable, {invalid} invalid"
    first_problem = next((v.message for v in verdicts if v.status != "ok" and v.message), None)
    if first_problem:
        detail += f"; first problem: {_clip(first_problem, 300)}"
    if requested and scores and len(scores) >= min_valid_fraction * requested:
        return JudgeSummary(
            status="ok",
            mean=round(statistics.fmean(scores), 4),
            std=round(statistics.stdev(scores), 4) if len(scores) > 1 else 0.0,
            samples=len(scores),
            requested=requested,
            message=detail if len(scores) < requested else None,
        )
    status: Literal["unavailable", "invalid"] = "unavailable" if unavailable >= invalid else "invalid"
    if not requested:
        detail = "no challenge prompts to judge"
    return JudgeSummary(status=status, samples=0, requested=requested, message=detail)


# --------------------------------------------------------------------------- sync wrappers and helpers


async def judge_items(
    config: JudgeConfig, rubric: str, items: Sequence[JudgeItem], min_valid_fraction: float = 0.9
) -> tuple[list[Verdict], JudgeSummary]:
    async with JudgeClient(config, rubric) as client:
        verdicts = await client.score_many(items)
    return verdicts, summarize(verdicts, min_valid_fraction)


def judge_sync(
    config: JudgeConfig, rubric: str, items: Sequence[JudgeItem], min_valid_fraction: float = 0.9
) -> tuple[list[Verdict], JudgeSummary]:
    """`judge_items` for synchronous callers (the trial runner). Not for use inside a running event loop."""
    return asyncio.run(judge_items(config, rubric, items, min_valid_fraction))


def score_sync(config: JudgeConfig, rubric: str, prompt: str, answer: str, reference: str | None = None) -> Verdict:
    async def run() -> Verdict:
        async with JudgeClient(config, rubric) as client:
            return await client.score(prompt, answer, reference)

    return asyncio.run(run())


def read_api_key(path: str | None = None) -> str | None:
    """The judge API key from the mounted Secret file, when there is one (no key: unauthenticated)."""
    candidate = Path(path or os.environ.get("ADAPTEROPS_JUDGE_API_KEY_FILE", JUDGE_API_KEY_PATH))
    try:
        key = candidate.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    return key or None
