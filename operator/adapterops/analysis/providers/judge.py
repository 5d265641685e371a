"""The paired judge provider: the same prompts to a stable and a canary pod, both answers scored by
the LLM judge, in the background.

The operator calls the judge from its own network position and `problem` reaches the tenant's status:
it says what failed (HTTP status, error type) and never quotes what the judge or a pod answered (the
full story goes to the operator's log)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from adapterops.api.modeldeployment import JudgeAnalysis
from adapterops_common.judge import JudgeClient, JudgeConfig, Verdict, rubric_text

log = logging.getLogger(__name__)

# A judgement the judge failed (unavailable, or no valid score) is no evidence about either revision: the
# same prompt is judged again after a backoff (doubling to the cap) instead of being used up, so a judge
# outage neither exhausts the canary's prompts nor floods the judge, and judging resumes once it is back.
# A prompt the judge keeps failing on its own (say, an answer it cannot score) is given up after
# PROMPT_ATTEMPTS, as missing data, and the next one tried (at the same backoff until one succeeds).
RETRY_SECONDS, MAX_RETRY_SECONDS, PROMPT_ATTEMPTS = 1.0, 30.0, 5
SLOW_SECONDS = 15.0  # a judgement pending this long is reported (a judge that hangs says nothing)


@dataclass
class PairedJudge:
    """Sends the same prompts to a stable and a canary pod and judges both answers, in the background.

    Pairs are appended in judging order (the sequential test needs that); a revision that did not answer
    is a pair with None on its side, which the analysis counts as missing data. A judgement the judge
    failed is retried on the same prompt (RETRY_SECONDS): `problem` says why meanwhile."""

    prompts: list[dict[str, Any]]
    judge: JudgeAnalysis
    api_key: str | None
    samples: int
    pairs: list[tuple[float | None, float | None]] = field(default_factory=list)
    problem: str | None = None
    compared: str = ""  # which served models the two sides are (e.g. "v2 on the canary vs v1 on stable")
    task: asyncio.Task[None] | None = None
    _asking: dict[object, float] = field(default_factory=dict)  # pending judgements: when each was sent

    def __post_init__(self) -> None:
        # Keep only the prompts this canary will judge, in judging order (a fixed shuffle): the dataset
        # may be large, and it is held for the whole canary.
        order = list(range(len(self.prompts)))
        random.Random(0).shuffle(order)
        self.prompts = [self.prompts[i] for i in order[: self.samples]]

    def start(self, stable_url: str, canary_url: str, stable_model: str, canary_model: str) -> None:
        """Judge `stable_model` served by the stable pod against `canary_model` served by the canary pod."""
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(stable_url, canary_url, stable_model, canary_model))

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def trouble(self) -> str | None:
        """Why there is no new evidence: a judgement pending for long, else the last problem."""
        if self._asking and (waited := time.monotonic() - min(self._asking.values())) >= SLOW_SECONDS:
            return f"judge has not answered for {waited:.0f}s"
        return self.problem

    async def _run(self, stable_url: str, canary_url: str, stable_model: str, canary_model: str) -> None:
        """Judge the remaining prompts, `judge.concurrency` at a time; pairs are released in the prompts'
        order (a finished prompt waits for the ones before it), never in order of completion, which could
        depend on the answers (a long answer is slow to produce and to judge) and would bias the test.
        A judgement the judge failed is tried again on the same prompt (see RETRY_SECONDS)."""
        config = JudgeConfig(endpoint=self.judge.judge.endpoint, model=self.judge.judge.model, api_key=self.api_key)
        rubric = rubric_text(self.judge.rubric.builtin, self.judge.rubric.text)
        first = len(self.pairs)
        todo = iter(range(first, len(self.prompts)))
        done: dict[int, tuple[float | None, float | None]] = {}
        failures = 0  # judgements failed in a row, over every worker: the backoff is the judge's, not a prompt's
        try:
            async with JudgeClient(config, rubric) as judge, httpx.AsyncClient(timeout=60) as http:

                async def scored(row: dict[str, Any], answer: str | None) -> Verdict | None:
                    if answer is None:
                        return None
                    token = object()
                    self._asking[token] = time.monotonic()
                    try:
                        return await judge.score(row["prompt"], answer, row.get("reference"))
                    finally:
                        del self._asking[token]

                async def one(row: dict[str, Any]) -> tuple[float | None, float | None]:
                    nonlocal failures
                    answers = await asyncio.gather(
                        _ask(http, stable_url, stable_model, row), _ask(http, canary_url, canary_model, row)
                    )
                    for attempt in range(1, PROMPT_ATTEMPTS + 1):
                        # Both sides at once: one prompt's latency.
                        verdicts = await asyncio.gather(*(scored(row, a) for a in answers))
                        failed = [v for v in verdicts if v is not None and v.status != "ok"]
                        if not failed:
                            failures = 0
                            break
                        log.info("judge %s: %s", failed[0].status, failed[0].message)
                        self.problem = describe(failed[0])
                        failures += 1
                        if attempt < PROMPT_ATTEMPTS:  # the same prompt, later (the last failure gives it up)
                            await asyncio.sleep(min(RETRY_SECONDS * 2 ** (failures - 1), MAX_RETRY_SECONDS))
                    s, c = (v.score if v is not None and v.status == "ok" else None for v in verdicts)
                    return s, c

                async def worker() -> None:
                    for i in todo:  # a shared iterator: each prompt is taken by one worker
                        done[i] = await one(self.prompts[i])
                        while len(self.pairs) in done:
                            pair = done.pop(len(self.pairs))
                            self.pairs.append(pair)
                            if pair[0] is not None and pair[1] is not None:
                                self.problem = None

                async with asyncio.TaskGroup() as group:  # one worker failing stops the others
                    for _ in range(max(1, self.judge.concurrency)):
                        group.create_task(worker())
        except Exception as exc:  # a bug, or the client could not be set up: the analysis says so and holds
            while isinstance(exc, ExceptionGroup) and exc.exceptions:
                exc = exc.exceptions[0]
            self.problem = f"paired judging stopped: {type(exc).__name__}"
            log.warning("paired judging stopped: %s: %s", type(exc).__name__, exc)


# What may be said of a failed judgement: an HTTP status, or the name of a transport error.
_SAYABLE = re.compile(r"(HTTP \d{3}|[A-Z][A-Za-z]*(?:Error|Timeout|Exception))\b")


def describe(verdict: Verdict) -> str:
    """Why a judgement failed, without the judge's words (JudgeClient's messages quote its answers)."""
    if verdict.status == "invalid":
        return "judge invalid: it answered without a valid score"
    said = _SAYABLE.match(verdict.message or "")
    return f"judge unavailable: {said.group(1) if said else 'no answer'} (after {verdict.attempts} attempts)"


async def _ask(http: httpx.AsyncClient, base: str, model: str, row: dict[str, Any]) -> str | None:
    messages = ([{"role": "system", "content": row["system"]}] if row.get("system") else []) + [
        {"role": "user", "content": row["prompt"]}
    ]
    try:
        resp = await http.post(
            f"{base}/v1/chat/completions",
            json={"model": model, "messages": messages, "max_tokens": 256, "temperature": 0},
        )
        resp.raise_for_status()
        return str(resp.json()["choices"][0]["message"]["content"])
    except (httpx.HTTPError, KeyError, ValueError):
        return None


def parse_prompts(text: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [r for r in rows if isinstance(r, dict) and r.get("prompt")]
