"""A ModelDeployment's Prometheus series: canary weight, cost, and the analysis with its thresholds."""

from __future__ import annotations

from adapterops.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from adapterops.runtime.metrics import (
    ANALYSIS_THRESHOLD,
    ANALYSIS_VALUE,
    ANALYSIS_VERDICT,
    CANARY_STUCK,
    CANARY_WEIGHT,
    MONTHLY_COST,
    PROMOTIONS,
    ROLLBACKS,
    TOKEN_COST,
    forget,
    set_gauge,
)

KIND = "ModelDeployment"


def threshold_values(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> dict[str, float]:
    """Each metric's limit in its own unit, as the analysis applies it to this canary."""
    a = spec.canary.analysis
    metrics = {m.name: m for m in (status.analysis.metrics if status.analysis else [])}
    out: dict[str, float] = {}
    if a.latency:
        stable = metrics["latency"].stable_value if "latency" in metrics else None
        limits = [a.latency.max_seconds] if a.latency.max_seconds else []
        if a.latency.max_increase_percent is not None and stable is not None:
            limits.append(stable * (1 + a.latency.max_increase_percent / 100))
        if limits:
            out["latency"] = min(limits)
    if a.error_rate:
        out["errorRate"] = a.error_rate.max_percent / 100
    if a.judge and a.judge.mode == "pairwise":
        out["pairwise"] = a.judge.min_win_rate  # the canary's win rate against stable
    elif a.judge:
        stable = metrics["judge"].stable_value if "judge" in metrics else None
        limits = [a.judge.min_score] if a.judge.min_score is not None else []
        if stable is not None:
            limits.append(stable - a.judge.max_drop)
        if limits:
            out["judge"] = max(limits)
    return out


def record_metrics(namespace: str, name: str, spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> None:
    # Counters exist from the start at 0, so that increase() sees the first rollback or promotion.
    ROLLBACKS.labels(namespace, name)
    PROMOTIONS.labels(namespace, name)
    set_gauge(KIND, CANARY_WEIGHT, status.canary_weight, namespace, name)
    set_gauge(KIND, CANARY_STUCK, int(status.analysis is not None and status.analysis.stuck), namespace, name)
    cost = status.estimated_monthly_cost
    forget(KIND, namespace, name, only=(TOKEN_COST,))  # a figure no longer measured is absent, not stale
    for role in ("stable", "canary"):
        role_cost = getattr(cost, role) if cost else None
        set_gauge(KIND, MONTHLY_COST, role_cost.usd if role_cost else 0, namespace, name, role)
        if role_cost is not None and role_cost.cost_per_million_tokens is not None:
            set_gauge(KIND, TOKEN_COST, role_cost.cost_per_million_tokens, namespace, name, role)
    # Analysis series describe the current canary only.
    forget(KIND, namespace, name, only=(ANALYSIS_VALUE, ANALYSIS_VERDICT, ANALYSIS_THRESHOLD))
    for metric in status.analysis.metrics if status.analysis else []:
        for role, value in (("stable", metric.stable_value), ("canary", metric.canary_value)):
            if value is not None:
                set_gauge(KIND, ANALYSIS_VALUE, value, namespace, name, metric.name, role)
        for verdict in ("Pass", "Fail", "Inconclusive"):
            set_gauge(KIND, ANALYSIS_VERDICT, int(metric.verdict == verdict), namespace, name, metric.name, verdict)
    if status.canary is not None:
        for metric_name, value in threshold_values(spec, status).items():
            set_gauge(KIND, ANALYSIS_THRESHOLD, value, namespace, name, metric_name)
