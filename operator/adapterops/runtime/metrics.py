"""Prometheus metrics of the operator (served on ADAPTEROPS_METRICS_PORT at /metrics)."""

from __future__ import annotations

from collections import defaultdict

from prometheus_client import Counter, Gauge, Histogram

RECONCILE_SECONDS = Histogram("adapterops_reconcile_duration_seconds", "Time spent in one reconcile.", ["kind"])
RECONCILE_ERRORS = Counter(
    "adapterops_reconcile_errors_total", "Reconciles that ended in an error and were retried.", ["kind"]
)
API_REQUESTS = Counter(
    "adapterops_api_requests_total", "Kubernetes API calls the reconcilers made (watches excluded), by verb.", ["verb"]
)
API_ERRORS = Counter(
    "adapterops_api_errors_total", "Kubernetes API calls that failed, by status code.", ["kind", "code"]
)
WATCH_ERRORS = Counter(
    "adapterops_watch_errors_total",
    "List or watch failures that restarted an informer, by kind, namespace and code.",
    ["kind", "namespace", "code"],
)
LEADER = Gauge("adapterops_leader", "1 on the replica that holds the leader Lease, 0 on standbys.", ["identity"])
TRIALS = Gauge("adapterops_trials", "Trials of a FineTuneJob by state.", ["namespace", "finetunejob", "state"])
BEST_SCORE = Gauge(
    "adapterops_champion_score",
    "Objective value of a FineTuneJob's champion.",
    ["namespace", "finetunejob", "metric"],
)
BASELINE_SCORE = Gauge(
    "adapterops_baseline_score",
    "Objective value of a FineTuneJob's base model (no adapter), the champion's reference.",
    ["namespace", "finetunejob", "metric"],
)
CHAMPION_WIN_RATE = Gauge(
    "adapterops_champion_win_rate",
    "Pairwise win rate of a FineTuneJob's champion against the base model (ties count half).",
    ["namespace", "finetunejob"],
)
CANARY_WEIGHT = Gauge(
    "adapterops_canary_weight_percent",
    "Traffic share of the canary revision.",
    ["namespace", "modeldeployment"],
)
ANALYSIS_VALUE = Gauge(
    "adapterops_analysis_value",
    "Latest measured value of a canary metric per revision role (stable or canary).",
    ["namespace", "modeldeployment", "metric", "role"],
)
ANALYSIS_THRESHOLD = Gauge(
    "adapterops_analysis_threshold",
    "Threshold the canary metric is held to (absolute, in the metric's unit).",
    ["namespace", "modeldeployment", "metric"],
)
ANALYSIS_VERDICT = Gauge(
    "adapterops_analysis_verdict",
    "Verdict of a canary metric at the current step: 1 for the verdict in the label, 0 otherwise.",
    ["namespace", "modeldeployment", "metric", "verdict"],
)
CANARY_STUCK = Gauge(
    "adapterops_canary_stuck",
    "1 while a canary is held past its progress deadline (canary.progressDeadlineAbort false).",
    ["namespace", "modeldeployment"],
)
ROLLBACKS = Counter("adapterops_rollbacks_total", "Canaries rolled back.", ["namespace", "modeldeployment"])
PROMOTIONS = Counter("adapterops_promotions_total", "Canaries promoted.", ["namespace", "modeldeployment"])
MONTHLY_COST = Gauge(
    "adapterops_estimated_monthly_cost_usd",
    "GPU cost estimate per revision role.",
    ["namespace", "modeldeployment", "role"],
)
TOKEN_COST = Gauge(
    "adapterops_cost_per_million_tokens_usd",
    "US dollars per million output tokens per revision role, measured at the canary's current step "
    "(absent while unmeasured).",
    ["namespace", "modeldeployment", "role"],
)
PROFILE_FIGURE = Gauge(
    "adapterops_profile_candidate",
    "A ServingProfile candidate's measured figure (seconds, per second, percent, US dollars), by figure.",
    ["namespace", "servingprofile", "candidate", "tp", "gpu", "figure"],
)
PROFILE_CHOSEN = Gauge(
    "adapterops_profile_chosen",
    "1 for the candidate a ServingProfile chose, 0 for each other measured one (the SLO verdict: meets_slo).",
    ["namespace", "servingprofile", "candidate", "tp", "gpu", "meets_slo"],
)


# Gauge series per object, so they go away with the object (a deleted sweep must not look stuck).
_SERIES: defaultdict[tuple[str, str, str], set[tuple[Gauge, tuple[str, ...]]]] = defaultdict(set)


def set_gauge(kind: str, gauge: Gauge, value: float, namespace: str, name: str, *labels: str) -> None:
    gauge.labels(namespace, name, *labels).set(value)
    _SERIES[(kind, namespace, name)].add((gauge, (namespace, name, *labels)))


def forget(kind: str, namespace: str, name: str, only: tuple[Gauge, ...] = ()) -> None:
    """Remove an object's gauge series (all of them, or those of the gauges in `only`)."""
    series = _SERIES.get((kind, namespace, name), set())
    for gauge, labels in list(series):
        if not only or gauge in only:
            gauge.remove(*labels)
            series.discard((gauge, labels))
    if not series:
        _SERIES.pop((kind, namespace, name), None)
