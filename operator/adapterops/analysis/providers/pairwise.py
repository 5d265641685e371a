"""The pairwise judge provider: the same prompts to a stable and a canary pod, and the judge asked which
answer is better, in both orders (`adapterops_common.pairwise`), in the background.

A `PairedJudge` in every other respect (prompts kept, started and stopped, evidence recorded across
restarts): each prompt's outcome o (canary's side) is appended as the pair (1, 1 + o), a failed
comparison as (None, None). The agreement of the two orders is kept in memory only (a restarted
operator reports it over the comparisons made since)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import httpx

from adapterops.analysis.pairwise import outcome_pair
from adapterops.analysis.providers.judge import PairedJudge, _ask, describe
from adapterops_common.judge import JudgeClient, JudgeConfig, Verdict, rubric_text
from adapterops_common.pairwise import compare

log = logging.getLogger(__name__)


@dataclass
class PairwiseJudge(PairedJudge):
    agreements: list[bool] = field(default_factory=list)

    @property
    def agreement(self) -> float | None:
        return sum(self.agreements) / len(self.agreements) if self.agreements else None

    async def _run(self, stable_url: str, canary_url: str, stable_model: str, canary_model: str) -> None:
        config = JudgeConfig(endpoint=self.judge.judge.endpoint, model=self.judge.judge.model, api_key=self.api_key)
        rubric = rubric_text(self.judge.rubric.builtin, self.judge.rubric.text)
        try:
            async with JudgeClient(config, rubric) as client, httpx.AsyncClient(timeout=60) as http:
                for row in self.prompts[len(self.pairs) :]:
                    stable_answer, canary_answer = await asyncio.gather(
                        _ask(http, stable_url, stable_model, row), _ask(http, canary_url, canary_model, row)
                    )
                    if stable_answer is None or canary_answer is None:
                        self.pairs.append((None, None))
                        continue
                    c = await compare(client, row["prompt"], canary_answer, stable_answer, row.get("reference"))
                    if c.status != "ok" or c.outcome is None:
                        log.info("pairwise judge %s: %s", c.status, c.message)
                        self.problem = describe(Verdict(c.status, message=c.message, attempts=c.attempts))
                        self.pairs.append((None, None))
                        continue
                    self.pairs.append(outcome_pair(c.outcome))
                    self.agreements.append(bool(c.agree))
                    self.problem = None
        except Exception as exc:  # the judge or a pod went away: the analysis says so and holds
            self.problem = f"pairwise judging stopped: {type(exc).__name__}"
            log.warning("pairwise judging stopped: %s: %s", type(exc).__name__, exc)
