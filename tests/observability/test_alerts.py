"""The chart's alerting rules: rendered from files/prometheus/alerts.yaml (one source of truth), valid for
promtool, every alert exercised by `promtool test rules` (fires when it should, silent when it should
not), annotated and labelled, referring only to metrics the operator exports; the values that tune them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from obs_helpers import HERE, RULES_FILE, HelmError, check_references, load_yaml, run_promtool

from testworld.cluster import CHART

TEMPLATE = "templates/prometheusrule.yaml"
ALERTS = [
    "AdapterOpsTrialsFailing",
    "AdapterOpsSweepStuck",
    "AdapterOpsCanaryRolledBack",
    "AdapterOpsCanaryHoldingOnMissingData",
    "AdapterOpsCanaryStuck",
    "AdapterOpsOperatorDown",
    "AdapterOpsReconcileErrors",
]
Render = Callable[..., list[dict[str, Any]]]


def rule_groups(render: Render, *sets: str) -> list[dict[str, Any]]:
    (doc,) = render("metrics.prometheusRule.enabled=true", *sets, show_only=TEMPLATE)
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    return list(doc["spec"]["groups"])


def alerts_of(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in groups for r in g["rules"]}


@pytest.fixture(scope="module")
def rendered(render: Render, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PrometheusRule's groups as a plain rules file, next to a copy of the promtool test file."""
    out = tmp_path_factory.mktemp("rules")
    (out / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups(render)}, sort_keys=False))
    shutil.copy(HERE / "alerts.test.yaml", out / "alerts.test.yaml")
    return out


def test_the_rule_is_off_by_default(render: Render) -> None:
    assert "PrometheusRule" not in {d["kind"] for d in render()}


def test_rendered_rules_are_the_source_file(render: Render) -> None:
    assert rule_groups(render) == load_yaml(RULES_FILE)["groups"]


def test_promtool_checks_the_rendered_rules_and_the_source_file(promtool: str, rendered: Path) -> None:
    for path in (rendered / "rules.yaml", RULES_FILE):
        proc = run_promtool(promtool, "check", "rules", str(path))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"SUCCESS: {len(ALERTS)} rules found" in proc.stdout


def test_promtool_unit_tests_pass_on_the_rendered_rules(promtool: str, rendered: Path) -> None:
    proc = run_promtool(promtool, "test", "rules", "alerts.test.yaml", cwd=rendered)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_is_tested_firing_and_silent() -> None:
    cases = [c for group in load_yaml(HERE / "alerts.test.yaml")["tests"] for c in group["alert_rule_test"]]
    for alert in ALERTS:
        mine = [c for c in cases if c["alertname"] == alert]
        assert any(c.get("exp_alerts") for c in mine), f"{alert}: no case where it fires"
        assert any(not c.get("exp_alerts") for c in mine), f"{alert}: no case where it stays silent"
    assert {c["alertname"] for c in cases} == set(ALERTS)


@pytest.mark.parametrize("alert", ALERTS)
def test_the_unit_tests_catch_an_alert_that_never_fires(promtool: str, rendered: Path, alert: str) -> None:
    """Mutation check: with the alert's expression replaced by one that is never true, promtool fails."""
    broken = load_yaml(rendered / "rules.yaml")
    for group in broken["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == alert:
                rule["expr"] = "vector(1) == 2"
    (rendered / "rules.yaml").rename(rendered / "good.yaml")
    try:
        (rendered / "rules.yaml").write_text(yaml.safe_dump(broken))
        proc = run_promtool(promtool, "test", "rules", "alerts.test.yaml", cwd=rendered)
    finally:
        (rendered / "good.yaml").replace(rendered / "rules.yaml")
    assert proc.returncode != 0 and f"alertname: {alert}," in proc.stdout + proc.stderr


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    alerts = alerts_of(load_yaml(RULES_FILE)["groups"])
    assert list(alerts) == ALERTS
    docs = (CHART.parents[1] / "docs" / "observability.md").read_text()
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), name
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor == name.lower() and f"### {name}" in docs, f"{name}: no section in docs/observability.md"


def test_rules_refer_only_to_exported_metrics_and_labels() -> None:
    problems = [
        p for name, r in alerts_of(load_yaml(RULES_FILE)["groups"]).items() for p in check_references(r["expr"], name)
    ]
    assert not problems, "\n".join(problems)


def test_the_values_schema_names_exactly_the_alerts() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    rule = schema["properties"]["metrics"]["properties"]["prometheusRule"]
    assert rule["properties"]["alerts"]["propertyNames"]["enum"] == ALERTS


def test_overrides_tune_drop_and_label_alerts(render: Render) -> None:
    groups = rule_groups(
        render,
        "metrics.prometheusRule.alerts.AdapterOpsSweepStuck.for=12h",
        "metrics.prometheusRule.alerts.AdapterOpsCanaryRolledBack.severity=critical",
        "metrics.prometheusRule.alerts.AdapterOpsReconcileErrors.enabled=false",
        "metrics.prometheusRule.alerts.AdapterOpsOperatorDown.labels.pager=oncall",
        "metrics.prometheusRule.additionalRuleLabels.team=ml-platform",
        "metrics.prometheusRule.operatorJob=my-operator",
        "metrics.prometheusRule.labels.release=kube-prometheus-stack",
    )
    alerts = alerts_of(groups)
    source = alerts_of(load_yaml(RULES_FILE)["groups"])
    assert "AdapterOpsReconcileErrors" not in alerts and len(alerts) == len(ALERTS) - 1
    assert alerts["AdapterOpsSweepStuck"]["for"] == "12h"
    assert alerts["AdapterOpsCanaryRolledBack"]["labels"] == {"severity": "critical", "team": "ml-platform"}
    assert alerts["AdapterOpsOperatorDown"]["labels"] == {
        "severity": "critical",
        "team": "ml-platform",
        "pager": "oncall",
    }
    assert alerts["AdapterOpsOperatorDown"]["expr"].strip() == 'absent(up{job=~"my-operator"} == 1)'
    assert 'count(up{job=~"my-operator"} offset 15m)' in alerts["AdapterOpsCanaryRolledBack"]["expr"]
    assert alerts["AdapterOpsTrialsFailing"]["expr"] == source["AdapterOpsTrialsFailing"]["expr"]
    (doc,) = render(
        "metrics.prometheusRule.enabled=true",
        "metrics.prometheusRule.labels.release=kube-prometheus-stack",
        show_only=TEMPLATE,
    )
    assert doc["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert doc["metadata"]["namespace"] == "adapterops-system"


def test_tuned_rules_still_pass_promtool(promtool: str, render: Render, tmp_path: Path) -> None:
    groups = rule_groups(render, "metrics.prometheusRule.alerts.AdapterOpsSweepStuck.for=12h")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    proc = run_promtool(promtool, "check", "rules", str(tmp_path / "rules.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("metrics.prometheusRule.alerts.AdapterOpsTypo.for=1h", "AdapterOpsTypo"),
        ("metrics.prometheusRule.alerts.AdapterOpsSweepStuck.for=six hours", "for"),
        ("metrics.prometheusRule.alerts.AdapterOpsSweepStuck.threshold=3", "threshold"),
        ("metrics.prometheusRule.enabled=yes", "enabled"),
    ],
)
def test_the_schema_refuses_bad_rule_values(render: Render, setting: str, message: str) -> None:
    with pytest.raises(HelmError, match=message):
        render("metrics.prometheusRule.enabled=true", setting, show_only=TEMPLATE)
