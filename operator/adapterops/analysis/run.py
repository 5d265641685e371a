"""Canary analysis data: latency and error counts from Prometheus, paired judge scores from the
serving pods themselves. Everything that fails to answer becomes None plus a reason, which the
analysis turns into Inconclusive: no data never promotes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import random
from dataclasses import dataclass, field
from typing import Any

import httpx

from adapterops.analysis import statistics as analysis
from adapterops.analysis.statistics import MetricVerdict
from adapterops.api.modeldeployment import JudgeAnalysis, ModelDeploymentSpec
from adapterops_common.judge import JudgeClient, JudgeConfig, rubric_text

log = logging.getLogger(__name__)

# PromQL per engine; {namespace}, {revision} and {window} are substituted. Pod labels reach Prometheus
# through the usual `labelmap __meta_kubernetes_pod_label_(.+)` relabelling (adapterops.io/revision ->
# adapterops_io_revision).
SELECTOR = 'namespace="{namespace}",adapterops_io_revision="{revision}"'
ALPHA = 0.05  # false promotion of a canary with the tolerated regression or worse, per metric
BETA = 0.05  # false rollback of a canary that equals stable, all metrics together
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


@dataclass
class PairedJudge:
    """Sends the same prompts to a stable and a canary pod and judges both answers, in the background.

    Pairs are appended in judging order (the sequential test needs that); a failed judgement is a pair
    with None on the failing side, which the analysis counts as missing data."""

    prompts: list[dict[str, Any]]
    judge: JudgeAnalysis
    api_key: str | None
    samples: int
    pairs: list[tuple[float | None, float | None]] = field(default_factory=list)
    problem: str | None = None
    task: asyncio.Task[None] | None = None

    def start(self, stable_url: str, canary_url: str, model: str) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(stable_url, canary_url, model))

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def _run(self, stable_url: str, canary_url: str, model: str) -> None:
        config = JudgeConfig(endpoint=self.judge.judge.endpoint, model=self.judge.judge.model, api_key=self.api_key)
        rubric = rubric_text(self.judge.rubric.builtin, self.judge.rubric.text)
        order = list(range(len(self.prompts)))
        random.Random(0).shuffle(order)
        try:
            async with JudgeClient(config, rubric) as judge, httpx.AsyncClient(timeout=60) as http:
                for i in order[len(self.pairs) : self.samples]:
                    row = self.prompts[i]
                    stable_answer, canary_answer = await asyncio.gather(
                        _ask(http, stable_url, model, row), _ask(http, canary_url, model, row)
                    )
                    scores: list[float | None] = []
                    for answer in (stable_answer, canary_answer):
                        if answer is None:
                            scores.append(None)
                            continue
                        verdict = await judge.score(row["prompt"], answer, row.get("reference"))
                        scores.append(verdict.score if verdict.status == "ok" else None)
                        if verdict.status != "ok":
                            self.problem = f"judge {verdict.status}: {verdict.message or verdict.reason}"
                    self.pairs.append((scores[0], scores[1]))
                    if scores[0] is not None and scores[1] is not None:
                        self.problem = None
        except Exception as exc:  # the judge or a pod went away: the analysis says so and holds
            self.problem = f"paired judging stopped: {type(exc).__name__}: {exc}"
            log.warning(self.problem)


async def _ask(http: httpx.AsyncClient, base: str, model: str, row: dict[str, Any]) -> str | None:
    messages = ([{"role": "system", "content": row["system"]}] if row.get("system") else []) + [
        {"role": "user", "content": row["prompt"]}
    ]
    try:
        resp = await http.post(
            f"{base}/v1/chat/completions",
            json={"model": model, "messages": messages, "max_tokens": 256, "temperature": 0},
        )
        resp.raise_for_status()
        return str(resp.json()["choices"][0]["message"]["content"])
    except (httpx.HTTPError, KeyError, ValueError):
        return None


def parse_prompts(text: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [r for r in rows if isinstance(r, dict) and r.get("prompt")]


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
            verdict = analysis.latency_verdict(
                s,
                c,
                quantile=a.latency.quantile,
                max_seconds=a.latency.max_seconds,
                max_increase_percent=a.latency.max_increase_percent,
                beta=beta,
            )
        except PrometheusError as exc:
            verdict = analysis.latency_verdict(
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
            verdict = analysis.error_rate_verdict(*values, max_percent=a.error_rate.max_percent, beta=beta)
        except PrometheusError as exc:
            verdict = _with_reason(
                analysis.error_rate_verdict(None, None, None, None, max_percent=a.error_rate.max_percent), str(exc)
            )
        out.append(verdict)
    if a.judge:
        verdict = analysis.judge_verdict(
            judge.pairs if judge else None, min_score=a.judge.min_score, max_drop=a.judge.max_drop, beta=beta
        )
        if judge and judge.problem and verdict.verdict == "Inconclusive":
            verdict = _with_reason(verdict, judge.problem)
        out.append(verdict)
    return out


def _with_reason(verdict: MetricVerdict, reason: str) -> MetricVerdict:
    return dataclasses.replace(verdict, message=f"{reason}; {verdict.message}" if verdict.message else reason)
