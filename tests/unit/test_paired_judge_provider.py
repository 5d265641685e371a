"""The operator's paired judge says why a judgement failed without repeating what the judge answered:
the operator calls the judge from its own network position, and the problem reaches the tenant's status.
Verdicts come from the real JudgeClient (which quotes answers in its messages, for the trial runner's
logs) over a scripted transport. A judge that fails uses up no prompt: the canary's judging waits it out
and goes on once it answers again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from aiohttp import web

from adapterops.analysis.providers import judge as provider
from adapterops.analysis.providers.judge import PairedJudge, describe
from adapterops.api.modeldeployment import JudgeAnalysis
from adapterops_common.judge import JudgeClient, JudgeConfig, Verdict
from testworld.judge import StandInJudge

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


def analysis(url: str, samples: int) -> JudgeAnalysis:
    return JudgeAnalysis.model_validate(
        {"dataset": "configmap://p/p.jsonl", "samples": samples, "judge": {"endpoint": url, "model": "j"}}
    )


async def until(predicate: Callable[[], object], what: str, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never: {what}")


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries in milliseconds, and revisions that answer each prompt with its reference (no pods)."""
    monkeypatch.setattr(provider, "RETRY_SECONDS", 0.01)
    monkeypatch.setattr(provider, "MAX_RETRY_SECONDS", 0.02)

    async def ask(http: httpx.AsyncClient, base: str, model: str, row: dict[str, Any]) -> str:
        return str(row["reference"])

    monkeypatch.setattr(provider, "_ask", ask)


PROMPTS = [{"prompt": f"find item {i}", "reference": f"item {i} under $30"} for i in range(20)]


async def test_a_judge_answering_garbage_uses_up_no_prompt_and_judging_resumes_when_it_recovers(quick: None) -> None:
    with StandInJudge(mode="garbage") as server:
        judge = PairedJudge(list(PROMPTS), analysis(server.url, 6), None, 6)
        judge.start("http://stable", "http://canary", "m", "m")
        await until(lambda: server.requests >= 6 and judge.problem, "the judge to be asked a few times, and fail")
        # Each failed judgement costs one of a prompt's PROMPT_ATTEMPTS, not the prompt.
        assert len(judge.pairs) <= server.requests // (2 * provider.PROMPT_ATTEMPTS)
        assert judge.trouble() == "judge invalid: it answered without a valid score"
        server.mode = "score"
        await until(lambda: len(judge.pairs) == 6, "judging to go on to the end")
        judge.stop()
    scored = [p for p in judge.pairs if p[0] is not None and p[1] is not None]
    assert len(scored) >= 6 - server.requests // (2 * provider.PROMPT_ATTEMPTS) and judge.trouble() is None


async def test_a_judge_that_hangs_is_reported_while_it_hangs(quick: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Slow after 0.2 s here only: elsewhere a judgement that merely waits for a busy CPU is not a hang.
    monkeypatch.setattr(provider, "SLOW_SECONDS", 0.2)
    with StandInJudge(mode="hang") as server:
        judge = PairedJudge(list(PROMPTS), analysis(server.url, 2), None, 2)
        judge.start("http://stable", "http://canary", "m", "m")
        await until(lambda: (judge.trouble() or "").startswith("judge has not answered for"), "a report")
        assert server.hanging >= 1 and judge.pairs == []  # each pending judgement held (both sides, concurrently)
        server.mode = "score"  # it lets go: the connection drops unanswered, the client tries again
        await until(lambda: len(judge.pairs) == 2, "judging to go on")
        judge.stop()
    assert all(s == 5 and c == 5 for s, c in judge.pairs) and judge.trouble() is None


class Pods:
    """Stable and canary pods over real HTTP (aiohttp), answering each prompt after a delay that falls
    with the prompt's number (later prompts finish first) and counting the prompts in flight."""

    def __init__(self) -> None:
        self.in_flight = self.most = 0

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await asyncio.sleep(0.002 * (40 - int(prompt.split()[-1])))
        self.in_flight -= 1
        side = request.match_info["side"]
        words = prompt.split() if side == "stable" or int(prompt.split()[-1]) % 3 else ["nothing"]
        return web.json_response({"choices": [{"message": {"role": "assistant", "content": " ".join(words)}}]})

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_post("/{side}/v1/chat/completions", self.chat)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


async def judged(concurrency: int, pods: Pods, base: str, judge_url: str) -> list[tuple[float | None, float | None]]:
    spec = JudgeAnalysis.model_validate(
        {
            "dataset": "configmap://p/p.jsonl",
            "samples": 40,
            "concurrency": concurrency,
            "judge": {"endpoint": judge_url, "model": "j"},
        }
    )
    rows = [{"prompt": f"find running shoes size {i}", "reference": f"find running shoes size {i}"} for i in range(40)]
    judge = PairedJudge(rows, spec, None, spec.samples)
    judge.start(f"{base}/stable", f"{base}/canary", "m", "m")
    assert judge.task is not None
    await asyncio.wait_for(judge.task, 60)
    assert judge.problem is None and len(judge.pairs) == 40
    return judge.pairs


async def test_concurrent_judging_releases_pairs_in_the_prompts_order_with_bounded_concurrency() -> None:
    with StandInJudge() as stand_in:
        pods = Pods()
        async with pods as base:
            one_at_a_time = await judged(1, pods, base, stand_in.url)
            assert pods.most == 2  # one prompt: its stable and canary request
            pods.most = 0
            eight = await judged(8, pods, base, stand_in.url)
            assert pods.most == 16  # eight prompts, two requests each, never more
    # Later prompts finished first, yet the pairs come in the prompts' (shuffled) order, as sequentially.
    assert eight == one_at_a_time
    assert any(s != c for s, c in eight)  # the canary's degraded answers are scored lower: the order is visible
