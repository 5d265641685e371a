"""`kubectl adapterops report`: reading each trial's metrics.json (pvc:// under --pvc-root, plain paths)
and the self-contained HTML with its charts (matplotlib, inline SVG), plus the PNG."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure

from adapterops.cli import charts, report
from adapterops.cli.trial_metrics import TrialMetrics, metrics_uri, pvc_root, read_trial_metrics

NOW = datetime(2026, 11, 25, 22, 0, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def write_metrics(root: Path, trial: str, losses: list[float], **extra: Any) -> str:
    """A trial output folder as the trial runner writes it; returns the adapter's pvc:// URI."""
    out = root / "work" / "adapters" / "sweep-1a2b3c4d" / trial
    (out / "adapter").mkdir(parents=True)
    doc = {
        "trial": trial,
        "lossCurve": [{"step": float(i + 1), "loss": loss, "gradNorm": 0.3} for i, loss in enumerate(losses)],
        "trainLoss": sum(losses) / len(losses),
        "validationLossBefore": 2.5,
        "validationLoss": losses[-1] + 0.05,
        "steps": len(losses),
        "evaluation": {"summary": {"status": "ok", "mean": 4.0, "std": 0.5, "samples": 48, "requested": 48}},
        "timings": {"phases": {"train": 12.5}},
        "backend": {"requested": "hf", "used": "hf"},
        **extra,
    }
    (out / "metrics.json").write_text(json.dumps(doc))
    return f"pvc://work/adapters/sweep-1a2b3c4d/{trial}/adapter"


