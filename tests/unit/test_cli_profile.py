"""`kubectl adapterops profile` and the report's serving-profile section: the table of every candidate,
the chosen configuration marked, and why each other one lost."""

from __future__ import annotations

import io
import re
from typing import Any

from adapterops.cli import commands
from adapterops.cli.profile import format_profile, profile_section
from adapterops.cli.report import render_report


def candidate(name: str, tp: int, gpu: str, p95: float, chosen: bool, reason: str) -> dict[str, Any]:
    return {
        "name": name,
        "engine": "nim",
        "tensorParallelSize": tp,
        "gpuType": gpu,
        "image": "nvcr.io/nim/x:1.8",
        "revision": name,
        "state": "Measured",
        "p50Seconds": p95 / 1.5,
        "p95Seconds": p95,
        "meanSeconds": p95 / 1.4,
        "ttftSeconds": p95 / 14,
        "outputTokensPerSecond": 500.0,
        "requestsPerSecond": 10.0,
        "errorPercent": 0.0,
        "costPerHour": {"H100": 4.5, "B200": 7.8}[gpu] * tp,
        "costPerMillionTokens": {"H100": 4.5, "B200": 7.8}[gpu] * tp / 1.8,
        "meetsSlo": p95 <= 2.0,
        "chosen": chosen,
        "reason": reason,
    }


PROFILE = {
    "kind": "ServingProfile",
    "metadata": {"name": "tp-gpu", "namespace": "serving"},
    "status": {
        "state": "Succeeded",
        "progress": "2/2",
        "slo": "p95 <= 2s, errors <= 1% at 10 req/s for 60s",
        "candidates": [
            candidate("nim-tp1-h100", 1, "H100", 1.8, True, "cheapest meeting the SLO: $2.5 per million output tokens"),
            candidate("nim-tp4-b200", 4, "B200", 2.4, False, "misses the SLO: p95 2.4s > 2s"),
        ],
        "choice": {
            "candidate": "nim-tp1-h100",
            "engine": "nim",
            "tensorParallelSize": 1,
            "gpuType": "H100",
            "costPerHour": 4.5,
            "reason": "cheapest meeting the SLO: $2.5 per million output tokens",
        },
    },
}


def test_the_profile_view_marks_the_choice_and_says_why_the_others_lost() -> None:
    text = format_profile(PROFILE)
    assert text.startswith("ServingProfile serving/tp-gpu: Succeeded, 2/2 candidates measured")
    assert re.search(r"^\* nim-tp1-h100 +Measured +1\.2s +1\.8s ", text, re.M), text
    assert re.search(r"^  nim-tp4-b200 .* 31\.2 .* missed$", text, re.M), text
    assert "* chosen: nim-tp1-h100 (TP 1 on H100): cheapest meeting the SLO" in text
    assert "  nim-tp4-b200: misses the SLO: p95 2.4s > 2s" in text


def test_the_profile_command_reads_the_servingprofile() -> None:
    class Api:
        def get(self, kind: Any, namespace: str, name: str) -> dict[str, Any] | None:
            return PROFILE if (kind.kind, namespace, name) == ("ServingProfile", "serving", "tp-gpu") else None

    args = commands.parser().parse_args(["profile", "tp-gpu"])
    out = io.StringIO()
    assert commands.COMMANDS["profile"](Api(), "serving", args, out) == 0  # type: ignore[arg-type]
    assert "* chosen: nim-tp1-h100" in out.getvalue()


def test_the_report_carries_the_profile_table_with_the_chosen_configuration() -> None:
    section = "\n".join(profile_section(PROFILE))
    assert 'data-choice="nim-tp1-h100"' in section and "Chosen configuration: nim, TP 1 on H100" in section
    assert '<tr class="champion" data-candidate="nim-tp1-h100">' in section
    assert '<tr data-candidate="nim-tp4-b200">' in section and "misses the SLO: p95 2.4s &gt; 2s" in section
    sweep = {"metadata": {"name": "s", "namespace": "serving"}, "spec": {}, "status": {}}
    page = render_report(sweep, {}, profile=PROFILE)
    assert '<section id="serving-profile">' in page and page.rstrip().endswith("</html>")
    assert '<section id="serving-profile">' not in render_report(sweep, {})
