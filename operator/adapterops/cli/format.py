"""The plugin's text views, pure functions of an object (JSON in, text out): the sweep leaderboard, the
canary view, and the helpers they share with the report (values, ages, trial ranking)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from adapterops.api.common import Condition, conditions_of, get_condition, parse_time


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
    """Dollars with cents and thousands separators, '-' when absent."""
    if value is None or not isinstance(value, int | float):
        return "-"
    return f"${value:,.2f}"


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
    """A message as an indented paragraph; long words (URIs) are never split."""
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


def condition(obj: dict[str, Any], type_: str) -> Condition | None:
    """The object's condition of that type, None when it has none."""
    return get_condition(conditions_of(obj), type_)


def numeric(row: dict[str, Any], key: str) -> float | None:
    """row[key] as a float when it is a number (not a bool), else None."""
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
        return row.get("state") == "Succeeded" and numeric(row, key) is not None

    def order(row: dict[str, Any]) -> tuple[float, float, int]:
        loss, score = numeric(row, "validationLoss"), numeric(row, "judgeScore")
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
    """The FineTuneJob's objective metric and goal, with the API's defaults."""
    objective = (obj.get("spec") or {}).get("objective") or {}
    metric = str(objective.get("metric", "judgeScore"))
    goal = str(objective.get("goal", "maximize" if metric == "judgeScore" else "minimize"))
    return metric, goal


def swept_paths(obj: dict[str, Any]) -> list[str]:
    """Every swept parameter path, from the spec and from the trials (a column each)."""
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
    if accepted is not None and accepted.status == "False":
        out.append(f"refused ({accepted.reason}): {accepted.message}")
    suspended = condition(obj, "Suspended")
    if suspended is not None and suspended.status == "True":
        out.append(f"suspended: {suspended.message or 'spec.suspend is true'} (kubectl adapterops resume)")
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
    base = status.get("baseline")
    if base:  # the base model, no adapter: the row the champion is measured against
        scores = [fmt_number(base.get("validationLoss")), fmt_number(base.get("judgeScore"), 2)]
        rows.append(["base", str(base.get("job", "")), *["-"] * len(paths), *scores, str(base.get("state", "")), "-"])
    out += ["", table(headers, rows), ""]
    if champion:
        final = state == "Succeeded"
        label = "champion" if final else "current leader (provisional until the sweep finishes)"
        out.append(f"* {label}: {champion.get('trial')}  {champion.get('adapterUri', '')}")
        out += _against_baseline(obj, champion, base)
    else:
        out.append("no champion yet")
    notes = [t for t in trials if t.get("message")]
    if notes:
        out.append("")
        out.append("messages:")
        out += [wrap(f"{t.get('name')} ({t.get('state')}): {t.get('message')}") for t in notes]
    return "\n".join(out) + "\n"


def _against_baseline(obj: dict[str, Any], champion: dict[str, Any], base: dict[str, Any] | None) -> list[str]:
    """The champion against the base model: improvement, pairwise win rate, the verdict."""
    out: list[str] = []
    imp = champion.get("improvement")
    if imp:
        relative = f" ({imp['relative']:+.1%})" if imp.get("relative") is not None else ""
        out.append(f"  vs base model: {imp.get('metric')} {imp.get('absolute', 0):+.4g}{relative}")
    pair = (base or {}).get("pairwise")
    if pair and pair.get("status") == "ok":
        out.append(
            f"  pairwise vs base model: won {pair.get('wins', 0)}, tied {pair.get('ties', 0)}, lost "
            f"{pair.get('losses', 0)} (win rate {fmt_number(pair.get('winRate'), 3)}, orders agreed on "
            f"{fmt_number(pair.get('agreement'), 3)})"
        )
    verdict = condition(obj, "ChampionNotBetterThanBaseline")
    if verdict is not None and verdict.status == "True":
        out.append(wrap(f"NOT better than the base model: {verdict.message}", indent="  "))
    return out


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
    for type_ in ("Ready", "Progressing", "Suspended", "RolledBack", "Degraded", "AdaptersLoaded"):
        c = condition(obj, type_)
        shown_when = "False" if type_ == "AdaptersLoaded" else "True"
        if c is not None and (type_ in ("Ready", "Progressing") or c.status == shown_when):
            summary.append(f"{type_}={c.status}" + (f" ({c.reason})" if c.reason else ""))
    out = [f"ModelDeployment {meta.get('namespace')}/{meta.get('name')}: " + (", ".join(summary) or "no status yet")]
    if status.get("endpoint"):
        out.append(f"endpoint: {status['endpoint']}")
    revisions = [("stable", stable)] if stable else []
    if canary:
        revisions.append(("canary", canary))
    if revisions:
        headers = ["ROLE", "REVISION", "ENGINE", "TP", "GPU", "READY", "WEIGHT", "ADAPTERS"]
        out += ["", table(headers, [_revision_row(role, rev) for role, rev in revisions])]
    replicas = status.get("replicas") or []
    if replicas:  # adapterRollout InPlace: what each pod has loaded, as its adapter agent reports it
        roles = {(stable or {}).get("revision"): "stable", (canary or {}).get("revision"): "canary"}
        rows = [
            [
                str(r.get("pod", "")),
                f"{r.get('revision') or '-'} ({roles.get(r.get('revision'), 'neither')})",
                str(r.get("wanted", "")),
                "yes" if r.get("ready") else "no",
                str(r.get("message", "")),
            ]
            for r in replicas
        ]
        out += ["", "pods (adapters loaded in place):", table(["POD", "SERVES", "ASKED", "READY", "AGENT"], rows)]
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
    for type_ in ("Suspended", "Progressing", "RolledBack", "Degraded", "AdaptersLoaded"):
        c = condition(obj, type_)
        message = c.message if c is not None else ""
        if (
            c is None
            or c.status != ("False" if type_ == "AdaptersLoaded" else "True")
            or not message
            or message in shown
            or (type_ == "Progressing" and not canary)
        ):
            continue
        shown.add(message)
        if c.reason in ("AnalysisInconclusive", "Analysing") and metrics:
            # These messages repeat the per-metric messages printed above: keep their head.
            message = message.split(": ", 1)[0] + " (per-metric messages above)"
        out.append(wrap(f"{type_} ({c.reason}): {message}", indent=""))
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
        per_token = [
            f"{role} {fmt_usd(side['costPerMillionTokens'])} "
            f"({fmt_number(side.get('outputTokensPerSecond'), 1)} tokens/s)"
            for role in ("stable", "canary")
            if (side := cost.get(role)) and side.get("costPerMillionTokens") is not None
        ]
        if per_token:
            out.append("cost per million output tokens at this step: " + ", ".join(per_token))
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