@pytest.fixture
def sweep(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    root = tmp_path / "pvcs"
    trials = [
        {
            "name": "sweep-t00",
            "index": 0,
            "parameters": {"training.learningRate": 5e-4},
            "state": "Succeeded",
            "attempts": 1,
            "validationLoss": 2.15,
            "judgeScore": 3.8,
            "adapterUri": write_metrics(root, "sweep-t00", [2.4, 2.3, 2.2, 2.1]),
        },
        {
            "name": "sweep-t01",
            "index": 1,
            "parameters": {"training.learningRate": 2e-3},
            "state": "Succeeded",
            "attempts": 1,
            "validationLoss": 1.95,
            "judgeScore": 4.2,
            "adapterUri": write_metrics(root, "sweep-t01", [2.4, 2.1, 1.95, 1.9]),
        },
        {
            "name": "sweep-t02",
            "index": 2,
            "parameters": {"training.learningRate": 1e-2},
            "state": "Failed",
            "attempts": 2,
            "message": "OutOfMemory: <CUDA> out of memory & more",
        },
        {  # its storage is gone: the report says so and goes on
            "name": "sweep-t03",
            "index": 3,
            "parameters": {"training.learningRate": 5e-3},
            "state": "Succeeded",
            "attempts": 1,
            "validationLoss": 2.0,
            "judgeScore": 4.0,
            "adapterUri": "pvc://work/adapters/sweep-1a2b3c4d/sweep-t03/adapter",
        },
    ]
    obj = {
        "metadata": {"name": "sweep", "namespace": "ml", "resourceVersion": "4242"},
        "spec": {"method": "sft", "baseModel": {"name": "nemotron-nano-8b"}, "objective": {"metric": "judgeScore"}},
        "status": {
            "state": "Succeeded",
            "progress": "4/4",
            "trials": trials,
            "champion": {
                "trial": "sweep-t01",
                "adapterUri": trials[1]["adapterUri"],
                "parameters": {"training.learningRate": 2e-3},
                "judgeScore": 4.2,
                "validationLoss": 1.95,
            },
        },
    }
    return obj, root


def read(obj: dict[str, Any], root: Path) -> dict[str, TrialMetrics]:
    with pvc_root(str(root)):
        return read_trial_metrics(obj["status"]["trials"])


def svg_elements(page: str) -> list[ET.Element]:
    return [ET.fromstring(svg) for svg in re.findall(r"<svg.*?</svg>", page, re.S)]


def group(svg: ET.Element, gid: str) -> ET.Element:
    found = svg.find(f".//{SVG}g[@id='{gid}']")
    assert found is not None, f"no group {gid}"
    return found


def path_points(el: ET.Element) -> list[tuple[float, float]]:
    """The vertices of the element's first path (matplotlib writes lines as `M x y L x y ...`)."""
    path = el.find(f".//{SVG}path")
    assert path is not None
    numbers = [float(t) for t in (path.get("d") or "").split() if t not in ("M", "L", "z")]
    return list(zip(numbers[::2], numbers[1::2], strict=True))


def texts(svg: ET.Element) -> list[str]:
    return [t.text or "" for t in svg.iter(f"{SVG}text")]


def test_metrics_json_lies_next_to_the_adapter() -> None:
    assert metrics_uri({"adapterUri": "s3://bucket/out/job-1/t00/adapter/"}) == "s3://bucket/out/job-1/t00/metrics.json"
    assert metrics_uri({"adapterUri": "/data/out/t00/adapter"}) == "/data/out/t00/metrics.json"
    assert metrics_uri({"state": "Failed"}) is None


def test_pvc_root_maps_claims_and_is_restored(sweep: tuple[dict[str, Any], Path]) -> None:
    obj, root = sweep
    before = os.environ.get("ADAPTEROPS_PVC_ROOT")
    metrics = read(obj, root)
    assert os.environ.get("ADAPTEROPS_PVC_ROOT") == before
    assert metrics["sweep-t01"].curve == [(1.0, 2.4), (2.0, 2.1), (3.0, 1.95), (4.0, 1.9)]
    assert metrics["sweep-t01"].problem is None and metrics["sweep-t01"].doc
    assert metrics["sweep-t02"].uri is None and metrics["sweep-t02"].problem is None  # failed: nothing was written
    assert metrics["sweep-t03"].problem and "sweep-t03/metrics.json" in metrics["sweep-t03"].problem
    assert "no such file" in metrics["sweep-t03"].problem


def test_a_local_path_and_bad_json_are_handled(tmp_path: Path) -> None:
    (tmp_path / "t" / "adapter").mkdir(parents=True)
    (tmp_path / "t" / "metrics.json").write_text("{not json")
    metrics = read_trial_metrics([{"name": "t", "state": "Succeeded", "adapterUri": str(tmp_path / "t" / "adapter")}])
    assert metrics["t"].problem and "JSONDecodeError" in metrics["t"].problem
    no_uri = read_trial_metrics([{"name": "u", "state": "Succeeded"}])
    assert no_uri["u"].problem == "no adapterUri in the status"


def test_the_report_is_self_contained_with_an_svg_per_loss_curve(sweep: tuple[dict[str, Any], Path]) -> None:
    obj, root = sweep
    page = report.render_report(obj, read(obj, root), NOW)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # XML namespace names are identifiers, never fetched
    assert not re.search(r'<script|<link|src=|(?<!xmlns=")(?<!xmlns:xlink=")https?://', page), "it must open offline"
    for name in ("sweep-t00", "sweep-t01", "sweep-t02", "sweep-t03"):
        assert name in page
    curves = re.findall(r'<svg[^>]*class="loss-curve"[^>]*data-trial="([^"]+)"', page)
    assert curves == ["sweep-t01", "sweep-t00"], "one SVG per trial with a loss curve, best first"
    assert 'class="loss-overview"' in page and 'class="judge-scores"' in page and 'class="validation-losses"' in page
    assert 'data-champion="sweep-t01"' in page and "Champion: sweep-t01" in page
    assert '<tr class="champion" data-trial="sweep-t01">' in page
    assert "OutOfMemory: &lt;CUDA&gt; out of memory &amp; more" in page, "text is escaped"
    assert "cannot read pvc://work/adapters/sweep-1a2b3c4d/sweep-t03/metrics.json" in page
    assert "4.20 \u00b1 0.50 (n=48)" in page and "1.9500 (from 2.5000)" in page
    assert "resourceVersion 4242" in page and "2026-11-25 22:00:00Z" in page


def test_every_svg_is_well_formed_and_draws_inside_its_frame(sweep: tuple[dict[str, Any], Path]) -> None:
    obj, root = sweep
    svgs = svg_elements(report.render_report(obj, read(obj, root), NOW))
    assert [s.get("class") for s in svgs] == [
        "loss-overview",
        "loss-curve",
        "loss-curve",
        "judge-scores",
        "validation-losses",
    ]
    for svg in svgs:
        _, _, width, height = map(float, (svg.get("viewBox") or "").split())
        drawn = [g for g in svg.iter(f"{SVG}g") if (g.get("id") or "").startswith(f"{svg.get('class')}-")]
        assert drawn, "every chart draws its series"
        for g in drawn:
            points = path_points(g) if g.find(f"{SVG}path") is not None else []
            points += [(float(u.get("x", -1)), float(u.get("y", -1))) for u in g.iter(f"{SVG}use")]
            assert points and all(0 <= x <= width and 0 <= y <= height for x, y in points)


def test_the_loss_charts_have_one_series_per_trial_labelled_axes_and_the_champion_emphasised(
    sweep: tuple[dict[str, Any], Path],
) -> None:
    obj, root = sweep
    overview, t01, t00, *_ = svg_elements(report.render_report(obj, read(obj, root), NOW))
    series = [g.get("id") for g in overview.iter(f"{SVG}g") if (g.get("id") or "").startswith("loss-overview-")]
    assert sorted(series) == ["loss-overview-sweep-t00", "loss-overview-sweep-t01"]
    assert {"step", "loss", "Training loss, all trials", "sweep-t01", "sweep-t00"} <= set(texts(overview))
    widths = {
        gid: re.search(r"stroke-width: ([\d.]+)", group(overview, gid)[0].get("style") or "")
        for gid in ("loss-overview-sweep-t01", "loss-overview-sweep-t00")
    }
    assert {gid: m and float(m.group(1)) for gid, m in widths.items()} == {
        "loss-overview-sweep-t01": 3.0,
        "loss-overview-sweep-t00": 1.5,
    }
    assert t01.get("data-trial") == "sweep-t01" and "sweep-t01 (champion)" in texts(t01)
    assert {"step", "loss"} <= set(texts(t00))
    assert len(list(group(t00, "loss-curve-sweep-t00").iter(f"{SVG}use"))) == 4, "a dot per logged step"


def test_a_loss_curve_goes_down_on_the_page_as_the_loss_falls() -> None:
    svg = charts.line_chart_svg(
        [charts.Series("t", [(1, 3.0), (2, 2.0), (3, 1.0)], "C0")],
        title="loss",
        x_label="step",
        y_label="loss",
        size=(4, 3),
        css_class="chart",
    )
    points = path_points(group(ET.fromstring(svg), "chart-t"))
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    assert len(points) == 3
    assert xs == sorted(xs) and ys == sorted(ys), "x grows to the right, a falling loss moves down (svg y grows)"


def test_charts_without_data_say_so() -> None:
    empty = charts.line_chart_svg([], title="t", x_label="x", y_label="y", size=(4, 3), css_class="c")
    assert "no data" in texts(ET.fromstring(empty))
    svg = charts.dot_chart_svg([charts.Dot("t00", None, note="failed")], title="t", x_label="x", css_class="c")
    assert "failed" in texts(ET.fromstring(svg))


def test_a_sweep_without_results_still_renders() -> None:
    obj = {"metadata": {"name": "new", "namespace": "ml"}, "spec": {}, "status": {}}
    page = report.render_report(obj, {}, NOW)
    assert "No champion yet." in page and "No loss curves" in page and "No judge scores" in page


def drawn(draw: Any, *args: Any, **kwargs: Any) -> Any:
    """The axes `draw` drew on, with its ticks resolved as when the figure is saved."""
    fig = Figure()
    ax = fig.subplots()
    draw(ax, *args, **kwargs)
    fig.draw_without_rendering()
    return ax


@pytest.mark.parametrize("last_step", [3, 12, 1000])
def test_training_steps_get_whole_number_ticks(last_step: int) -> None:
    points = [(float(step), 2.0 - step / last_step) for step in range(1, last_step + 1)]
    ax = drawn(charts.draw_lines, [charts.Series("t", points, "C0")], title="", x_label="", y_label="", ids="c")
    assert len(ax.get_xticks()) >= 3 and all(float(t).is_integer() for t in ax.get_xticks())


def test_the_judge_axis_spans_the_0_to_5_scale() -> None:
    dots = [charts.Dot("a", 3.9), charts.Dot("b", 4.3, spread=0.5)]
    ax = drawn(charts.draw_dots, dots, title="", x_label="", domain=(0.0, 5.0), ids="c")
    assert ax.get_xlim() == (0.0, 5.0)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "3", "4", "5"]


