"""`kubectl adapterops`: the kubectl plugin for FineTuneJobs and ModelDeployments.

    kubectl adapterops sweep NAME [-n NS]                 leaderboard of a sweep, sorted by its objective
    kubectl adapterops canary NAME [-n NS]                steps, revisions, per-metric verdicts, history, cost
    kubectl adapterops promote|abort NAME [--wait SECONDS]   act on the running canary
    kubectl adapterops suspend|pause NAME [--kind KIND]   FineTuneJob: spec.suspend; ModelDeployment: spec.canary.paused
    kubectl adapterops resume NAME [--kind KIND]          the reverse
    kubectl adapterops report NAME -o report.html [--pvc-root DIR] [--png]

It talks to the API server with the official `kubernetes` client and the current kubeconfig context
(`--kubeconfig`, `--context`, `-n/--namespace` as kubectl plugins do). `promote` and `abort` act the way
the Argo CD resource actions do: they set the annotation `adapterops.io/promote` (or `/abort`) to the
canary's revision, which the operator applies to that revision only. Errors say what is wrong and exit 1
(usage errors exit 2).

The formatting functions are pure (object in, text out) and unit-tested; `report` draws its charts as
inline SVG in plain Python so the HTML opens offline with nothing else installed (`--png` additionally
draws a PNG with matplotlib when it is importable).
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import math
import os
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

GROUP = "adapterops.io"
VERSION = "v1alpha1"
KINDS = {"FineTuneJob": "finetunejobs", "ModelDeployment": "modeldeployments"}
KIND_ALIASES = {
    "finetunejob": "FineTuneJob",
    "finetunejobs": "FineTuneJob",
    "ftj": "FineTuneJob",
    "modeldeployment": "ModelDeployment",
    "modeldeployments": "ModelDeployment",
    "mdep": "ModelDeployment",
}
ANNOTATION_PREFIX = "adapterops.io/"
REQUEST_TIMEOUT = 30
POLL_SECONDS = 1.0


class CliError(Exception):
    """A problem to report in one line (exit status 1)."""


# =========================================================================== pure formatting helpers


def fmt_value(value: Any) -> str:
    """A swept parameter's value as the user wrote it: 0.0005, adamw, 16."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int | str):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def fmt_number(value: Any, digits: int = 4) -> str:
    """A score or loss with `digits` decimals, '-' when absent."""
    if value is None or not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    return f"{value:.{digits}f}"


def fmt_metric(metric: str, value: Any) -> str:
    """A canary metric's value in its unit: latency seconds, error-rate percent, judge score."""
    if value is None or not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    if metric == "latency":
        return f"{value:.3g}s"
    if metric == "errorRate":
        return f"{value * 100:.2f}%"
    if metric == "judge":
        return f"{value:.2f}"
    return f"{value:g}"


def fmt_usd(value: Any) -> str:
    if value is None or not isinstance(value, int | float):
        return "-"
    return f"${value:,.2f}"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def fmt_age(value: Any, now: datetime) -> str:
    """kubectl's age style: 45s, 12m, 3h, 5d; '-' when unknown."""
    then = parse_time(value)
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3 * 3600:
        return f"{seconds // 60}m"
    if seconds < 3 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by three spaces, as kubectl prints; trailing blanks stripped."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["   ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in [headers, *rows]]
    return "\n".join(lines)


def wrap(text: str, indent: str = "  ", width: int = 100) -> str:
    return textwrap.fill(
        " ".join(text.split()),
        width=width,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_on_hyphens=False,
        break_long_words=False,
    )


def short_names(paths: Sequence[str]) -> dict[str, str]:
    """Column titles for swept parameter paths: the last segment, the full path where two would clash."""
    last = [p.rsplit(".", 1)[-1] for p in paths]
    return {p: (s if last.count(s) == 1 else p) for p, s in zip(paths, last, strict=True)}


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


def _num(row: dict[str, Any], key: str) -> float | None:
    value = row.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


STATE_ORDER = {"Succeeded": 0, "Running": 1, "Pending": 2, "Failed": 3}


def rank_trials(trials: Sequence[dict[str, Any]], metric: str) -> list[tuple[int | None, dict[str, Any]]]:
    """Trials best first by the objective, with ties broken as the operator picks its champion
    (judgeScore: higher score, then lower loss, then plan order; validationLoss: lower loss, then higher
    score, then plan order). Trials without the objective's value follow unranked: running, pending, failed."""
    key = "judgeScore" if metric == "judgeScore" else "validationLoss"
    inf = float("inf")

    def scored(row: dict[str, Any]) -> bool:
        return row.get("state") == "Succeeded" and _num(row, key) is not None

    def order(row: dict[str, Any]) -> tuple[float, float, int]:
        loss, score = _num(row, "validationLoss"), _num(row, "judgeScore")
        index = int(row.get("index", 0))
        if key == "judgeScore":
            return (-(score or 0.0), loss if loss is not None else inf, index)
        return (loss or 0.0, -score if score is not None else inf, index)

    ranked = sorted((r for r in trials if scored(r)), key=order)
    rest = sorted(
        (r for r in trials if not scored(r)),
        key=lambda r: (STATE_ORDER.get(str(r.get("state")), 4), int(r.get("index", 0))),
    )
    return [(i + 1, r) for i, r in enumerate(ranked)] + [(None, r) for r in rest]


def objective_of(obj: dict[str, Any]) -> tuple[str, str]:
    objective = (obj.get("spec") or {}).get("objective") or {}
    metric = str(objective.get("metric", "judgeScore"))
    goal = str(objective.get("goal", "maximize" if metric == "judgeScore" else "minimize"))
    return metric, goal


def swept_paths(obj: dict[str, Any]) -> list[str]:
    trials = (obj.get("status") or {}).get("trials") or []
    paths = {p for t in trials for p in (t.get("parameters") or {})}
    paths |= set(((obj.get("spec") or {}).get("sweep") or {}).get("parameters") or {})
    return sorted(paths)


