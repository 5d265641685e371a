"""Time as the Kubernetes API writes it: UTC, whole seconds (metav1.Time, RFC 3339)."""

from __future__ import annotations

from datetime import UTC, datetime

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def now_iso() -> str:
    return now().strftime(FORMAT)


def parse(value: str | None) -> datetime | None:
    return datetime.strptime(value, FORMAT).replace(tzinfo=UTC) if value else None


def timestamp(value: str | None) -> float | None:
    parsed = parse(value)
    return parsed.timestamp() if parsed else None
