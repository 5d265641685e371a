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
from adapterops.analysis.providers.prometheus import (
    QUERIES,
    EngineQueries,
    PrometheusError,
    histogram,
    render,
    scalar,
)
from adapterops.analysis.verdict import MetricVerdict
from adapterops.api.modeldeployment import ModelDeploymentSpec, RevisionStatus
from adapterops.engines import EngineVersionProblem, Line, resolve
from adapterops.engines import line_of as engine_line_of

BETA = 0.05  # false rollback of a canary that equals stable, all metrics together


def line_of(rev: RevisionStatus) -> Line | None:
    """The engine line a revision's pods export metrics of: its recorded version, else its image's tag (a
    status written before the version was recorded)."""
    if rev.engine_version:
        return engine_line_of(rev.engine, rev.engine_version)
    try:
        return resolve(rev.engine, rev.image, None).line
    except EngineVersionProblem:
        return None


def _queries(rev: RevisionStatus, role: str) -> EngineQueries:
    line = line_of(rev)
    if line is None:
        raise PrometheusError(
            f"the {role} revision {rev.revision} runs {rev.engine} {rev.engine_version or rev.image}, whose metrics "
            "this operator does not know"
        )
    return QUERIES[line]


async def analyse(
    http: httpx.AsyncClient,
    spec: ModelDeploymentSpec,
    prometheus_url: str,
    namespace: str,
    stable: RevisionStatus,
    canary: RevisionStatus,
    window_seconds: float,
    judge: PairedJudge | None,
) -> list[MetricVerdict]:
    """One verdict per configured metric, from the data since the canary began. Each revision is read
    with its own engine version's queries: a canary may change the engine or its version."""
    a = spec.canary.analysis
    out: list[MetricVerdict] = []
    # The false-rollback risk is split between the metrics so that, all together, it stays <= 5%.
    beta = BETA / max(1, sum(m is not None for m in (a.latency, a.error_rate, a.judge)))
    if a.latency:
        url = a.latency.prometheus_url or prometheus_url
        try:
            hists = []
            for rev, role in ((stable, "stable"), (canary, "canary")):
                template = a.latency.query or _queries(rev, role).latency
                hists.append(await histogram(http, url, render(template, namespace, rev.revision, window_seconds)))
            verdict = latency_verdict(
                hists[0],
                hists[1],
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
            for rev, role in ((stable, "stable"), (canary, "canary")):
                q = _queries(rev, role)
                errors = await scalar(http, url, render(q.errors, namespace, rev.revision, window_seconds))
                requests = await scalar(http, url, render(q.requests, namespace, rev.revision, window_seconds))
                if requests is None and role == "canary":
                    raise PrometheusError(
                        f"Prometheus has no {q.error_series} of the canary revision {rev.revision} yet"
                    )
                # Error series appear with the first error: none while requests are counted means zero.
                values += [errors if errors is not None or requests is None else 0.0, requests]
            verdict = error_rate_verdict(*values, max_percent=a.error_rate.max_percent, beta=beta)
            measure = _queries(canary, "canary").error_measure
            verdict = dataclasses.replace(verdict, threshold=f"{verdict.threshold} ({measure})")
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
        if judge and judge.compared:
            verdict = dataclasses.replace(verdict, threshold=f"{verdict.threshold}; {judge.compared}")
        out.append(verdict)
    return out


def _with_reason(verdict: MetricVerdict, reason: str) -> MetricVerdict:
    return dataclasses.replace(verdict, message=f"{reason}; {verdict.message}" if verdict.message else reason)
