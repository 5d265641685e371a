"""The operator's paired judge says why a judgement failed without repeating what the judge answered:
the operator calls the judge from its own network position, and the problem reaches the tenant's status.
Verdicts come from the real JudgeClient (which quotes answers in its messages, for the trial runner's
logs) over a scripted transport."""

from __future__ import annotations

import httpx
import pytest

from adapterops.analysis.providers.judge import PairedJudge, describe
from adapterops.api.modeldeployment import JudgeAnalysis
from adapterops_common.judge import JudgeClient, JudgeConfig, Verdict

SECRET = "ami-id: i-0abc; AccessKeyId=ASIA-very-secret"


async def verdict_for(answer: httpx.Response | Exception) -> Verdict:
    def respond(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    config = JudgeConfig(endpoint="http://judge.invalid/v1", model="j", max_attempts=1, invalid_retries=0)
    async with JudgeClient(config, "rubric", transport=httpx.MockTransport(respond)) as client:
        return await client.score("prompt", "answer")


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (httpx.Response(404, text=SECRET), "judge unavailable: HTTP 404 (after 1 attempts)"),
        (httpx.Response(503, text=SECRET), "judge unavailable: HTTP 503 (after 1 attempts)"),
        (httpx.Response(200, text=SECRET), "judge invalid: it answered without a valid score"),
        (
            httpx.Response(200, json={"choices": [{"message": {"content": SECRET}}]}),
            "judge invalid: it answered without a valid score",
        ),
        (httpx.ConnectError(f"refused by {SECRET}"), "judge unavailable: ConnectError (after 1 attempts)"),
    ],
)
async def test_a_failed_judgement_is_described_without_the_judges_words(
    answer: httpx.Response | Exception, said: str
) -> None:
    verdict = await verdict_for(answer)
    assert verdict.status != "ok" and SECRET in (verdict.message or "")  # the client's own message quotes it
    assert describe(verdict) == said


def test_only_the_prompts_a_canary_judges_are_kept_in_judging_order() -> None:
    judge = JudgeAnalysis.model_validate(
        {"dataset": "configmap://p/p.jsonl", "samples": 3, "judge": {"endpoint": "http://j/v1", "model": "j"}}
    )
    rows = [{"prompt": str(i)} for i in range(50)]
    kept = PairedJudge(rows, judge, None, judge.samples).prompts
    assert len(kept) == 3 and kept == PairedJudge(list(rows), judge, None, 3).prompts  # the same fixed order
    assert kept != rows[:3]  # shuffled once, deterministically
