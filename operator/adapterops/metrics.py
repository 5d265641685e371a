"""Prometheus metrics of the operator (served on ADAPTEROPS_METRICS_PORT at /metrics)."""

from __future__ import annotations

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
TRIALS = Gauge("adapterops_trials", "Trials of a FineTuneJob by state.", ["namespace", "finetunejob", "state"])
BEST_SCORE = Gauge(
    "adapterops_champion_score",
    "Objective value of a FineTuneJob's champion.",
    ["namespace", "finetunejob", "metric"],
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
ROLLBACKS = Counter("adapterops_rollbacks_total", "Canaries rolled back.", ["namespace", "modeldeployment"])
PROMOTIONS = Counter("adapterops_promotions_total", "Canaries promoted.", ["namespace", "modeldeployment"])
MONTHLY_COST = Gauge(
    "adapterops_estimated_monthly_cost_usd",
    "GPU cost estimate per revision role.",
    ["namespace", "modeldeployment", "role"],
)
