"""`kubectl adapterops report`: a sweep as one self-contained HTML page (no scripts, no external
resources: it opens offline and can be attached to a ticket), its charts inline SVG drawn by matplotlib;
optionally the same charts as a PNG."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapterops.cli.charts import Dot, Series, dot_chart_svg, line_chart_svg, write_png
from adapterops.cli.format import fmt_number, fmt_value, numeric, objective_of, rank_trials, short_names, swept_paths
from adapterops.cli.profile import profile_section
from adapterops.cli.trial_metrics import TrialMetrics

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
svg{max-width:100%;height:auto}
"""


def _param_text(params: dict[str, Any]) -> str:
    """Swept parameters as `path=value, ...`."""
    return ", ".join(f"{k}={fmt_value(v)}" for k, v in sorted(params.items())) or "(no swept parameters)"


def baseline_section(status: dict[str, Any]) -> list[str]:
    """Base model against champion: scores, the improvement, the pairwise comparison, and the verdict."""
    e = html.escape
    base, champion = status.get("baseline"), status.get("champion") or {}
    out = ['<section id="baseline"><h2>Baseline: the base model against the champion</h2>']
    if not base:
        out.append("<p>No baseline: the trials have not finished, or spec.baseline.evaluate is false.</p></section>")
        return out
    out.append(
        "<table><thead><tr><th></th><th>Validation loss</th><th>Judge score</th><th>State</th></tr></thead><tbody>"
    )
    for label, row in (("Base model (no adapter)", base), (f"Champion {champion.get('trial', '')}", champion)):
        out.append(
            f'<tr data-row="{e(label.split()[0].lower())}"><td>{e(label)}</td>'
            f'<td class="num">{e(fmt_number(row.get("validationLoss")))}</td>'
            f'<td class="num">{e(fmt_number(row.get("judgeScore"), 2))}</td>'
            f"<td>{e(str(row.get('state', 'Succeeded')))}</td></tr>"
        )
    out.append("</tbody></table>")
    imp = champion.get("improvement")
    if imp:
        relative = f" ({imp['relative']:+.1%})" if imp.get("relative") is not None else ""
        out.append(
            f'<p class="improvement">Improvement on {e(str(imp["metric"]))}: '
            f"<b>{imp['absolute']:+.4g}{e(relative)}</b>; "
            f"required more than {float(imp.get('minImprovement') or 0):g}: "
            f"<b>{'better than' if imp.get('betterThanBaseline') else 'NOT better than'} the base model"
            "</b>.</p>"
        )
    pair = base.get("pairwise")
    if pair and pair.get("status") == "ok":
        out.append(
            '<p class="pairwise">Pairwise (each prompt judged in both orders): the champion won '
            f"{pair.get('wins', 0)}, "
            f"tied {pair.get('ties', 0)}, lost {pair.get('losses', 0)} of {pair.get('pairs', 0)}; win rate "
            f"<b>{e(fmt_number(pair.get('winRate'), 3))}</b>; the judge's two orders agreed on "
            f"{e(fmt_number(pair.get('agreement'), 3))} of the pairs.</p>"
        )
    elif pair:
        out.append(
            f'<p class="problem">Pairwise comparison: {e(str(pair.get("status")))} '
            f"{e(str(pair.get('message') or ''))}</p>"
        )
    verdict = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "ChampionNotBetterThanBaseline"), None
    )
    if verdict:
        out.append(f"<p>{e(str(verdict.get('reason', '')))}: {e(str(verdict.get('message', '')))}</p>")
    out.append("</section>")
    return out


def serving_cost_section(obj: dict[str, Any]) -> list[str]:
    """A ModelDeployment's stable and canary side by side: traffic, GPUs, monthly cost, and the cost per million
    output tokens measured at the canary's current step."""
    e = html.escape
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    cost = status.get("estimatedMonthlyCost") or {}
    out = [
        '<section id="serving-cost"><h2>Serving cost: stable vs canary</h2>',
        f"<p>ModelDeployment <code>{e(str(meta.get('namespace')))}/{e(str(meta.get('name')))}</code>. Cost per "
        "million output tokens: each side's GPUs x price per GPU hour over the output tokens/s its pods generated "
        "during the canary's current step (comparable when each side's replicas follow its traffic share).</p>",
        "<table><thead><tr><th>Role</th><th>Revision</th><th>Traffic</th><th>GPUs</th><th>$/month</th>"
        "<th>Output tokens/s</th><th>$/M output tokens</th></tr></thead><tbody>",
    ]
    for role in ("stable", "canary"):
        rev, side = status.get(role), cost.get(role)
        if not rev or not side:
            continue
        out.append(
            f'<tr data-role="{role}"><td>{role}</td><td><code>{e(str(rev.get("revision", "")))}</code></td>'
            f'<td class="num">{e(str(rev.get("weight", 0)))}%</td><td class="num">{e(str(side.get("gpus", "-")))}</td>'
            f'<td class="num">{e(fmt_number(side.get("usd"), 2))}</td>'
            f'<td class="num">{e(fmt_number(side.get("outputTokensPerSecond"), 1))}</td>'
            f'<td class="num">{e(fmt_number(side.get("costPerMillionTokens"), 2))}</td></tr>'
        )
    out.append("</tbody></table>")
    if not status.get("canary"):
        out.append("<p>No canary running: the cost per token is measured while one is analysed.</p>")
    out.append("</section>")
    return out


