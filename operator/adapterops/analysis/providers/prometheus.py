"""The Prometheus metric provider: PromQL per engine, and instant queries turned into histograms and
scalars. Failures become PrometheusError with what failed (never the response body, which the caller
may show to a tenant)."""

from __future__ import annotations

import math
from typing import Literal

import httpx
from pydantic import BaseModel, ValidationError

# PromQL per engine; {namespace}, {revision} and {window} are substituted. Pod labels reach Prometheus
# through the usual `labelmap __meta_kubernetes_pod_label_(.+)` relabelling (adapterops.io/revision ->
# adapterops_io_revision).
SELECTOR = 'namespace="{namespace}",adapterops_io_revision="{revision}"'

# "latency_counts": the histogram's counters as scraped (exact counts: the relative latency test differences
# them between its snapshots, where increase() would extrapolate).
QUERIES = {
    "nim": {
        "latency": "sum by (le) (increase(e2e_request_latency_seconds_bucket{" + SELECTOR + "}[{window}]))",
        "latency_counts": "sum by (le) (e2e_request_latency_seconds_bucket{" + SELECTOR + "})",
        "errors": "sum(increase(http_requests_total{" + SELECTOR + ',status=~"5.."}[{window}]))',
        "requests": "sum(increase(http_requests_total{" + SELECTOR + "}[{window}]))",
    },
    "vllm": {
        "latency": "sum by (le) (increase(vllm:e2e_request_latency_seconds_bucket{" + SELECTOR + "}[{window}]))",
        "latency_counts": "sum by (le) (vllm:e2e_request_latency_seconds_bucket{" + SELECTOR + "})",
        "errors": "sum(increase(http_requests_total{" + SELECTOR + ',status=~"5.."}[{window}]))',
        "requests": "sum(increase(http_requests_total{" + SELECTOR + "}[{window}]))",
    },
}


MIN_WINDOW_SECONDS = 5
"""Shortest range rendered: a range shorter than two scrapes has no increase()."""


def render(template: str, namespace: str, revision: str, window_seconds: float) -> str:
    window = f"{max(MIN_WINDOW_SECONDS, math.ceil(window_seconds))}s"
    return template.replace("{namespace}", namespace).replace("{revision}", revision).replace("{window}", window)


MAX_RESPONSE_BYTES = 1 << 20  # a vector of histogram buckets is a few KiB; more is not an answer to us


class PrometheusError(Exception):
    """What failed, in words that never quote the response (the URL may not be Prometheus at all)."""


# Prometheus' own errorType values (web/api/v1): anything else is the answer's text, not said.
ERROR_TYPES = frozenset(
    {"timeout", "canceled", "execution", "bad_data", "internal", "unavailable", "not_found", "not_acceptable"}
)


class _Sample(BaseModel):
    metric: dict[str, str]
    value: tuple[float, str]


class _Data(BaseModel):
    resultType: Literal["vector"]
    result: list[_Sample]


class _Answer(BaseModel):
    status: Literal["success", "error"]
    data: _Data | None = None
    errorType: str | None = None


async def prom_query(http: httpx.AsyncClient, url: str, query: str, at: float | None = None) -> list[_Sample]:
    """An instant query's vector, evaluated now or `at` (Unix seconds); PrometheusError says what failed
    (HTTP status, shape), never the body."""
    params = {"query": query} if at is None else {"query": query, "time": f"{at:.3f}"}
    try:
        async with http.stream("GET", f"{url.rstrip('/')}/api/v1/query", params=params, timeout=10) as resp:
            if resp.status_code != 200:
                raise PrometheusError(f"Prometheus returned HTTP {resp.status_code}")
            raw = b""
            async for chunk in resp.aiter_bytes():
                raw += chunk
                if len(raw) > MAX_RESPONSE_BYTES:
                    raise PrometheusError(f"Prometheus answered more than {MAX_RESPONSE_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise PrometheusError(f"Prometheus is unreachable: {type(exc).__name__}") from exc
    try:
        answer = _Answer.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        # Only our own field names and list positions: a label name in the location is the body's text.
        where = ".".join(str(p) if isinstance(p, int) or p in _FIELDS else "*" for p in first["loc"]) or "body"
        raise PrometheusError(
            f"Prometheus answered something other than an instant vector ({where}: {first['type']})"
        ) from exc
    if answer.status != "success" or answer.data is None:
        said = answer.errorType if answer.errorType in ERROR_TYPES else "error" if answer.errorType else "no data"
        raise PrometheusError(f"Prometheus query failed ({said})")
    return answer.data.result


_FIELDS = frozenset({name for model in (_Answer, _Data, _Sample) for name in model.model_fields} | {"body"})


async def histogram(
    http: httpx.AsyncClient, url: str, query: str, at: float | None = None
) -> list[tuple[float, float]] | None:
    buckets = []
    for row in await prom_query(http, url, query, at):
        le, value = row.metric.get("le"), _number(row.value[1])
        bound = math.inf if le == "+Inf" else _number(le or "")
        if bound is None or value is None:
            continue
        buckets.append((bound, value))
    return sorted(buckets) or None


async def scalar(http: httpx.AsyncClient, url: str, query: str, at: float | None = None) -> float | None:
    values = [v for row in await prom_query(http, url, query, at) if (v := _number(row.value[1])) is not None]
    return sum(values) if values else None


def _number(text: str) -> float | None:
    """A sample value; None for NaN or text that is not a number."""
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value
