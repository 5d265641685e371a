"""A candidate's window, read from the engine's own series in Prometheus: instant queries evaluated at the
window's end over exactly its length (`increase(...[w])` at `end`), with the engine line's PromQL
(analysis/providers/prometheus.py). Quantiles come from the latency histogram's buckets, interpolated as
Prometheus' histogram_quantile does (so they carry the engine's bucket resolution: NIM 1.x's first bounds
are 1 s and 2.5 s); means from the histograms' exact sums and counts."""

from __future__ import annotations

import httpx

from adapterops.analysis.histogram import histogram_quantile, parse_histogram
from adapterops.analysis.providers.prometheus import QUERIES, histogram, render, scalar
from adapterops.engines import Line
from adapterops.servingprofile.choice import Measurement


class NotMeasured(Exception):
    """The window has no usable data (the message says what is missing)."""


async def measure(
    http: httpx.AsyncClient,
    url: str,
    line: Line,
    namespace: str,
    revision: str,
    start: float,
    end: float,
    slo_quantile: float,
) -> Measurement:
    """The candidate's figures over [start, end]; PrometheusError when Prometheus fails, NotMeasured when
    it answers without the series."""
    q = QUERIES[line]
    seconds = end - start

    def query(template: str) -> str:
        return render(template, namespace, revision, seconds)

    raw = await histogram(http, url, query(q.latency), end)
    hist = parse_histogram(raw, "candidate")
    if isinstance(hist, str):
        raise NotMeasured(hist)
    count = await scalar(http, url, query(q.latency_count), end)
    total = await scalar(http, url, query(q.latency_sum), end)
    if not count or total is None:
        raise NotMeasured("no finished request in the window (the latency histogram's count is 0)")
    errors = await scalar(http, url, query(q.errors), end)
    error_base = await scalar(http, url, query(q.requests), end)
    if errors is None and error_base is not None:
        errors = 0.0  # the failure series appears with the first failure (vLLM's 5xx label value): none yet
    return Measurement(
        seconds=seconds,
        requests=count,
        latency_sum=total,
        ttft_sum=await scalar(http, url, query(q.ttft_sum), end),
        ttft_count=await scalar(http, url, query(q.ttft_count), end),
        output_tokens=await scalar(http, url, query(q.output_tokens), end),
        errors=errors,
        error_base=error_base,
        p50=histogram_quantile(0.5, hist),
        p95=histogram_quantile(0.95, hist),
        slo_quantile=histogram_quantile(slo_quantile, hist),
    )