def render_report(
    obj: dict[str, Any],
    metrics: dict[str, TrialMetrics],
    now: datetime | None = None,
    profile: dict[str, Any] | None = None,
    deployment: dict[str, Any] | None = None,
) -> str:
    """A self-contained HTML page: summary, champion, leaderboard, loss curves (all trials, then one SVG
    per trial), judge scores and validation losses as dot plots, per-trial details, and with `profile` a
    ServingProfile's table and chosen configuration, with `deployment` a ModelDeployment's stable vs canary
    cost. No scripts, no external resources."""
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
    out += baseline_section(status)
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
    curves = loss_curves(obj, metrics)
    if curves:
        out.append(
            line_chart_svg(
                curves,
                title="Training loss, all trials",
                x_label="step",
                y_label="loss",
                size=(9.4, 3.75),
                css_class="loss-overview",
            )
        )
        out.append('<div class="grid">')
        for curve in curves:
            t = next(t for t in trials if t.get("name") == curve.name)
            chart = line_chart_svg(
                [curve],
                title=curve.name + (" (champion)" if curve.emphasis else ""),
                x_label="step",
                y_label="loss",
                size=(4.4, 2.5),
                css_class="loss-curve",
                attrs={"data-trial": curve.name},
            )
            out.append(f"<figure>{chart}<figcaption>{e(_param_text(t.get('parameters') or {}))}</figcaption></figure>")
        out.append("</div>")
    else:
        out.append("<p>No loss curves: no trial's metrics.json could be read.</p>")
    found = [(str(t.get("name")), metrics.get(str(t.get("name")))) for _, t in ranked]
    problems = [(n, m.problem) for n, m in found if m is not None and m.problem]
    if problems:
        out.append("<ul>" + "".join(f'<li class="problem">{e(n)}: {e(str(p))}</li>' for n, p in problems) + "</ul>")
    out.append("</section>")
    # Judge scores
    out.append('<section id="judge"><h2>Judge scores</h2>')
    scores = judge_scores(obj, metrics)
    if any(d.value is not None for d in scores):
        out.append(
            dot_chart_svg(
                scores,
                title="Mean judge score (0-5)",
                x_label="judge score",
                domain=(0.0, 5.0),
                css_class="judge-scores",
            )
        )
    else:
        out.append("<p>No judge scores (no evaluation configured, or no trial has finished).</p>")
    out.append("</section>")
    # Validation loss
    out.append('<section id="validation"><h2>Validation loss</h2>')
    losses = validation_losses(obj, metrics)
    if any(d.value is not None for d in losses):
        out.append(
            dot_chart_svg(losses, title="Validation loss after training", x_label="loss", css_class="validation-losses")
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
    if profile is not None:
        out += profile_section(profile)
    if deployment is not None:
        out += serving_cost_section(deployment)
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report_png(obj: dict[str, Any], metrics: dict[str, TrialMetrics], path: Path) -> None:
    """The report's loss curves and judge scores as a PNG."""
    meta = obj.get("metadata") or {}
    champion = _champion(obj)
    title = f"FineTuneJob {meta.get('namespace')}/{meta.get('name')}" + (f"  champion {champion}" if champion else "")
    write_png(path, title=title, curves=loss_curves(obj, metrics), scores=judge_scores(obj, metrics))


def _ranked(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The trials best first (the leaderboard's order)."""
    return [t for _, t in rank_trials((obj.get("status") or {}).get("trials") or [], objective_of(obj)[0])]


def _champion(obj: dict[str, Any]) -> str | None:
    """The champion's (or current leader's) trial name."""
    trial = ((obj.get("status") or {}).get("champion") or {}).get("trial")
    return str(trial) if trial else None


def loss_curves(obj: dict[str, Any], metrics: dict[str, TrialMetrics]) -> list[Series]:
    """The training loss of each trial that has one, best first; a trial keeps its color (by plan order)
    in every chart, the champion's line is emphasised."""
    by_plan = sorted((obj.get("status") or {}).get("trials") or [], key=lambda t: int(t.get("index", 0)))
    colors = {str(t.get("name")): f"C{i % 10}" for i, t in enumerate(by_plan)}
    champion = _champion(obj)
    curves = []
    for t in _ranked(obj):
        name = str(t.get("name"))
        m = metrics.get(name)
        if m and m.curve:
            curves.append(Series(name, m.curve, colors[name], name == champion))
    return curves


def judge_scores(obj: dict[str, Any], metrics: dict[str, TrialMetrics]) -> list[Dot]:
    """Each trial's mean judge score +- its standard deviation (from metrics.json), or why it has none."""
    champion = _champion(obj)
    dots = []
    for t in _ranked(obj):
        n = str(t.get("name"))
        doc = (metrics.get(n) or TrialMetrics(None)).doc or {}
        summary = ((doc.get("evaluation") or {}).get("summary")) or {}
        score = numeric(t, "judgeScore")
        std = numeric(summary, "std")
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
        dots.append(Dot(n, score, std, note, n == champion))
    return dots


def validation_losses(obj: dict[str, Any], metrics: dict[str, TrialMetrics]) -> list[Dot]:
    """Each trial's validation loss after training (and before, from metrics.json)."""
    champion = _champion(obj)
    dots = []
    for t in _ranked(obj):
        n = str(t.get("name"))
        doc = (metrics.get(n) or TrialMetrics(None)).doc or {}
        loss = numeric(t, "validationLoss")
        before = numeric(doc, "validationLossBefore")
        note = (
            f"{loss:.4f}" + (f" (from {before:.4f})" if before is not None else "")
            if loss is not None
            else str(t.get("state", "")).lower()
        )
        dots.append(Dot(n, loss, None, note, n == champion))
    return dots
