"""The Prometheus metric provider: PromQL per engine, and instant queries turned into histograms and
scalars. Failures become PrometheusError with what failed (never the response body, which the caller
may show to a tenant)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import httpx
from pydantic import BaseModel, ValidationError

from adapterops.engines import Line

# PromQL per engine line (adapterops.engines: the version decides which series exist; docs/engines.md
# has the facts and their sources). {namespace}, {revision} and {window} are substituted. Pod labels
# reach Prometheus through the usual `labelmap __meta_kubernetes_pod_label_(.+)` relabelling
# (adapterops.io/revision -> adapterops_io_revision).
SELECTOR = 'namespace="{namespace}",adapterops_io_revision="{revision}"'
# vLLM's HTTP counter (prometheus-fastapi-instrumentator) labels the route template and groups the status
# (`5xx`, never `500`); the inference routes only, not /v1/models polls or adapter loads.
INFERENCE = 'handler=~"/v1/(chat/)?completions"'


@dataclass(frozen=True)
class EngineQueries:
    latency: str  # per-`le` bucket increases of the end-to-end request latency histogram
    # the same histogram's counters as scraped (exact counts: the relative latency test differences them
    # between its snapshots, where increase() would extrapolate)
    latency_counts: str
    errors: str  # failed requests
    requests: str  # all requests the error share is of
    error_measure: str  # what the error rate counts on this line, in words (shown with the verdict)
    error_series: str  # the series it needs (named when Prometheus has none)
    # A serving profile's window (servingprofile/measure.py): exact sums and counts of the latency and
    # time-to-first-token histograms (means need no bucket interpolation) and the generated tokens.
    latency_sum: str = ""
    latency_count: str = ""
    ttft_sum: str = ""
    ttft_count: str = ""
    output_tokens: str = ""


def _latency(histogram: str) -> str:
    return "sum by (le) (increase(" + histogram + "_bucket{" + SELECTOR + "}[{window}]))"


def _latency_counts(histogram: str) -> str:
    return "sum by (le) (" + histogram + "_bucket{" + SELECTOR + "})"


def _increase(series: str) -> str:
    return "sum(increase(" + series + "{" + SELECTOR + "}[{window}]))"


def _window_series(prefix: str) -> dict[str, str]:
    """The profile's window queries of an engine whose series carry `prefix` (vllm: or none)."""
    return {
        "latency_sum": _increase(prefix + "e2e_request_latency_seconds_sum"),
        "latency_count": _increase(prefix + "e2e_request_latency_seconds_count"),
        "ttft_sum": _increase(prefix + "time_to_first_token_seconds_sum"),
        "ttft_count": _increase(prefix + "time_to_first_token_seconds_count"),
        "output_tokens": _increase(prefix + "generation_tokens_total"),
    }


_HTTP_ERRORS = "sum(increase(http_requests_total{" + SELECTOR + "," + INFERENCE + ',status="5xx"}[{window}]))'
_HTTP_REQUESTS = "sum(increase(http_requests_total{" + SELECTOR + "," + INFERENCE + "}[{window}]))"

QUERIES: dict[Line, EngineQueries] = {
    # NIM 1.x has no HTTP counter: the error rate is the engine's own failure share (finish reasons other
    # than stop/length); 4xx and 5xx answered before the engine are not in it.
    "nim-1": EngineQueries(
        latency=_latency("e2e_request_latency_seconds"),
        latency_counts=_latency_counts("e2e_request_latency_seconds"),
        errors="sum(increase(request_failure_total{" + SELECTOR + "}[{window}]))",
        # Two sums, not one `{__name__=~...}` selector: increase() drops the names, and the two series would
        # collide on the same labels (Prometheus refuses that with HTTP 422).
        requests="sum(increase(request_success_total{"
        + SELECTOR
        + "}[{window}])) + sum(increase(request_failure_total{"
        + SELECTOR
        + "}[{window}]))",
        error_measure="engine failures: request_failure_total of request_success_total + request_failure_total "
        "(NIM 1.x exports no HTTP status counter)",
        error_series="request_success_total and request_failure_total",
        **_window_series(""),
    ),
    # NIM 2.x runs vLLM behind its own front end: vLLM's series on /v1/metrics (not verified, docs/engines.md).
    "nim-2": EngineQueries(
        latency=_latency("vllm:e2e_request_latency_seconds"),
        latency_counts=_latency_counts("vllm:e2e_request_latency_seconds"),
        errors=_HTTP_ERRORS,
        requests=_HTTP_REQUESTS,
        error_measure='HTTP 5xx of completion requests: http_requests_total{status="5xx"} (vLLM\'s counter, '
        "assumed on NIM 2.x's /v1/metrics)",
        error_series="http_requests_total (vLLM's, assumed on NIM 2.x)",
        **_window_series("vllm:"),
    ),
    "vllm": EngineQueries(
        latency=_latency("vllm:e2e_request_latency_seconds"),
        latency_counts=_latency_counts("vllm:e2e_request_latency_seconds"),
        errors=_HTTP_ERRORS,
        requests=_HTTP_REQUESTS,
        error_measure='HTTP 5xx of completion requests: http_requests_total{status="5xx"}',
        error_series="http_requests_total",
        **_window_series("vllm:"),
    ),
}


MIN_WINDOW_SECONDS = 5
"""Shortest range rendered: a range shorter than two scrapes has no increase()."""


POD_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def revision_selector(revision: str, pods: Sequence[str] = ()) -> str:
    """What `{revision}` becomes in the default queries (`adapterops_io_revision="{revision}"`): the revision
    label, and for an in-place canary, whose two sides share one revision's pods, also the pods of its side
    (Prometheus' `pod` label, set by pod discovery and by the Prometheus Operator alike)."""
    if not pods:
        return revision
    bad = [p for p in pods if not POD_NAME.fullmatch(p)]
    if bad:  # generated from a Deployment name (a DNS-1035 label): never quoted, never a regex metacharacter
        raise PrometheusError(f"pod names that are not DNS labels: {bad[:3]}")
    return f'{revision}",pod=~"{"|".join(sorted(pods))}'


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
