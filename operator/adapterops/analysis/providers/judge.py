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
    asking_since: float | None = None  # monotonic time the pending judgement was sent

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
        if self.asking_since is not None and (waited := time.monotonic() - self.asking_since) >= SLOW_SECONDS:
            return f"judge has not answered for {waited:.0f}s"
        return self.problem

    async def _run(self, stable_url: str, canary_url: str, stable_model: str, canary_model: str) -> None:
        config = JudgeConfig(endpoint=self.judge.judge.endpoint, model=self.judge.judge.model, api_key=self.api_key)
        rubric = rubric_text(self.judge.rubric.builtin, self.judge.rubric.text)
        failures = 0
        try:
            async with JudgeClient(config, rubric) as judge, httpx.AsyncClient(timeout=60) as http:
                while len(self.pairs) < len(self.prompts):
                    row = self.prompts[len(self.pairs)]
                    answers = await asyncio.gather(
                        _ask(http, stable_url, stable_model, row), _ask(http, canary_url, canary_model, row)
                    )
                    scores: list[float | None] = []
                    for answer in answers:
                        if answer is None:
                            scores.append(None)
                            continue
                        self.asking_since = time.monotonic()
                        try:
                            verdict = await judge.score(row["prompt"], answer, row.get("reference"))
                        finally:
                            self.asking_since = None
                        if verdict.status != "ok":
                            log.info("judge %s: %s", verdict.status, verdict.message)
                            self.problem = describe(verdict)
                            break
                        scores.append(verdict.score)
                    if len(scores) < len(answers):  # the judge failed this prompt: the same one, later
                        failures += 1
                        await asyncio.sleep(min(RETRY_SECONDS * 2 ** (failures - 1), MAX_RETRY_SECONDS))
                        if failures % PROMPT_ATTEMPTS:
                            continue
                        scores += [None] * (len(answers) - len(scores))
                    else:
                        failures = 0
                    self.pairs.append((scores[0], scores[1]))
                    if scores[0] is not None and scores[1] is not None:
                        self.problem = None
        except Exception as exc:  # a bug, or the client could not be set up: the analysis says so and holds
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
