"""Fixtures of the chaos tests (the cluster's own are in tests/conftest.py): the operator as the chart runs
it, two replicas, and the figures the suite measured, printed at the end and kept in
.tools/logs/chaos-figures.json."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from chaos_helpers import FIGURES

from testworld.cluster import LOGS, LocalCluster, OperatorProcess, wait_for


@pytest.fixture
def replicas(cluster: LocalCluster, chart: str, operator: OperatorProcess) -> Iterator[list[OperatorProcess]]:
    """The session's operator and a second replica of the chart's Deployment (its own pod name, so its own
    identity in the Lease): one leads, the other stands by. Afterwards the session's operator runs again,
    alone, and leads (the second one gives the Lease up as it stops)."""
    second = OperatorProcess(cluster, namespace=chart, replica="b", image=operator.image).start()
    try:
        yield [operator, second]
    finally:
        if not operator.running:
            operator.start()
        second.stop()
        wait_for(lambda: operator.role() == "leader", 60, "the session's operator to lead again")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("chaos: recovery figures")
    for row in FIGURES:
        extra = ", ".join(f"{k}={v}" for k, v in row.items() if k not in ("case", "what", "value", "unit"))
        value = f"{row['value']:.1f}{row['unit']}"
        terminalreporter.write_line(f"{row['case']:<36} {row['what']:<52} {value:>9}  {extra}")
    LOGS.mkdir(parents=True, exist_ok=True)
    (LOGS / "chaos-figures.json").write_text(json.dumps(FIGURES, indent=2) + "\n")
