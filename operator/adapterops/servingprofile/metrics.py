"""A ServingProfile's Prometheus series: each measured candidate's figures and which one was chosen (the
dashboard's profile table)."""

from __future__ import annotations

from adapterops.api.servingprofile import ServingProfileStatus
from adapterops.runtime.metrics import PROFILE_CHOSEN, PROFILE_FIGURE, forget, set_gauge

KIND = "ServingProfile"
FIGURES = (
    "p50_seconds",
    "p95_seconds",
    "mean_seconds",
    "ttft_seconds",
    "output_tokens_per_second",
    "requests_per_second",
    "error_percent",
    "cost_per_hour",
    "cost_per_million_tokens",
)


def record_metrics(namespace: str, name: str, status: ServingProfileStatus) -> None:
    """The series of this status only: a candidate gone from the table (a changed spec) leaves none."""
    forget(KIND, namespace, name)
    for row in status.candidates:
        if row.state != "Measured":
            continue
        labels = (row.name, str(row.tensor_parallel_size), row.gpu_type)
        for figure in FIGURES:
            value = getattr(row, figure)
            if value is not None:
                set_gauge(KIND, PROFILE_FIGURE, float(value), namespace, name, *labels, figure)
        verdict = "true" if row.meets_slo else "false"
        set_gauge(KIND, PROFILE_CHOSEN, 1.0 if row.chosen else 0.0, namespace, name, *labels, verdict)


def forget_profile(namespace: str, name: str) -> None:
    forget(KIND, namespace, name)
