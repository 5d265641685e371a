"""The sweep report's charts, drawn by matplotlib: SVG inline in the HTML page, and the optional PNG.

matplotlib is the `cli` extra and is imported only here, when a chart is drawn, so that the other
commands work without it. Figures are built without pyplot: no global state, no GUI backend.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from adapterops.cli.errors import CliError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INSTALL_HINT = "pip install 'adapterops[cli]'"
CHAMPION_COLOR, OTHER_COLOR = "C3", "C0"  # red and blue of matplotlib's default cycle
MARKED_POINTS = 40  # curves with at most this many points get a dot per logged step
# matplotlib numbers its unnamed groups per figure (figure_1, axes_1, ...): several figures inline in one
# page would repeat those ids. Named groups (series, `<chart>-<name>`) contain a '-' and are kept.
NUMBERED_GROUP = re.compile(r'<g id="[A-Za-z0-9_.]+_\d+">')


@dataclass(frozen=True)
class Series:
    """A line of (x, y) points, e.g. a trial's training loss by step."""

    name: str
    points: list[tuple[float, float]]
    color: str  # a matplotlib color
    emphasis: bool = False


@dataclass(frozen=True)
class Dot:
    """A row of a dot chart: a value with an optional +- spread, and the note printed right of it."""

    label: str
    value: float | None
    spread: float | None = None
    note: str = ""
    emphasis: bool = False


def require_matplotlib() -> None:
    """Fail with the fix where matplotlib is not installed (before any work is done)."""
    try:
        import matplotlib.figure  # noqa: F401 (only whether it imports)
    except ImportError as exc:
        raise CliError(
            f"the report draws its charts with matplotlib, which is not importable here ({exc}): {INSTALL_HINT}"
        ) from exc


@contextmanager
def _figure(width: float, height: float) -> Iterator[Figure]:
    """A figure of that size in inches; text stays text in SVG (searchable, small, the page's font)."""
    require_matplotlib()
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9, "axes.titlesize": 10}):
        yield Figure(figsize=(width, height), layout="constrained")


def _inline_svg(fig: Figure, label: str, attrs: dict[str, str]) -> str:
    """The figure as an <svg> element for an HTML page: no XML prolog, no metadata (it links to
    matplotlib's site; the page links nowhere), `attrs` on the root element."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    svg = buf.getvalue()
    svg = NUMBERED_GROUP.sub("<g>", svg[svg.index("<svg") :])
    root = "".join(f' {k}="{escape(v)}"' for k, v in {**attrs, "role": "img", "aria-label": label}.items())
    return "<svg" + root + svg[len("<svg") :]


def line_chart_svg(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    size: tuple[float, float],
    css_class: str,
    attrs: dict[str, str] | None = None,
) -> str:
    """A line chart; each series' group has the id `<css_class>-<name>`."""
    with _figure(*size) as fig:
        draw_lines(fig.subplots(), series, title=title, x_label=x_label, y_label=y_label, ids=css_class)
        return _inline_svg(fig, title, {"class": css_class, **(attrs or {})})


def dot_chart_svg(
    dots: Sequence[Dot], *, title: str, x_label: str, css_class: str, domain: tuple[float, float] | None = None
) -> str:
    """A dot chart, a row per dot; each dot's group has the id `<css_class>-<label>`."""
    with _figure(7.9, 0.9 + 0.25 * max(len(dots), 1)) as fig:
        draw_dots(fig.subplots(), dots, title=title, x_label=x_label, domain=domain, ids=css_class)
        return _inline_svg(fig, title, {"class": css_class})


def write_png(path: Path, *, title: str, curves: Sequence[Series], scores: Sequence[Dot]) -> None:
    """The loss curves and the judge scores side by side, drawn as in the HTML report."""
    with _figure(13, 5) as fig:
        left, right = fig.subplots(1, 2)
        draw_lines(left, curves, title="Training loss", x_label="step", y_label="loss", ids="loss")
        draw_dots(right, scores, title="Mean judge score (0-5)", x_label="judge score", domain=(0.0, 5.0), ids="judge")
        fig.suptitle(title)
        fig.savefig(path, format="png", dpi=120)


def draw_lines(ax: Axes, series: Sequence[Series], *, title: str, x_label: str, y_label: str, ids: str) -> None:
    """One line per series, the emphasised one thicker and on top; a dot per point on short curves;
    whole-number ticks when x is whole (training steps); a legend on the right when there are several."""
    from matplotlib.ticker import MaxNLocator

    ax.set(title=title, xlabel=x_label, ylabel=y_label)
    ax.ticklabel_format(useOffset=False)  # ticks print the values (no "+1e3" beside the axis)
    ax.grid(color="0.9")
    drawn = []
    for s in series:
        points = [(x, y) for x, y in s.points if math.isfinite(y)]
        if not points:
            continue
        (line,) = ax.plot(
            [x for x, _ in points],
            [y for _, y in points],
            label=s.name,
            color=s.color,
            linewidth=3 if s.emphasis else 1.5,
            marker="o" if len(points) <= MARKED_POINTS else None,
            markersize=4.5 if s.emphasis else 3.5,
            zorder=3 if s.emphasis else 2,
        )
        line.set_gid(f"{ids}-{s.name}")
        drawn.append(s)
    if not drawn:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="0.6", style="italic")
        return
    if all(float(x).is_integer() for s in drawn for x, _ in s.points):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(drawn) > 1:
        legend = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        for text, s in zip(legend.get_texts(), drawn, strict=True):
            text.set_fontweight("bold" if s.emphasis else "normal")


def draw_dots(
    ax: Axes, dots: Sequence[Dot], *, title: str, x_label: str, domain: tuple[float, float] | None, ids: str
) -> None:
    """A row per dot, first on top: the dot at its value with a +- bar, its note on the right. Compares
    values that are close together without a bar chart's misleading zero baseline."""
    ax.set(title=title, xlabel=x_label)
    ax.ticklabel_format(axis="x", useOffset=False)
    ax.grid(axis="x", color="0.9")
    ax.set_yticks(range(len(dots)), [d.label for d in dots])
    for tick, d in zip(ax.get_yticklabels(), dots, strict=True):
        tick.set_fontweight("bold" if d.emphasis else "normal")
    ax.set_ylim(len(dots) - 0.5, -0.5)
    beside = ax.get_yaxis_transform()  # x in fractions of the axes' width, y in rows
    for row, d in enumerate(dots):
        weight = "bold" if d.emphasis else "normal"
        if d.value is None:
            ax.text(0.01, row, d.note or "no value", transform=beside, va="center", color="0.6", style="italic")
            continue
        color = CHAMPION_COLOR if d.emphasis else OTHER_COLOR
        if d.spread:
            bar = ax.hlines(row, d.value - d.spread, d.value + d.spread, color=color, linewidth=2, alpha=0.5)
            bar.set_gid(f"{ids}-{d.label}-spread")
        (dot,) = ax.plot([d.value], [row], "o", color=color, markersize=7 if d.emphasis else 6)
        dot.set_gid(f"{ids}-{d.label}")
        ax.text(1.01, row, d.note or f"{d.value:.4g}", transform=beside, va="center", fontweight=weight)
    if domain:
        ax.set_xlim(*domain)
