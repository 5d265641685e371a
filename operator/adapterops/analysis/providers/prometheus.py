"""The Prometheus metric provider: PromQL per engine, and instant queries turned into histograms and
scalars. Failures become PrometheusError with what failed (never the response body, which the caller
may show to a tenant)."""

from __future__ import annotations

import math
from typing import Any

import httpx

# PromQL per engine; {namespace}, {revision} and {window} are substituted. Pod labels reach Prometheus
# through the usual `labelmap __meta_kubernetes_pod_label_(.+)` relabelling (adapterops.io/revision ->
# adapterops_io_revision).
SELECTOR = 'namespace="{namespace}",adapterops_io_revision="{revision}"'

QUERIES = {
    "nim": {
        "latency": "sum by (le) (increase(e2e_request_latency_seconds_bucket{" + SELECTOR + "}[{window}]))",
        "errors": "sum(increase(http_requests_total{" + SELECTOR + ',status=~"5.."}[{window}]))',
        "requests": "sum(increase(http_requests_total{" + SELECTOR + "}[{window}]))",
    },
    "vllm": {
        "latency": "sum by (le) (increase(vllm:e2e_request_latency_seconds_bucket{" + SELECTOR + "}[{window}]))",
        "errors": "sum(increase(http_requests_total{" + SELECTOR + ',status=~"5.."}[{window}]))',
        "requests": "sum(increase(http_requests_total{" + SELECTOR + "}[{window}]))",
    },
}


def render(template: str, namespace: str, revision: str, window_seconds: float) -> str:
    window = f"{max(5, math.ceil(window_seconds))}s"
    return template.replace("{namespace}", namespace).replace("{revision}", revision).replace("{window}", window)


class PrometheusError(Exception):
    pass


async def prom_query(http: httpx.AsyncClient, url: str, query: str) -> list[dict[str, Any]]:
    try:
        resp = await http.get(f"{url.rstrip('/')}/api/v1/query", params={"query": query}, timeout=10)
    except httpx.HTTPError as exc:
        raise PrometheusError(f"Prometheus at {url} is unreachable: {type(exc).__name__}") from exc
    if resp.status_code != 200:
        raise PrometheusError(f"Prometheus at {url} answered {resp.status_code}: {resp.text[:200]}")
    body = resp.json()
    if body.get("status") != "success":
        raise PrometheusError(f"Prometheus query failed: {body.get('error', body)}")
    return list(body["data"]["result"])


async def histogram(http: httpx.AsyncClient, url: str, query: str) -> list[tuple[float, float]] | None:
    rows = await prom_query(http, url, query)
    buckets = []
    for row in rows:
        le = row["metric"].get("le")
        value = float(row["value"][1])
        if le is None or math.isnan(value):
            continue
        buckets.append((math.inf if le == "+Inf" else float(le), value))
    return sorted(buckets) or None


async def scalar(http: httpx.AsyncClient, url: str, query: str) -> float | None:
    rows = await prom_query(http, url, query)
    values = [float(r["value"][1]) for r in rows if not math.isnan(float(r["value"][1]))]
    return sum(values) if values else None