@pytest.mark.parametrize(("low", "high"), [(6.9015, 6.9455), (1000.01, 1000.05)])
def test_tick_labels_print_the_values_without_an_offset(low: float, high: float) -> None:
    ax = drawn(
        charts.draw_dots, [charts.Dot("a", low), charts.Dot("b", high)], title="", x_label="", domain=None, ids="c"
    )
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert ax.xaxis.get_offset_text().get_text() == ""
    assert all(re.fullmatch(rf"{int(low)}\.\d+", label) for label in labels), labels
    ax = drawn(
        charts.draw_lines, [charts.Series("t", [(1, low), (2, high)], "C0")], title="", x_label="", y_label="", ids="c"
    )
    assert ax.yaxis.get_offset_text().get_text() == ""


def test_png_with_matplotlib(sweep: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    obj, root = sweep
    report.write_report_png(obj, read(obj, root), tmp_path / "report.png")
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_report_sets_stable_and_canary_cost_per_million_tokens_side_by_side() -> None:
    sweep = {"metadata": {"name": "new", "namespace": "ml"}, "spec": {}, "status": {}}
    revision = {"engine": "nim", "image": "nim:1.8", "tensorParallelSize": 1, "gpuType": "H100"}
    deployment = {
        "metadata": {"name": "agent", "namespace": "ml"},
        "status": {
            "stable": {**revision, "revision": "3e7aeb8f6e", "weight": 75},
            "canary": {**revision, "revision": "34133c8287", "weight": 25},
            "estimatedMonthlyCost": {
                "stable": {"gpus": 3, "usd": 8760.0, "outputTokensPerSecond": 1500.0, "costPerMillionTokens": 2.22},
                "canary": {"gpus": 1, "usd": 2920.0, "outputTokensPerSecond": 400.0, "costPerMillionTokens": 2.78},
                "totalUsd": 11680.0,
            },
        },
    }
    page = report.render_report(sweep, {}, NOW, deployment=deployment)
    rows = dict(re.findall(r'<tr data-role="(\w+)">(.*?)</tr>', page))
    assert set(rows) == {"stable", "canary"}
    cells = {role: re.findall(r'<td class="num">([^<]*)</td>', row) for role, row in rows.items()}
    assert cells["stable"] == ["75%", "3", "8760.00", "1500.0", "2.22"]
    assert cells["canary"] == ["25%", "1", "2920.00", "400.0", "2.78"]
    assert "No canary running" not in page
    at_rest = {"metadata": deployment["metadata"], "status": {"stable": deployment["status"]["stable"]}}
    assert "No canary running" in report.render_report(sweep, {}, NOW, deployment=at_rest)
