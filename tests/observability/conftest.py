"""Observability tests (no cluster): the chart's PrometheusRule and Grafana dashboard, checked with
Debian's promtool and the chart rendered by the project's helm. Nothing here is ever skipped: a missing
promtool is an error that says how to install it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from obs_helpers import HelmError

from testworld.cluster import CHART, tool


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: run hack/setup.sh (installs Debian's prometheus package)"
    return path


@pytest.fixture(scope="session")
def render() -> Callable[..., list[dict[str, Any]]]:
    """helm template of the chart with `--set` values: the documents (HelmError when helm refuses)."""
    helm = tool("helm")

    def run(*sets: str, show_only: str | None = None) -> list[dict[str, Any]]:
        args = [helm, "template", "adapterops", str(CHART), "-n", "adapterops-system"]
        for value in sets:
            args += ["--set", value]
        if show_only:
            args += ["--show-only", show_only]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise HelmError(f"helm template {' '.join(sets)} failed: {proc.stderr.strip()}")
        return [d for d in yaml.safe_load_all(proc.stdout) if d]

    return run
