"""One canary step's analysis: latency and error counts from Prometheus, paired judge scores from the
serving pods themselves. Everything that fails to answer becomes None plus a reason, which the tests
turn into Inconclusive: no data never promotes.

The relative latency test is fed by snapshots at fixed times (every two scrape intervals after the
canary test began, each once Prometheus has surely ingested it), never by the growing window of the current
look: the intervals between snapshots are the test's units, and a look between two snapshots adds no
evidence. A `LatencyTest` keeps the folded evidence per canary test; a restarted operator rebuilds it
from Prometheus (the same queries at the same times give the same snapshots), so nothing is lost.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import httpx

from adapterops.analysis.error_rate import error_rate_verdict
from adapterops.analysis.latency import RelativeEvidence, latency_verdict
from adapterops.analysis.paired_scores import judge_verdict
from adapterops.analysis.pairwise import pairwise_verdict
from adapterops.analysis.providers.judge import PairedJudge
from adapterops.analysis.providers.prometheus import (
    MIN_WINDOW_SECONDS,
    QUERIES,
    EngineQueries,
    PrometheusError,
    histogram,
    render,
    revision_selector,
    scalar,
)
from adapterops.analysis.verdict import MetricVerdict
from adapterops.api.modeldeployment import ModelDeploymentSpec, RevisionStatus
from adapterops.engines import EngineVersionProblem, Line, resolve
from adapterops.engines import line_of as engine_line_of

BETA = 0.05  # false rollback of a canary that equals stable, all metrics together
SNAPSHOT_SECONDS = 30.0
"""The relative latency test's interval by default: two scrapes at Prometheus' default 15 s."""
SETTLE_SECONDS = 20.0
"""A snapshot at time T is taken once T is this far past (a scrape interval and ingestion), so the same
query at T answers the same thing at every later look (and after a restart)."""
BASELINE_SECONDS = 600.0
"""Stable's histogram over this window before the canary began: the first intervals' cut."""
THROUGHPUT_MIN_SECONDS = 10.0
"""A step's output throughput is read once the step has run this long: over a window of a few seconds the
rate is mostly the switch-over to the step's split (requests in flight, a gateway reloading its weights)."""
MAX_SNAPSHOTS_PER_LOOK = 20
"""Catching up (after a restart) takes at most this many snapshots per look: a reconcile stays short."""


@dataclass
class LatencyTest:
    """One canary test's relative latency evidence: snapshots folded so far, in order."""

    test: str
    started: float  # Unix seconds: when the canary test began (snapshot k is at started + k x every)
    evidence: RelativeEvidence | None = None
    every: float = SNAPSHOT_SECONDS
    settle: float = SETTLE_SECONDS


class LatencyTests:
    """The reconciler's LatencyTest per ModelDeployment; a new test (canary or retried step) starts over."""

    def __init__(self, scrape_seconds: float = SNAPSHOT_SECONDS / 2) -> None:
        self.by_key: dict[Hashable, LatencyTest] = {}
        self.every, self.settle = 2.0 * scrape_seconds, scrape_seconds + 5.0

    def of(self, key: Hashable, test: str, started: datetime | None) -> LatencyTest | None:
        if started is None:
            return None
        found = self.by_key.get(key)
        if found is None or found.test != test:
            found = self.by_key[key] = LatencyTest(test, started.timestamp(), None, self.every, self.settle)
        return found

    def forget(self, key: Hashable) -> None:
        self.by_key.pop(key, None)


