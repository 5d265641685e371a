"""The Prometheus provider: a misbehaving or impostor endpoint makes a clear error, never a frozen status,
and never echoes what it answered (the canary's messages reach the tenant's status)."""

from __future__ import annotations

import json

import httpx
import pytest

from adapterops.analysis.providers.prometheus import MAX_RESPONSE_BYTES, PrometheusError, histogram, scalar

SECRET = "aws_secret_access_key=very-secret"


def client(status: int, body: bytes, content_type: str = "application/json") -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"Content-Type": content_type})

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


def vector(*samples: tuple[dict[str, str], str]) -> bytes:
    result = [{"metric": m, "value": [1.0, v]} for m, v in samples]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


async def test_buckets_come_back_sorted_and_nan_or_garbage_samples_are_skipped() -> None:
    body = vector(({"le": "+Inf"}, "10"), ({"le": "0.5"}, "4"), ({"le": "1"}, "NaN"), ({"le": "x"}, "3"))
    assert await histogram(client(200, body), "http://prom", "q") == [(0.5, 4.0), (float("inf"), 10.0)]


async def test_an_empty_vector_is_no_data() -> None:
    assert await scalar(client(200, vector()), "http://prom", "q") is None


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, SECRET.encode(), "Prometheus returned HTTP 500"),
        (200, f"<html>{SECRET}</html>".encode(), "something other than an instant vector"),
        (
            200,
            json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [SECRET]}}).encode(),
            "something other than an instant vector",
        ),
        (200, json.dumps({"status": "error", "errorType": "bad_data", "error": SECRET}).encode(), "(bad_data)"),
        # Prometheus' own errorType values are said; any other text in that field is the answer's.
        (200, json.dumps({"status": "error", "errorType": SECRET, "error": "x"}).encode(), "query failed (error)"),
        # A label name is the answer's text too: the error's location does not repeat it.
        (
            200,
            json.dumps(
                {
                    "status": "success",
                    "data": {"resultType": "vector", "result": [{"metric": {SECRET: 1}, "value": [1, "2"]}]},
                }
            ).encode(),
            "(data.result.0.metric.*: string_type)",
        ),
        (200, b"[" * (MAX_RESPONSE_BYTES + 10), "more than"),
    ],
)
async def test_a_bad_answer_is_a_clear_error_that_does_not_quote_it(status: int, body: bytes, expected: str) -> None:
    with pytest.raises(PrometheusError) as caught:
        await histogram(client(status, body), "http://prom", "q")
    assert expected in str(caught.value)
    assert SECRET not in str(caught.value)


async def test_an_unreachable_prometheus_says_so() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(PrometheusError, match="unreachable: ConnectError"):
        await scalar(httpx.AsyncClient(transport=httpx.MockTransport(refuse)), "http://prom", "q")
