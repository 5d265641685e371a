"""What the report reads from storage: each trial's metrics.json (loss curve, judge summary, timings),
written by the trial runner next to its adapter."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrialMetrics:
    """What the report reads from a trial's metrics.json (or why it could not)."""

    uri: str | None
    doc: dict[str, Any] | None = None
    problem: str | None = None
    curve: list[tuple[float, float]] = field(default_factory=list)

    @classmethod
    def parse(cls, uri: str, doc: dict[str, Any]) -> TrialMetrics:
        """The document and its loss curve as (step, loss) points; malformed points are left out."""
        curve = []
        for point in doc.get("lossCurve") or []:
            step, loss = point.get("step"), point.get("loss")
            if isinstance(step, int | float) and isinstance(loss, int | float):
                curve.append((float(step), float(loss)))
        return cls(uri=uri, doc=doc, curve=curve)


def metrics_uri(trial: dict[str, Any]) -> str | None:
    """`<outputUri>/metrics.json`: next to the trial's adapter (`<outputUri>/adapter`)."""
    adapter = trial.get("adapterUri")
    if not isinstance(adapter, str) or "/" not in adapter.rstrip("/"):
        return None
    return adapter.rstrip("/").rsplit("/", 1)[0] + "/metrics.json"


@contextlib.contextmanager
def pvc_root(path: str | None) -> Iterator[None]:
    """Map pvc://claim/... to `path`/claim/... for adapterops_common.storage while reading."""
    if path is None:
        yield
        return
    old = os.environ.get("ADAPTEROPS_PVC_ROOT")
    os.environ["ADAPTEROPS_PVC_ROOT"] = str(Path(path).resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("ADAPTEROPS_PVC_ROOT", None)
        else:
            os.environ["ADAPTEROPS_PVC_ROOT"] = old


def read_trial_metrics(trials: Sequence[dict[str, Any]]) -> dict[str, TrialMetrics]:
    """Each trial's metrics.json through adapterops_common.storage (s3://, pvc:// under ADAPTEROPS_PVC_ROOT, paths)."""
    from adapterops_common import storage as uris

    out: dict[str, TrialMetrics] = {}
    with tempfile.TemporaryDirectory(prefix="adapterops-report-") as tmp:
        for t in trials:
            name = str(t.get("name"))
            uri = metrics_uri(t)
            if uri is None:
                state = str(t.get("state", "")).lower()
                out[name] = TrialMetrics(None, problem=None if state != "succeeded" else "no adapterUri in the status")
                continue
            try:
                path = uris.fetch_file(uri, Path(tmp) / name)
                doc = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(doc, dict):
                    raise ValueError("not a JSON object")
                out[name] = TrialMetrics.parse(uri, doc)
            except Exception as exc:  # unreachable storage, missing file, bad JSON: the report says which
                out[name] = TrialMetrics(uri, problem=f"cannot read {uri}: {type(exc).__name__}: {exc}")
    return out