async def fold_snapshots(
    http: httpx.AsyncClient,
    url: str,
    templates: tuple[str, str],
    namespace: str,
    stable: str,
    canary: str,
    track: LatencyTest,
    quantile: float,
    increase: float,
    now: float,
    counts: tuple[str, str] | None = None,
) -> RelativeEvidence:
    """Fold the snapshots due by `now` into the test's evidence (the start first, once).

    ``templates`` and ``counts`` are per side (stable, canary): the two revisions may run different
    engine versions. ``counts``: queries for the histogram's counters as scraped (the engine's default
    metric): snapshots are then exact counts, differenced from their values at the start. Without it (a custom query
    template), snapshots are the template's ``increase()`` since the start, an extrapolated estimate.
    A snapshot is whole or absent: a Prometheus failure (PrometheusError) leaves the evidence as it was.
    """
    ev = track.evidence
    if ev is None or ev.q != quantile or abs(ev.rho - (1.0 + increase / 100.0)) > 1e-12:
        if counts is not None:
            origin = (
                await histogram(http, url, render(counts[0], namespace, stable, 0), at=track.started),
                await histogram(http, url, render(counts[1], namespace, canary, 0), at=track.started),
            )
            ev = RelativeEvidence(None, quantile, increase, origin=origin)
        else:
            base = await histogram(
                http, url, render(templates[0], namespace, stable, BASELINE_SECONDS), at=track.started
            )
            ev = RelativeEvidence(base, quantile, increase)
        track.evidence = ev
    # `render` makes windows of at least MIN_WINDOW_SECONDS: the first snapshot is the first whose window
    # since the start is that long, so that every window begins exactly at the start.
    first = 1 if counts is not None else max(1, math.ceil(MIN_WINDOW_SECONDS / track.every))
    for _ in range(MAX_SNAPSHOTS_PER_LOOK):
        window = track.every * (ev.snapshots + first)
        at = track.started + window
        if at > now - track.settle:
            break
        queries = counts if counts is not None else templates
        s = await histogram(http, url, render(queries[0], namespace, stable, window), at=at)
        c = await histogram(http, url, render(queries[1], namespace, canary, window), at=at)
        ev.extend([(s, c)])
    return ev


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
    latency_test: LatencyTest | None = None,
    now: float | None = None,
) -> list[MetricVerdict]:
    """One verdict per configured metric, from the data since the canary began. Each revision is read
    with its own engine version's queries: a canary may change the engine or its version.

    ``latency_test`` and ``now`` (Unix seconds) feed the relative latency test its snapshots; without
    them it is a single-look test on the current window (tests of one look only: not valid repeated).
    """
    a = spec.canary.analysis
    out: list[MetricVerdict] = []
    # The false-rollback risk is split between the metrics so that, all together, it stays <= 5%.
    beta = BETA / max(1, sum(m is not None for m in (a.latency, a.error_rate, a.judge)))
    if a.latency:
        url = a.latency.prometheus_url or prometheus_url
        try:
            sides = (_queries(stable, "stable"), _queries(canary, "canary"))
            templates = (a.latency.query or sides[0].latency, a.latency.query or sides[1].latency)
            evidence = None
            increase = a.latency.max_increase_percent
            if increase is not None and latency_test is not None and now is not None:
                evidence = await fold_snapshots(
                    http,
                    url,
                    templates,
                    namespace,
                    _selector(stable),
                    _selector(canary),
                    latency_test,
                    a.latency.quantile,
                    max(increase, 1.0),
                    now,
                    (sides[0].latency_counts, sides[1].latency_counts) if a.latency.query is None else None,
                )
            s = await histogram(http, url, render(templates[0], namespace, _selector(stable), window_seconds))
            c = await histogram(http, url, render(templates[1], namespace, _selector(canary), window_seconds))
            verdict = latency_verdict(
                s,
                c,
                quantile=a.latency.quantile,
                max_seconds=a.latency.max_seconds,
                max_increase_percent=increase,
                beta=beta,
                evidence=evidence,
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
        url = _prometheus_url(spec, prometheus_url)
        try:
            values: list[float | None] = []
            for rev, role in ((stable, "stable"), (canary, "canary")):
                q = _queries(rev, role)
                errors = await scalar(http, url, render(q.errors, namespace, _selector(rev), window_seconds))
                requests = await scalar(http, url, render(q.requests, namespace, _selector(rev), window_seconds))
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
        if a.judge.mode == "pairwise":
            agreement = getattr(judge, "agreement", None)  # a PairwiseJudge's; None before its first comparison
            verdict = pairwise_verdict(
                judge.pairs if judge else None, min_win_rate=a.judge.min_win_rate, agreement=agreement, beta=beta
            )
        else:
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


async def output_throughput(
    http: httpx.AsyncClient,
    spec: ModelDeploymentSpec,
    prometheus_url: str,
    sides: Sides,
    window_seconds: float,
) -> dict[tuple[str, str], float | None]:
    """Output tokens per second per (role, revision) over the window, from each engine line's generation
    token counter; None where Prometheus has no answer, or while the window is shorter than
    THROUGHPUT_MIN_SECONDS. Cost, not a verdict: no metric gates on it."""
    revisions = [(role, rev) for role, rev in (("stable", sides.stable), ("canary", sides.canary)) if rev is not None]
    if window_seconds < THROUGHPUT_MIN_SECONDS:
        return {(role, rev.revision): None for role, rev in revisions}
    url = _prometheus_url(spec, prometheus_url)
    window = max(MIN_WINDOW_SECONDS, math.ceil(window_seconds))  # the range `render` writes
    out: dict[tuple[str, str], float | None] = {}
    for role, rev in revisions:
        try:
            query = render(_queries(rev, role).output_tokens, sides.namespace, _selector(rev), window)
            tokens = await scalar(http, url, query)
        except PrometheusError:
            tokens = None
        out[role, rev.revision] = None if tokens is None else tokens / window
    return out


class Sides(Protocol):
    """The two revisions of a canary and their namespace (a RolloutState)."""

    namespace: str
    stable: RevisionStatus | None
    canary: RevisionStatus | None


def _prometheus_url(spec: ModelDeploymentSpec, default: str) -> str:
    """The latency metric's Prometheus serves every count query of the canary (error rate, throughput)."""
    latency = spec.canary.analysis.latency
    return (latency.prometheus_url if latency else None) or default


def _selector(rev: RevisionStatus) -> str:
    """The pods a revision's series come from: its own Deployment's, or (InPlace) its base's pods that have
    its adapters loaded."""
    return revision_selector(rev.base or rev.revision, rev.pods)


def _with_reason(verdict: MetricVerdict, reason: str) -> MetricVerdict:
    return dataclasses.replace(verdict, message=f"{reason}; {verdict.message}" if verdict.message else reason)