def format_sweep(obj: dict[str, Any], now: datetime | None = None) -> str:
    """The leaderboard of a FineTuneJob: one row per trial, best first, the champion marked."""
    now = now or datetime.now(UTC)
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    metric, goal = objective_of(obj)
    trials = list(status.get("trials") or [])
    counts = status.get("trialCounts") or {}
    champion = status.get("champion") or {}
    state = status.get("state") or "Pending"
    out = [
        f"FineTuneJob {meta.get('namespace')}/{meta.get('name')}: {state}, {status.get('progress') or '0/0'} trials "
        f"finished ({counts.get('succeeded', 0)} succeeded, {counts.get('failed', 0)} failed, "
        f"{counts.get('running', 0)} running, {counts.get('pending', 0)} pending), "
        f"age {fmt_age(meta.get('creationTimestamp'), now)}",
        f"objective: {metric} ({goal})",
    ]
    accepted = condition(obj, "Accepted")
    if accepted.get("status") == "False":
        out.append(f"refused ({accepted.get('reason')}): {accepted.get('message')}")
    suspended = condition(obj, "Suspended")
    if suspended.get("status") == "True":
        out.append(f"suspended: {suspended.get('message') or 'spec.suspend is true'} (kubectl adapterops resume)")
    if not trials:
        out.append("no trials yet")
        return "\n".join(out) + "\n"
    paths = swept_paths(obj)
    names = short_names(paths)
    headers = ["RANK", "TRIAL", *[names[p] for p in paths], "VAL LOSS", "JUDGE", "STATE", "ATTEMPTS"]
    rows = []
    for rank, t in rank_trials(trials, metric):
        mark = "*" if t.get("name") == champion.get("trial") else ""
        params = t.get("parameters") or {}
        rows.append(
            [
                (str(rank) if rank is not None else "-") + mark,
                str(t.get("name", "")),
                *[fmt_value(params.get(p)) for p in paths],
                fmt_number(t.get("validationLoss")),
                fmt_number(t.get("judgeScore"), 2),
                str(t.get("state", "")),
                str(t.get("attempts", 0)),
            ]
        )
    out += ["", table(headers, rows), ""]
    if champion:
        final = state == "Succeeded"
        label = "champion" if final else "current leader (provisional until the sweep finishes)"
        out.append(f"* {label}: {champion.get('trial')}  {champion.get('adapterUri', '')}")
    else:
        out.append("no champion yet")
    notes = [t for t in trials if t.get("message")]
    if notes:
        out.append("")
        out.append("messages:")
        out += [wrap(f"{t.get('name')} ({t.get('state')}): {t.get('message')}") for t in notes]
    return "\n".join(out) + "\n"


def format_steps(steps: Sequence[int], current: int | None) -> str:
    """`10% -> 25% -> [50%] -> 100%`: the current step in brackets."""
    return " -> ".join(f"[{s}%]" if i == current else f"{s}%" for i, s in enumerate(steps))


def _revision_row(role: str, rev: dict[str, Any]) -> list[str]:
    adapters = ", ".join(f"{k}={v}" for k, v in sorted((rev.get("adapters") or {}).items()))
    return [
        role,
        str(rev.get("revision", "")),
        str(rev.get("engine", "")),
        str(rev.get("tensorParallelSize", "")),
        str(rev.get("gpuType", "")),
        f"{rev.get('readyReplicas', 0)}/{rev.get('replicas', 0)}",
        f"{rev.get('weight', 0)}%",
        adapters or "-",
    ]


