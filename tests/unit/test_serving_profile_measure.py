"""A serving profile candidate's window read from Prometheus: every query is the engine line's, for the
candidate's revision, over exactly the window's length and evaluated at its end; quantiles from the buckets,
means from sums and counts; no failure series yet is no failure; no requests is no measurement."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import httpx
import pytest

from adapterops.servingprofile.measure import NotMeasured, measure

BUCKETS = {"0.5": 60.0, "1.0": 150.0, "1.5": 160.0, "+Inf": 160.0}


def prometheus(answers: dict[str, float | None], seen: list[tuple[str, str]]) -> httpx.AsyncClient:
    """Answers by the series a query reads (the first matching key); buckets for the latency histogram."""

    def answer(request: httpx.Request) -> httpx.Response:
        params = parse_qs(request.url.query.decode())
        query, at = params["query"][0], params["time"][0]
        seen.append((query, at))
        if "_bucket" in query:
            result = [{"metric": {"le": le}, "value": [1.0, str(v)]} for le, v in BUCKETS.items()]
        else:
            value = next((v for key, v in answers.items() if key in query), None)
            result = [] if value is None else [{"metric": {}, "value": [1.0, str(value)]}]
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return httpx.Response(200, content=json.dumps(body).encode())

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


ANSWERS: dict[str, float | None] = {
    "e2e_request_latency_seconds_count": 160.0,
    "e2e_request_latency_seconds_sum": 112.0,
    "time_to_first_token_seconds_sum": 11.2,
    "time_to_first_token_seconds_count": 160.0,
    "generation_tokens_total": 8000.0,
    'status="5xx"': None,  # no 5xx answered yet: vLLM's counter has no such series
    "http_requests_total": 160.0,
}


async def test_the_window_is_read_at_its_end_over_its_length_for_the_candidates_revision() -> None:
    seen: list[tuple[str, str]] = []
    m = await measure(prometheus(ANSWERS, seen), "http://prom", "vllm", "ml", "abc123", 1000.0, 1020.0, 0.9)
    assert all('namespace="ml",adapterops_io_revision="abc123"' in q and "[20s]" in q for q, _ in seen)
    assert {at for _, at in seen} == {"1020.000"}
    assert m.seconds == 20.0 and m.requests == 160 and m.latency_sum == 112.0 and m.output_tokens == 8000.0
    assert m.errors == 0.0 and m.error_base == 160.0  # no 5xx series: no failure, not "unknown"
    assert m.p50 == pytest.approx(0.5 + 0.5 * (80 - 60) / 90)  # histogram_quantile's interpolation
    assert m.p95 == pytest.approx(1.0 + 0.5 * (152 - 150) / 10) and m.slo_quantile == pytest.approx(0.5 + 0.5 * 84 / 90)


async def test_a_window_without_requests_is_not_measured() -> None:
    seen: list[tuple[str, str]] = []
    empty = {**ANSWERS, "e2e_request_latency_seconds_count": 0.0}
    with pytest.raises(NotMeasured, match="no finished request"):
        await measure(prometheus(empty, seen), "http://prom", "nim-1", "ml", "abc123", 1000.0, 1060.0, 0.95)
