"""One canary step's analysis: latency and error counts from Prometheus, paired judge scores from the
serving pods themselves. Everything that fails to answer becomes None plus a reason, which the tests
turn into Inconclusive: no data never promotes."""

from __future__ import annotations

import dataclasses

import httpx

from adapterops.analysis.error_rate import error_rate_verdict
from adapterops.analysis.latency import latency_verdict
from adapterops.analysis.paired_scores import judge_verdict
from adapterops.analysis.providers.judge import PairedJudge
from adapterops.analysis.providers.prometheus import QUERIES, PrometheusError, histogram, render, scalar
from adapterops.analysis.verdict import MetricVerdict
from adapterops.api.modeldeployment import ModelDeploymentSpec

BETA = 0.05  # false rollback of a canary that equals stable, all metrics together


async def analyse(
    http: httpx.AsyncClient,
    spec: ModelDeploymentSpec,
    prometheus_url: str,
    namespace: str,
    stable: str,
    canary: str,
    window_seconds: float,
    judge: PairedJudge | None,
) -> list[MetricVerdict]:
    """One verdict per configured metric, from the data since the canary began."""
    a = spec.canary.analysis
    queries = QUERIES[spec.runtime.engine]
    out: list[MetricVerdict] = []
    # The false-rollback risk is split between the metrics so that, all together, it stays <= 5%.
    beta = BETA / max(1, sum(m is not None for m in (a.latency, a.error_rate, a.judge)))
    if a.latency:
        url = a.latency.prometheus_url or prometheus_url
        template = a.latency.query or queries["latency"]
        try:
            s = await histogram(http, url, render(template, namespace, stable, window_seconds))
            c = await histogram(http, url, render(template, namespace, canary, window_seconds))
            verdict = latency_verdict(
                s,
                c,
                quantile=a.latency.quantile,
                max_seconds=a.latency.max_seconds,
                max_increase_percent=a.latency.max_increase_percent,
                beta=beta,
            )
        except PrometheusError as exc:
            verdict = latency_verdict(
                None,
                None,
                quantile=a.latency.quantile,
                max_seconds=a.latency.max_seconds,
                max_increase_percent=a.latency.max_increase_percent,
                beta=beta,
            )
            verdict = _with_reason(verdict, str(exc))
        out.append(verdict)
    if a.error_rate:
        url = (a.latency.prometheus_url if a.latency else None) or prometheus_url
        try:
            values: list[float | None] = []
            for rev in (stable, canary):
                errors = await scalar(http, url, render(queries["errors"], namespace, rev, window_seconds))
                requests = await scalar(http, url, render(queries["requests"], namespace, rev, window_seconds))
                # Error series appear with the first error: none while requests are counted means zero.
                values += [errors if errors is not None or requests is None else 0.0, requests]
            verdict = error_rate_verdict(*values, max_percent=a.error_rate.max_percent, beta=beta)
        except PrometheusError as exc:
            verdict = _with_reason(
                error_rate_verdict(None, None, None, None, max_percent=a.error_rate.max_percent), str(exc)
            )
        out.append(verdict)
    if a.judge:
        verdict = judge_verdict(
            judge.pairs if judge else None, min_score=a.judge.min_score, max_drop=a.judge.max_drop, beta=beta
        )
        trouble = judge.trouble() if judge else None
        if trouble and verdict.verdict == "Inconclusive":
            verdict = _with_reason(verdict, trouble)
        out.append(verdict)
    return out


def _with_reason(verdict: MetricVerdict, reason: str) -> MetricVerdict:
    return dataclasses.replace(verdict, message=f"{reason}; {verdict.message}" if verdict.message else reason)
