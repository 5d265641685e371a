"""A ServingProfile's table, as text (`kubectl adapterops profile NAME`) and as a section of the HTML report
(`kubectl adapterops report SWEEP --profile NAME`): every candidate's figures, the chosen configuration
and why each other candidate lost. Pure functions of the object."""

from __future__ import annotations

import html
from typing import Any

from adapterops.cli.format import table, wrap

COLUMNS = (
    ("CANDIDATE", "name"),
    ("STATE", "state"),
    ("P50", "p50Seconds"),
    ("P95", "p95Seconds"),
    ("MEAN", "meanSeconds"),
    ("TTFT", "ttftSeconds"),
    ("TOK/S", "outputTokensPerSecond"),
    ("REQ/S", "requestsPerSecond"),
    ("ERR%", "errorPercent"),
    ("$/H", "costPerHour"),
    ("$/MTOK", "costPerMillionTokens"),
    ("SLO", "meetsSlo"),
)


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "met" if value else "missed"
    if key.endswith("Seconds"):
        return f"{value:.3g}s"
    if key.startswith("cost"):
        return f"{value:.4g}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def rows(obj: dict[str, Any]) -> list[list[str]]:
    out = []
    for r in (obj.get("status") or {}).get("candidates") or []:
        cells = [_cell(key, r.get(key)) for _, key in COLUMNS]
        cells[0] = ("* " if r.get("chosen") else "  ") + cells[0]
        out.append(cells)
    return out


def format_profile(obj: dict[str, Any]) -> str:
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    lines = [
        f"ServingProfile {meta.get('namespace')}/{meta.get('name')}: {status.get('state') or 'Pending'}, "
        f"{status.get('progress') or '0/0'} candidates measured",
        f"SLO: {status.get('slo') or '-'}",
        "",
        table([h for h, _ in COLUMNS], rows(obj)),
        "",
    ]
    choice = status.get("choice")
    if choice:
        where = f"TP {choice['tensorParallelSize']} on {choice['gpuType']}"
        lines.append(wrap(f"* chosen: {choice['candidate']} ({where}): {choice.get('reason', '')}", ""))
    for r in status.get("candidates") or []:
        if not r.get("chosen") and r.get("reason"):
            lines.append(wrap(f"{r['name']}: {r['reason']}", "  "))
    return "\n".join(lines).rstrip() + "\n"


def profile_section(obj: dict[str, Any]) -> list[str]:
    """The report's section: the table (the chosen row marked) and why the others lost."""
    e = html.escape
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    choice = status.get("choice")
    out = [
        '<section id="serving-profile"><h2>Serving profile</h2>',
        f"<p>ServingProfile <code>{e(str(meta.get('namespace')))}/{e(str(meta.get('name')))}</code>: "
        f'<span class="badge {e(str(status.get("state") or "Pending"))}">{e(str(status.get("state") or "Pending"))}'
        f"</span>, SLO {e(str(status.get('slo') or '-'))}.</p>",
    ]
    if choice:
        out.append(
            f'<div class="champion-box" data-choice="{e(str(choice["candidate"]))}"><b>Chosen configuration: '
            f"{e(str(choice['engine']))}, TP {e(str(choice['tensorParallelSize']))} on {e(str(choice['gpuType']))}"
            f"</b><br>{e(str(choice.get('reason', '')))}</div>"
        )
    else:
        out.append("<p>No configuration chosen (yet).</p>")
    out.append(
        "<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h, _ in COLUMNS) + "<th>Why</th></tr></thead><tbody>"
    )
    for r, cells in zip((status.get("candidates") or []), rows(obj), strict=True):
        cls = ' class="champion"' if r.get("chosen") else ""
        out.append(
            f'<tr{cls} data-candidate="{e(str(r.get("name")))}"><td>{e(cells[0].strip())}</td>'
            + "".join(f'<td class="num">{e(c)}</td>' for c in cells[1:])
            + f"<td>{e(str(r.get('reason') or ''))}</td></tr>"
        )
    out.append("</tbody></table></section>")
    return out