def format_canary(obj: dict[str, Any], now: datetime | None = None) -> str:
    """A ModelDeployment's rollout: revisions, steps with the current one, per-metric verdicts, history, cost."""
    now = now or datetime.now(UTC)
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    canary_spec = spec.get("canary") or {}
    steps = [int(s) for s in canary_spec.get("steps") or [10, 25, 50, 100]]
    stable, canary, analysis = status.get("stable"), status.get("canary"), status.get("analysis") or {}
    summary = []
    for type_ in ("Ready", "Progressing", "Suspended", "RolledBack", "Degraded"):
        c = condition(obj, type_)
        if c and (type_ in ("Ready", "Progressing") or c.get("status") == "True"):
            summary.append(f"{type_}={c.get('status')}" + (f" ({c.get('reason')})" if c.get("reason") else ""))
    out = [f"ModelDeployment {meta.get('namespace')}/{meta.get('name')}: " + (", ".join(summary) or "no status yet")]
    if status.get("endpoint"):
        out.append(f"endpoint: {status['endpoint']}")
    revisions = [("stable", stable)] if stable else []
    if canary:
        revisions.append(("canary", canary))
    if revisions:
        headers = ["ROLE", "REVISION", "ENGINE", "TP", "GPU", "READY", "WEIGHT", "ADAPTERS"]
        out += ["", table(headers, [_revision_row(role, rev) for role, rev in revisions])]
    out.append("")
    policy = [f"interval {canary_spec.get('interval', '1m')}"]
    policy.append(f"failure limit {(canary_spec.get('analysis') or {}).get('failureLimit', 1)}")
    policy.append("auto-promote" if canary_spec.get("autoPromote", True) else "promotion by hand")
    if canary_spec.get("paused"):
        policy.append("PAUSED (spec.canary.paused)")
    if canary:
        step = int(analysis.get("step", 0))
        out.append(f"steps: {format_steps(steps, step)}   ({', '.join(policy)})")
        target = steps[min(step, len(steps) - 1)]
        line = f"current step {step + 1}/{len(steps)}: target {target}%, canary weight {canary.get('weight', 0)}%"
        if analysis.get("stepStartedAt"):
            line += f", started {fmt_age(analysis['stepStartedAt'], now)} ago"
        elif canary.get("readyReplicas", 0) < canary.get("replicas", 0):
            line += (
                f", waiting for the canary to be ready ({canary.get('readyReplicas', 0)}/{canary.get('replicas', 0)})"
            )
        out.append(line)
        out.append(
            f"failed steps {analysis.get('failedSteps', 0)}, inconclusive steps {analysis.get('inconclusiveSteps', 0)}"
            + (", HOLDING: no verdict after the step's interval" if analysis.get("holding") else "")
        )
    else:
        out.append(f"steps: {format_steps(steps, None)}   ({', '.join(policy)})")
        serving = f"revision {stable.get('revision')} serves all traffic" if stable else "nothing is served yet"
        out.append(f"no canary in progress: {serving}")
    metrics = analysis.get("metrics") or []
    if canary and metrics:
        rows = [
            [
                str(m.get("name", "")),
                str(m.get("verdict", "")),
                fmt_metric(str(m.get("name")), m.get("stableValue")),
                fmt_metric(str(m.get("name")), m.get("canaryValue")),
                str(m.get("samples", 0)),
                str(m.get("threshold", "")),
            ]
            for m in metrics
        ]
        out += ["", "analysis:", table(["METRIC", "VERDICT", "STABLE", "CANARY", "SAMPLES", "THRESHOLD"], rows)]
        out += [wrap(f"{m.get('name')}: {m.get('message')}") for m in metrics if m.get("message")]
    elif canary:
        out += ["", "analysis: no metrics yet"]
    shown: set[str] = set()
    for type_ in ("Suspended", "Progressing", "RolledBack", "Degraded"):
        c = condition(obj, type_)
        message = str(c.get("message") or "")
        if c.get("status") != "True" or not message or message in shown or (type_ == "Progressing" and not canary):
            continue
        shown.add(message)
        if c.get("reason") in ("AnalysisInconclusive", "Analysing") and metrics:
            # These messages repeat the per-metric messages printed above: keep their head.
            message = message.split(": ", 1)[0] + " (per-metric messages above)"
        out.append(wrap(f"{type_} ({c.get('reason')}): {message}", indent=""))
    history = status.get("history") or []
    if history:
        rows = [
            [
                fmt_age(h.get("time"), now),
                str(h.get("revision", "")),
                str(h.get("outcome", "")),
                str(h.get("reason", "")),
            ]
            for h in history
        ]
        out += ["", "history (newest first):", _history_table(rows)]
    cost = status.get("estimatedMonthlyCost") or {}
    if cost.get("stable"):
        line = f"estimated cost: stable {fmt_usd(cost['stable'].get('usd'))}/month ({cost['stable'].get('gpus')} GPUs)"
        if canary and cost.get("canary"):
            line += f", canary {fmt_usd(cost['canary'].get('usd'))}/month ({cost['canary'].get('gpus')} GPUs)"
            line += f", total {fmt_usd(cost.get('totalUsd'))}/month"
        out += ["", line]
    return "\n".join(out) + "\n"


def _history_table(rows: list[list[str]]) -> str:
    """AGE, REVISION, OUTCOME, then REASON wrapped under its column."""
    head = table(["AGE", "REVISION", "OUTCOME", "REASON"], [[*r[:3], ""] for r in rows]).splitlines()
    indent = len(head[0]) - len("REASON")
    lines = [head[0]]
    for line, row in zip(head[1:], rows, strict=True):
        reason = textwrap.wrap(" ".join(row[3].split()), width=max(40, 110 - indent), break_on_hyphens=False) or [""]
        lines.append(line.ljust(indent) + reason[0])
        lines += [" " * indent + more for more in reason[1:]]
    return "\n".join(lines)


# =========================================================================== charts (SVG, pure Python)

PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]  # fmt: skip


def nice_ticks(lo: float, hi: float, count: int = 5, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi] with about `count` intervals (steps of 1, 2, 2.5 or 5 x 10^n;
    whole steps when `integer`, e.g. for training steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    lo, hi = min(lo, hi), max(lo, hi)
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    if integer and (step < 1 or step != int(step)):
        step = float(max(1, math.ceil(step)))
    start = math.floor(lo / step + 1e-9) * step
    end = math.ceil(hi / step - 1e-9) * step
    n = round((end - start) / step)
    return [round(start + i * step, 12) for i in range(n + 1)]


def fmt_tick(value: float, ticks: Sequence[float]) -> str:
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (
        1 if round(step / 10 ** math.floor(math.log10(step)), 6) == 2.5 else 0
    )
    return f"{value:.{decimals}f}"


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[float, float]]
    color: str
    emphasis: bool = False


def _attrs(attrs: dict[str, str]) -> str:
    return "".join(f' {k}="{html.escape(v)}"' for k, v in attrs.items())


