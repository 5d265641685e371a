"""The operator's clock: UTC, whole seconds, as the Kubernetes API writes time (metav1.Time)."""

from __future__ import annotations

from datetime import UTC, datetime

from adapterops.api.common import TIME_FORMAT


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def now_iso() -> str:
    return now().strftime(TIME_FORMAT)
