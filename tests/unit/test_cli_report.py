"""`kubectl adapterops report`: reading each trial's metrics.json (pvc:// under --pvc-root, plain paths)
and the self-contained HTML with inline SVG charts (pure Python), plus the optional PNG."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapterops.cli import main as cli

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


def read(obj: dict[str, Any], root: Path) -> dict[str, cli.TrialMetrics]:
    with cli.pvc_root(str(root)):
        return cli.read_trial_metrics(obj["status"]["trials"])


def test_metrics_json_lies_next_to_the_adapter() -> None:
    assert (
        cli.metrics_uri({"adapterUri": "s3://bucket/out/job-1/t00/adapter/"})
        == "s3://bucket/out/job-1/t00/metrics.json"
    )
    assert cli.metrics_uri({"adapterUri": "/data/out/t00/adapter"}) == "/data/out/t00/metrics.json"
    assert cli.metrics_uri({"state": "Failed"}) is None


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
    metrics = cli.read_trial_metrics(
        [{"name": "t", "state": "Succeeded", "adapterUri": str(tmp_path / "t" / "adapter")}]
    )
    assert metrics["t"].problem and "JSONDecodeError" in metrics["t"].problem
    no_uri = cli.read_trial_metrics([{"name": "u", "state": "Succeeded"}])
    assert no_uri["u"].problem == "no adapterUri in the status"


def test_the_report_is_self_contained_with_an_svg_per_loss_curve(sweep: tuple[dict[str, Any], Path]) -> None:
    obj, root = sweep
    page = cli.render_report(obj, read(obj, root), NOW)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"<script|<link|src=|(?<!xmlns=\")https?://", page), "the report must open offline"
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
    page = cli.render_report(obj, read(obj, root), NOW)
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 5  # overview, two trials, judge scores, validation losses
    for svg in svgs:
        el = ET.fromstring(svg)
        width, height = float(el.get("width", 0)), float(el.get("height", 0))
        for line in el.iter(f"{SVG}polyline"):
            for point in (line.get("points") or "").split():
                x, y = map(float, point.split(","))
                assert 0 <= x <= width and 0 <= y <= height
        for circle in el.iter(f"{SVG}circle"):
            assert 0 <= float(circle.get("cx", -1)) <= width and 0 <= float(circle.get("cy", -1)) <= height


def test_a_loss_curve_goes_down_on_the_page_as_the_loss_falls() -> None:
    svg = cli.svg_line_chart(
        [cli.Series("t", [(1, 3.0), (2, 2.0), (3, 1.0)], "#000")], title="loss", x_label="step", y_label="loss"
    )
    line = ET.fromstring(svg).find(f"{SVG}polyline")
    assert line is not None
    points = [tuple(map(float, p.split(","))) for p in (line.get("points") or "").split()]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    assert xs == sorted(xs) and ys == sorted(ys), "x grows to the right, a falling loss moves down (svg y grows)"


def test_charts_without_data_say_so() -> None:
    assert "no data" in cli.svg_line_chart([], title="t", x_label="x", y_label="y")
    svg = cli.svg_dot_chart([cli.Dot("t00", None, note="failed")], title="t", x_label="x")
    ET.fromstring(svg)
    assert "failed" in svg


def test_a_sweep_without_results_still_renders() -> None:
    obj = {"metadata": {"name": "new", "namespace": "ml"}, "spec": {}, "status": {}}
    page = cli.render_report(obj, {}, NOW)
    assert "No champion yet." in page and "No loss curves" in page and "No judge scores" in page


@pytest.mark.parametrize(
    ("lo", "hi", "ticks"),
    [
        (0.0, 5.0, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
        (1.9, 2.4, [1.9, 2.0, 2.1, 2.2, 2.3, 2.4]),
        (1.0, 3.0, [1.0, 1.5, 2.0, 2.5, 3.0]),
        (6.9015, 6.9455, [6.9, 6.91, 6.92, 6.93, 6.94, 6.95]),
        (3.0, 3.0, [2.6, 2.8, 3.0, 3.2, 3.4]),
        (0.0, 0.0, [-1.0, -0.5, 0.0, 0.5, 1.0]),
    ],
)
def test_nice_ticks(lo: float, hi: float, ticks: list[float]) -> None:
    assert cli.nice_ticks(lo, hi) == pytest.approx(ticks)


def test_integer_ticks_for_training_steps() -> None:
    assert cli.nice_ticks(1, 3, integer=True) == [1.0, 2.0, 3.0]
    assert cli.nice_ticks(0, 12, integer=True) == [0.0, 3.0, 6.0, 9.0, 12.0]
    assert cli.nice_ticks(0, 1000, integer=True) == [0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]


def test_tick_labels_have_the_decimals_the_step_needs() -> None:
    assert [cli.fmt_tick(t, [0.0, 0.25]) for t in (0.0, 0.25)] == ["0.00", "0.25"]
    assert cli.fmt_tick(6.91, [6.9, 6.91]) == "6.91"
    assert cli.fmt_tick(200.0, [0.0, 100.0]) == "200"


def test_png_with_matplotlib(sweep: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    obj, root = sweep
    cli.write_png(obj, read(obj, root), tmp_path / "report.png")
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