def svg_line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 640,
    height: int = 300,
    attrs: dict[str, str] | None = None,
    legend: bool = True,
) -> str:
    """A line chart as an inline SVG element (axes, grid, one polyline per series, legend on the right)."""
    legend = legend and len(series) > 1
    left, right, top, bottom = 64, (170 if legend else 16), 30, 44
    pw, ph = width - left - right, height - top - bottom
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points if math.isfinite(y)]
    e = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{e(title)}"{_attrs(attrs or {})}>',
        f"<title>{e(title)}</title>",
        f'<text x="{left}" y="18" class="chart-title">{e(title)}</text>',
    ]
    if not xs or not ys:
        parts.append(
            f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle" class="no-data">no data</text>'
        )
        parts.append("</svg>")
        return "".join(parts)
    xt = nice_ticks(min(xs), max(xs), integer=all(float(x).is_integer() for x in xs))
    yt = nice_ticks(min(ys), max(ys))
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    for t in yt:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" class="grid"/>')
        parts.append(
            f'<text x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end" class="tick">{fmt_tick(t, yt)}</text>'
        )
    for t in xt:
        parts.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{top}" y2="{top + ph}" class="grid"/>')
        parts.append(
            f'<text x="{px(t):.1f}" y="{top + ph + 16}" text-anchor="middle" class="tick">{fmt_tick(t, xt)}</text>'
        )
    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="frame"/>')
    parts.append(
        f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle" class="axis-label">{e(x_label)}</text>'
    )
    parts.append(
        f'<text x="14" y="{top + ph / 2}" text-anchor="middle" transform="rotate(-90 14 {top + ph / 2})" '
        f'class="axis-label">{e(y_label)}</text>'
    )
    for s in sorted(series, key=lambda s: s.emphasis):  # the emphasised series on top
        pts = [(x, y) for x, y in s.points if math.isfinite(y)]
        if not pts:
            continue
        stroke = 3 if s.emphasis else 1.5
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{s.color}" stroke-width="{stroke}" '
            f'data-series="{e(s.name)}"><title>{e(s.name)}</title></polyline>'
        )
        if len(pts) <= 40:
            parts += [
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="{3 if s.emphasis else 2.2}" fill="{s.color}">'
                f"<title>{e(s.name)}: step {x:g}, {y:.4g}</title></circle>"
                for x, y in pts
            ]
    if legend:
        lx = left + pw + 14
        for i, s in enumerate(series):
            ly = top + 8 + i * 16
            weight = ' font-weight="bold"' if s.emphasis else ""
            parts.append(f'<line x1="{lx}" x2="{lx + 16}" y1="{ly}" y2="{ly}" stroke="{s.color}" stroke-width="3"/>')
            parts.append(f'<text x="{lx + 22}" y="{ly + 4}" class="legend"{weight}>{e(s.name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Dot:
    label: str
    value: float | None
    spread: float | None = None  # drawn as value +- spread
    note: str = ""
    emphasis: bool = False


def svg_dot_chart(
    dots: Sequence[Dot],
    *,
    title: str,
    x_label: str,
    domain: tuple[float, float] | None = None,
    width: int = 760,
    attrs: dict[str, str] | None = None,
) -> str:
    """A dot plot (one row per label, a dot at its value, an optional +- bar): compares values that are
    close together without a bar chart's misleading zero baseline."""
    row_h, left, right, top, bottom = 22, 190, 190, 30, 40
    height = top + bottom + row_h * max(len(dots), 1)
    pw = width - left - right
    values = [d.value for d in dots if d.value is not None]
    lows = [d.value - (d.spread or 0) for d in dots if d.value is not None]
    highs = [d.value + (d.spread or 0) for d in dots if d.value is not None]
    e = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{e(title)}"{_attrs(attrs or {})}>',
        f"<title>{e(title)}</title>",
        f'<text x="{left}" y="18" class="chart-title">{e(title)}</text>',
    ]
    ticks = nice_ticks(*(domain or ((min(lows), max(highs)) if values else (0.0, 1.0))))
    x0, x1 = ticks[0], ticks[-1]

    def px(x: float) -> float:
        return left + (min(max(x, x0), x1) - x0) / (x1 - x0) * pw

    ph = row_h * max(len(dots), 1)
    for t in ticks:
        parts.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{top}" y2="{top + ph}" class="grid"/>')
        parts.append(
            f'<text x="{px(t):.1f}" y="{top + ph + 16}" text-anchor="middle" class="tick">{fmt_tick(t, ticks)}</text>'
        )
    parts.append(
        f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle" class="axis-label">{e(x_label)}</text>'
    )
    for i, d in enumerate(dots):
        cy = top + row_h * i + row_h / 2
        weight = ' font-weight="bold"' if d.emphasis else ""
        parts.append(
            f'<text x="{left - 8}" y="{cy + 4:.1f}" text-anchor="end" class="label"{weight}>{e(d.label)}</text>'
        )
        if d.value is None:
            parts.append(f'<text x="{left + 4}" y="{cy + 4:.1f}" class="no-data">{e(d.note or "no value")}</text>')
            continue
        color = PALETTE[3] if d.emphasis else PALETTE[0]
        if d.spread:
            parts.append(
                f'<line x1="{px(d.value - d.spread):.1f}" x2="{px(d.value + d.spread):.1f}" '
                f'y1="{cy:.1f}" y2="{cy:.1f}" stroke="{color}" stroke-width="2" opacity="0.5"/>'
            )
        parts.append(
            f'<circle cx="{px(d.value):.1f}" cy="{cy:.1f}" r="{6 if d.emphasis else 5}" fill="{color}">'
            f"<title>{e(d.label)}: {d.value:.4g}</title></circle>"
        )
        parts.append(
            f'<text x="{left + pw + 8}" y="{cy + 4:.1f}" class="value"{weight}>{e(d.note or f"{d.value:.4g}")}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


# =========================================================================== sweep report (HTML)


@dataclass
class TrialMetrics:
    """What the report reads from a trial's metrics.json (or why it could not)."""

    uri: str | None
    doc: dict[str, Any] | None = None
    problem: str | None = None
    curve: list[tuple[float, float]] = field(default_factory=list)

    @classmethod
    def parse(cls, uri: str, doc: dict[str, Any]) -> TrialMetrics:
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


REPORT_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}
h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}
th,td{padding:.25rem .6rem;border-bottom:1px solid #eee;text-align:left}th{background:#f6f6f6}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.champion td{background:#fff4e0;font-weight:600}
.meta{color:#555}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:.8rem;background:#eee;font-size:.85rem}
.badge.Succeeded{background:#d9f2d9}.badge.Failed{background:#f8d7d7}.badge.Running{background:#dbe9fb}
.badge.Suspended{background:#fff0c2}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:1rem}
figure{margin:0;border:1px solid #eee;border-radius:6px;padding:.5rem}figcaption{font-size:.85rem;color:#444}
.champion-box{border:2px solid #ff7f0e;border-radius:8px;padding:.6rem 1rem;background:#fffaf2}
.problem{color:#a33}code{background:#f3f3f3;padding:0 .2rem;border-radius:3px}
svg .grid{stroke:#e6e6e6;stroke-width:1}svg .frame{fill:none;stroke:#999}svg text{font-size:11px;fill:#333}
svg .chart-title{font-size:13px;font-weight:600}svg .axis-label{font-size:11px;fill:#555}
svg .no-data{fill:#999;font-style:italic}
"""


def _param_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt_value(v)}" for k, v in sorted(params.items())) or "(no swept parameters)"


def render_report(obj: dict[str, Any], metrics: dict[str, TrialMetrics], now: datetime | None = None) -> str:
    """A self-contained HTML page: summary, champion, leaderboard, loss curves (all trials, then one SVG
    per trial), judge scores and validation losses as dot plots, per-trial details. No scripts, no
    external resources."""
    now = now or datetime.now(UTC)
    e = html.escape
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    metric, goal = objective_of(obj)
    trials = list(status.get("trials") or [])
    ranked = rank_trials(trials, metric)
    champion = status.get("champion") or {}
    champ_name = champion.get("trial")
    state = str(status.get("state") or "Pending")
    colors = {
        str(t.get("name")): PALETTE[i % len(PALETTE)]
        for i, t in enumerate(sorted(trials, key=lambda t: int(t.get("index", 0))))
    }
    paths = swept_paths(obj)
    names = short_names(paths)
    base = spec.get("baseModel") or {}
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Sweep report: {e(ns)}/{e(name)}</title>",
        f"<style>{REPORT_CSS}</style></head><body>",
        f"<h1>Sweep report: FineTuneJob <code>{e(ns)}/{e(name)}</code> "
        f'<span class="badge {e(state)}">{e(state)}</span></h1>',
        f'<p class="meta">{e(str(spec.get("method", "")).upper())} LoRA fine-tune of '
        f"<code>{e(str(base.get('name', '')))}</code>; "
        f"{e(str(status.get('progress') or '0/0'))} trials finished; objective <b>{e(metric)}</b> ({e(goal)}); "
        f"generated {e(now.strftime('%Y-%m-%d %H:%M:%SZ'))} by kubectl adapterops from resourceVersion "
        f"{e(str(meta.get('resourceVersion', '-')))}.</p>",
        '<section id="champion"><h2>Champion</h2>',
    ]
    if champion:
        label = "Champion" if state == "Succeeded" else "Current leader (provisional until the sweep finishes)"
        out.append(
            f'<div class="champion-box" data-champion="{e(str(champ_name))}">'
            f"<b>{e(label)}: {e(str(champ_name))}</b><br>"
            f"validation loss {e(fmt_number(champion.get('validationLoss')))}, judge score "
            f"{e(fmt_number(champion.get('judgeScore'), 2))}; {e(_param_text(champion.get('parameters') or {}))}<br>"
            f"adapter <code>{e(str(champion.get('adapterUri', '')))}</code></div>"
        )
    else:
        out.append("<p>No champion yet.</p>")
    out.append("</section>")
    # Leaderboard
    out.append('<section id="leaderboard"><h2>Leaderboard</h2><table><thead><tr><th>Rank</th><th>Trial</th>')
    out += [f"<th>{e(names[p])}</th>" for p in paths]
    out.append(
        "<th>Validation loss</th><th>Judge score</th><th>State</th><th>Attempts</th><th>Message</th>"
        "</tr></thead><tbody>"
    )
    for rank, t in ranked:
        tname = str(t.get("name", ""))
        cls = ' class="champion"' if tname == champ_name else ""
        params = t.get("parameters") or {}
        out.append(
            f'<tr{cls} data-trial="{e(tname)}"><td class="num">{rank if rank is not None else "-"}'
            f"{' &#9733;' if tname == champ_name else ''}</td><td>{e(tname)}</td>"
            + "".join(f'<td class="num">{e(fmt_value(params.get(p)))}</td>' for p in paths)
            + f'<td class="num">{e(fmt_number(t.get("validationLoss")))}</td>'
            f'<td class="num">{e(fmt_number(t.get("judgeScore"), 2))}</td>'
            f'<td><span class="badge {e(str(t.get("state", "")))}">{e(str(t.get("state", "")))}</span></td>'
            f'<td class="num">{e(str(t.get("attempts", 0)))}</td><td>{e(str(t.get("message") or ""))}</td></tr>'
        )
    out.append("</tbody></table></section>")
    # Loss curves
    out.append('<section id="loss-curves"><h2>Training loss</h2>')
    with_curves = [
        (str(t.get("name")), metrics[str(t.get("name"))])
        for _, t in ranked
        if metrics.get(str(t.get("name"))) and metrics[str(t.get("name"))].curve
    ]
    if with_curves:
        overview = [Series(n, m.curve, colors[n], n == champ_name) for n, m in with_curves]
        out.append(
            svg_line_chart(
                overview,
                title="Training loss, all trials",
                x_label="step",
                y_label="loss",
                width=900,
                height=360,
                attrs={"class": "loss-overview"},
            )
        )
        out.append('<div class="grid">')
        for n, m in with_curves:
            t = next(t for t in trials if t.get("name") == n)
            star = " (champion)" if n == champ_name else ""
            chart = svg_line_chart(
                [Series(n, m.curve, colors[n], n == champ_name)],
                title=f"{n}{star}",
                x_label="step",
                y_label="loss",
                width=420,
                height=240,
                attrs={"class": "loss-curve", "data-trial": n},
            )
            out.append(f"<figure>{chart}<figcaption>{e(_param_text(t.get('parameters') or {}))}</figcaption></figure>")
        out.append("</div>")
    else:
        out.append("<p>No loss curves: no trial's metrics.json could be read.</p>")
    missing = [(str(t.get("name")), metrics.get(str(t.get("name")))) for _, t in ranked]
    problems = [(n, m.problem) for n, m in missing if m is not None and m.problem]
    if problems:
        out.append("<ul>" + "".join(f'<li class="problem">{e(n)}: {e(str(p))}</li>' for n, p in problems) + "</ul>")
    out.append("</section>")
    # Judge scores
    out.append('<section id="judge"><h2>Judge scores</h2>')
    dots = []
    for _, t in ranked:
        n = str(t.get("name"))
        doc = (metrics.get(n) or TrialMetrics(None)).doc or {}
        summary = ((doc.get("evaluation") or {}).get("summary")) or {}
        score = _num(t, "judgeScore")
        std = summary.get("std") if isinstance(summary.get("std"), int | float) else None
        note = ""
        if score is not None:
            note = (
                f"{score:.2f}"
                + (f" \u00b1 {std:.2f}" if std is not None else "")
                + (f" (n={summary['samples']})" if summary.get("samples") else "")
            )
        elif summary.get("status") and summary.get("status") != "ok":
            note = f"judge {summary['status']}"
        else:
            note = "no score" if t.get("state") == "Succeeded" else str(t.get("state", "")).lower()
        dots.append(Dot(n, score, std, note, n == champ_name))
    if any(d.value is not None for d in dots):
        out.append(
            svg_dot_chart(
                dots,
                title="Mean judge score (0-5)",
                x_label="judge score",
                domain=(0.0, 5.0),
                attrs={"class": "judge-scores"},
            )
        )
    else:
        out.append("<p>No judge scores (no evaluation configured, or no trial has finished).</p>")
    out.append("</section>")
    # Validation loss
    out.append('<section id="validation"><h2>Validation loss</h2>')
    vdots = []
    for _, t in ranked:
        n = str(t.get("name"))
        doc = (metrics.get(n) or TrialMetrics(None)).doc or {}
        loss = _num(t, "validationLoss")
        before = doc.get("validationLossBefore")
        note = (
            f"{loss:.4f}" + (f" (from {before:.4f})" if isinstance(before, int | float) else "")
            if loss is not None
            else str(t.get("state", "")).lower()
        )
        vdots.append(Dot(n, loss, None, note, n == champ_name))
    if any(d.value is not None for d in vdots):
        out.append(
            svg_dot_chart(
                vdots, title="Validation loss after training", x_label="loss", attrs={"class": "validation-losses"}
            )
        )
    else:
        out.append("<p>No validation losses yet.</p>")
    out.append("</section>")
    # Details
    out.append(
        '<section id="trials"><h2>Trials</h2><table><thead><tr><th>Trial</th><th>Parameters</th><th>Steps</th>'
        "<th>Train loss</th><th>Val loss before &#8594; after</th><th>Train time</th><th>Backend</th>"
        "<th>metrics.json</th></tr></thead><tbody>"
    )
    for _, t in ranked:
        n = str(t.get("name"))
        m = metrics.get(n) or TrialMetrics(None)
        doc = m.doc or {}
        timings = ((doc.get("timings") or {}).get("phases")) or {}
        train_s = timings.get("train")
        before, after = doc.get("validationLossBefore"), doc.get("validationLoss")
        out.append(
            f'<tr data-trial="{e(n)}"><td>{e(n)}</td><td>{e(_param_text(t.get("parameters") or {}))}</td>'
            f'<td class="num">{e(str(doc.get("steps", "-")))}</td>'
            f'<td class="num">{e(fmt_number(doc.get("trainLoss")))}</td>'
            f'<td class="num">{e(fmt_number(before))} &#8594; {e(fmt_number(after))}</td>'
            f'<td class="num">{e(f"{train_s:.1f}s" if isinstance(train_s, int | float) else "-")}</td>'
            f"<td>{e(str((doc.get('backend') or {}).get('used', '-')))}</td>"
            f"<td>{'<code>' + e(m.uri) + '</code>' if m.uri and m.doc else e(m.problem or 'none')}</td></tr>"
        )
    out.append("</tbody></table></section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


@contextlib.contextmanager
def pvc_root(path: str | None) -> Iterator[None]:
    """Map pvc://claim/... to `path`/claim/... for adapterops_train.uris while reading."""
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
    """Each trial's metrics.json through adapterops_train.uris (s3://, pvc:// under ADAPTEROPS_PVC_ROOT, paths)."""
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


def write_png(obj: dict[str, Any], metrics: dict[str, TrialMetrics], path: Path) -> None:
    """The loss curves and judge scores as a PNG (matplotlib, imported only here)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise CliError(
            f"--png needs matplotlib, which is not importable here ({exc}); the HTML report needs nothing"
        ) from exc
    status = obj.get("status") or {}
    champ = (status.get("champion") or {}).get("trial")
    trials = list(status.get("trials") or [])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    for i, t in enumerate(sorted(trials, key=lambda t: int(t.get("index", 0)))):
        n = str(t.get("name"))
        m = metrics.get(n)
        if m and m.curve:
            ax1.plot(
                [x for x, _ in m.curve],
                [y for _, y in m.curve],
                label=n,
                color=PALETTE[i % len(PALETTE)],
                linewidth=3 if n == champ else 1.5,
            )
    ax1.set(title="Training loss", xlabel="step", ylabel="loss")
    ax1.legend(fontsize=7)
    scored = [(str(t.get("name")), _num(t, "judgeScore")) for t in trials]
    scored = [(n, s) for n, s in scored if s is not None]
    if scored:
        ax2.barh(
            [n for n, _ in scored],
            [s for _, s in scored],
            color=[PALETTE[3] if n == champ else PALETTE[0] for n, _ in scored],
        )
        ax2.set(xlim=(0, 5))
    ax2.set(title="Mean judge score (0-5)", xlabel="judge score")
    meta = obj.get("metadata") or {}
    fig.suptitle(f"FineTuneJob {meta.get('namespace')}/{meta.get('name')}" + (f"  champion {champ}" if champ else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# =========================================================================== the API


class Api:
    """The few calls the plugin makes, on AdapterOps' custom resources."""

    def __init__(self, api_client: ApiClient) -> None:
        from kubernetes import client

        self.client = api_client
        self.custom = client.CustomObjectsApi(api_client)

    @property
    def host(self) -> str:
        return str(self.client.configuration.host)

    def _call(self, what: str, fn: Callable[[], object]) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return cast(dict[str, Any], fn())
        except ApiException as exc:
            if exc.status == 404:
                return None
            reason = _api_message(exc)
            if exc.status in (401, 403):
                raise CliError(f"{what}: not allowed ({exc.status}): {reason}") from exc
            raise CliError(f"{what}: the API server answered {exc.status}: {reason}") from exc
        except HTTPError as exc:
            raise CliError(f"{what}: cannot reach the API server at {self.host}: {exc}") from exc

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._call(
            f"reading {kind} {namespace}/{name}",
            lambda: self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, KINDS[kind], name, _request_timeout=REQUEST_TIMEOUT
            ),
        )

    def patch(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result = self._call(
            f"patching {kind} {namespace}/{name}",
            lambda: self.custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                KINDS[kind],
                name,
                body,
                _request_timeout=REQUEST_TIMEOUT,
                _content_type="application/merge-patch+json",
            ),
        )
        if result is None:
            raise CliError(f'{kind} "{name}" not found in namespace "{namespace}" (deleted meanwhile?)')
        return result


def _api_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    try:
        return str(json.loads(body)["message"]) if body else str(getattr(exc, "reason", exc))
    except (ValueError, KeyError, TypeError):
        return str(body or exc)


def connect(kubeconfig: str | None, context: str | None) -> tuple[Api, str]:
    """The API client of the current (or named) kubeconfig context and its default namespace; inside a
    pod without kubeconfig, the pod's ServiceAccount."""
    try:
        from kubernetes import config as kube_config
    except ImportError as exc:
        raise CliError(f"the plugin needs the kubernetes Python client ({exc}): pip install kubernetes") from exc
    config: Any = kube_config  # its loaders are untyped
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    try:
        api_client = config.new_client_from_config(config_file=path, context=context, persist_config=False)
        contexts, active = config.list_kube_config_contexts(config_file=path)
        chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
        namespace = str(((chosen or {}).get("context") or {}).get("namespace") or "default")
        return Api(api_client), namespace
    except config.ConfigException as exc:
        sa = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        if kubeconfig or context or not sa.exists():
            raise CliError(f"no usable kubeconfig ({path or '~/.kube/config'}): {exc}") from exc
        config.load_incluster_config()
        from kubernetes import client

        return Api(client.ApiClient()), sa.read_text().strip()


# =========================================================================== commands


def require(api: Api, kind: str, namespace: str, name: str) -> dict[str, Any]:
    obj = api.get(kind, namespace, name)
    if obj is None:
        short = "ftj" if kind == "FineTuneJob" else "mdep"
        raise CliError(f'{kind} "{name}" not found in namespace "{namespace}" (kubectl get {short} -n {namespace})')
    return obj


def find_kind(api: Api, namespace: str, name: str, kind: str | None) -> tuple[str, dict[str, Any]]:
    """The FineTuneJob or ModelDeployment called `name` (`kind` picks when given)."""
    if kind:
        return kind, require(api, kind, namespace, name)
    found = [(k, o) for k in KINDS if (o := api.get(k, namespace, name)) is not None]
    if not found:
        raise CliError(f'no FineTuneJob or ModelDeployment named "{name}" in namespace "{namespace}"')
    if len(found) > 1:
        raise CliError(f'both a FineTuneJob and a ModelDeployment are named "{name}" in "{namespace}": pass --kind')
    return found[0]


def cmd_sweep(api: Api, ns: str, args: argparse.Namespace, out: TextIO) -> int:
    out.write(format_sweep(require(api, "FineTuneJob", ns, args.name)))
    return 0


def cmd_canary(api: Api, ns: str, args: argparse.Namespace, out: TextIO) -> int:
    out.write(format_canary(require(api, "ModelDeployment", ns, args.name)))
    return 0


def cmd_action(api: Api, ns: str, args: argparse.Namespace, out: TextIO) -> int:
    """promote / abort: annotate the ModelDeployment with the running canary's revision."""
    action: str = args.command
    obj = require(api, "ModelDeployment", ns, args.name)
    status = obj.get("status") or {}
    canary = status.get("canary") or {}
    revision = canary.get("revision")
    if not revision:
        stable = (status.get("stable") or {}).get("revision")
        serving = f"revision {stable} serves all traffic" if stable else "nothing is served yet"
        raise CliError(f"ModelDeployment {ns}/{args.name} has no canary in progress ({serving}): nothing to {action}")
    annotation = f"{ANNOTATION_PREFIX}{action}"
    api.patch("ModelDeployment", ns, args.name, {"metadata": {"annotations": {annotation: revision}}})
    out.write(
        f"modeldeployment.adapterops.io/{args.name} annotated {annotation}={revision}: the operator will "
        f"{'promote' if action == 'promote' else 'roll back'} canary revision {revision}\n"
    )
    if canary.get("readyReplicas", 0) < canary.get("replicas", 0):
        out.write("note: the canary is not ready yet; the operator acts once it is\n")
    if args.wait:
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            current = require(api, "ModelDeployment", ns, args.name).get("status") or {}
            if (current.get("canary") or {}).get("revision") != revision:
                entry = next((h for h in current.get("history") or [] if h.get("revision") == revision), None)
                if entry is None:
                    out.write(f"canary {revision} is gone\n")
                    return 0
                out.write(f"revision {revision}: {entry.get('outcome')}: {entry.get('reason', '')}\n")
                wanted = "Promoted" if action == "promote" else "RolledBack"
                return 0 if entry.get("outcome") == wanted else 1
            time.sleep(POLL_SECONDS)
        raise CliError(
            f"timed out after {args.wait:g}s waiting for the operator to {action} {revision} (is it running?)"
        )
    return 0


def cmd_toggle(api: Api, ns: str, args: argparse.Namespace, out: TextIO) -> int:
    """suspend|pause / resume: FineTuneJob spec.suspend, ModelDeployment spec.canary.paused."""
    hold = args.command in ("suspend", "pause")
    kind, obj = find_kind(api, ns, args.name, args.kind)
    spec = obj.get("spec") or {}
    if kind == "FineTuneJob":
        field_name, current = "spec.suspend", bool(spec.get("suspend", False))
        body: dict[str, Any] = {"spec": {"suspend": hold}}
    else:
        field_name, current = "spec.canary.paused", bool((spec.get("canary") or {}).get("paused", False))
        body = {"spec": {"canary": {"paused": hold}}}
    resource = f"{kind.lower()}.adapterops.io/{args.name}"
    if current == hold:
        out.write(f"{resource} unchanged ({field_name} is already {str(hold).lower()})\n")
    else:
        api.patch(kind, ns, args.name, body)
        out.write(f"{resource} patched ({field_name}={str(hold).lower()})\n")
    if kind == "ModelDeployment" and not hold:
        held = condition(obj, "Suspended")
        if held.get("status") == "True" and held.get("reason") == "AnalysisInconclusive":
            out.write(
                "note: the canary is holding because its analysis is inconclusive, not because it is paused: "
                "restore the metrics' data source, or decide with `kubectl adapterops promote|abort`\n"
            )
    if kind == "FineTuneJob" and hold:
        out.write("running trials finish; no new trial starts until `kubectl adapterops resume`\n")
    return 0


def cmd_report(api: Api, ns: str, args: argparse.Namespace, out: TextIO) -> int:
    obj = require(api, "FineTuneJob", ns, args.name)
    trials = (obj.get("status") or {}).get("trials") or []
    with pvc_root(args.pvc_root):
        metrics = read_trial_metrics(trials)
    for name, m in metrics.items():
        if m.problem:
            sys.stderr.write(f"warning: trial {name}: {m.problem}\n")
    target = Path(args.output)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_report(obj, metrics), encoding="utf-8")
    curves = sum(1 for m in metrics.values() if m.curve)
    out.write(f"wrote {target} ({len(trials)} trials, {curves} loss curves)\n")
    if args.png:
        png = target.with_suffix(".png")
        write_png(obj, metrics, png)
        out.write(f"wrote {png}\n")
    return 0


COMMANDS: dict[str, Callable[[Api, str, argparse.Namespace, TextIO], int]] = {
    "sweep": cmd_sweep,
    "canary": cmd_canary,
    "promote": cmd_action,
    "abort": cmd_action,
    "suspend": cmd_toggle,
    "pause": cmd_toggle,
    "resume": cmd_toggle,
    "report": cmd_report,
}


def _kind(value: str) -> str:
    kind = KIND_ALIASES.get(value.lower())
    if kind is None:
        raise argparse.ArgumentTypeError(f"{value!r}: expected FineTuneJob (ftj) or ModelDeployment (mdep)")
    return kind


def parser() -> argparse.ArgumentParser:
    # Connection flags go before or after the subcommand, as with kubectl (`kubectl adapterops -n ns sweep x`
    # and `kubectl adapterops sweep x -n ns`): SUPPRESS keeps a subcommand's unset flag from hiding the other.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", default=argparse.SUPPRESS, help="namespace (default: the context's)")
    common.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context (default: current)")
    common.add_argument("--kubeconfig", default=argparse.SUPPRESS, help="kubeconfig file (default: $KUBECONFIG)")
    p = argparse.ArgumentParser(
        prog="kubectl adapterops",
        description="Inspect and steer AdapterOps FineTuneJobs (sweeps) and ModelDeployments (canaries).",
        parents=[common],
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_, parents=[common])
        sp.add_argument("name", metavar="NAME")
        return sp

    add("sweep", "print a FineTuneJob's leaderboard, best trial first, the champion marked")
    add("canary", "print a ModelDeployment's canary: steps, revisions, per-metric verdicts, history")
    for action, text in (("promote", "promote the running canary now"), ("abort", "roll the running canary back now")):
        sp = add(action, f"{text} (sets adapterops.io/{action} to its revision)")
        sp.add_argument("--wait", type=float, default=0, metavar="SECONDS", help="wait for the operator to act")
    for name, text in (
        (
            "suspend",
            "FineTuneJob: start no new trials (spec.suspend); ModelDeployment: hold canaries (spec.canary.paused)",
        ),
        ("pause", "same as suspend"),
        ("resume", "undo suspend/pause"),
    ):
        sp = add(name, text)
        sp.add_argument(
            "--kind", type=_kind, help="FineTuneJob (ftj) or ModelDeployment (mdep); default: whichever exists"
        )
    sp = add("report", "write a self-contained HTML report of a sweep (loss curves, judge scores, champion)")
    sp.add_argument("-o", "--output", required=True, metavar="FILE", help="HTML file to write")
    sp.add_argument("--pvc-root", metavar="DIR", help="local directory holding pvc://CLAIM/... as DIR/CLAIM/...")
    sp.add_argument("--png", action="store_true", help="also write FILE.png (needs matplotlib)")
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = parser().parse_args(argv)
    try:
        api, default_ns = connect(getattr(args, "kubeconfig", None), getattr(args, "context", None))
        namespace = getattr(args, "namespace", None) or default_ns
        return COMMANDS[args.command](api, namespace, args, out)
    except CliError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
