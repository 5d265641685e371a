"""The Grafana dashboard shipped in the chart: valid JSON in Grafana's dashboard model, every panel's
PromQL parsed by promtool (as recording rules, promtool having no parse-only command), only metrics and
labels the operator exports, every exported metric shown, and the value-gated ConfigMap for Grafana's sidecar."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from obs_helpers import DASHBOARD_FILE, check_references, exported_metrics, references, run_promtool

Render = Callable[..., list[dict[str, Any]]]
TEMPLATE = "templates/dashboard-configmap.yaml"
# Grafana's built-in variables, as promtool must see them; dashboard variables are label values (regexes).
DURATIONS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD_FILE.read_text()))


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out += p.get("panels", [])  # collapsed rows hold their panels
    return out


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and of every query variable (label_values(selector, label))."""
    out = [
        (f"panel {p['id']} {p['title']!r} target {t['refId']}", t["expr"])
        for p in panels(dashboard)
        for t in p.get("targets", [])
    ]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"]["query"])
            assert m, f"variable {var['name']}: unexpected query {var['query']['query']!r}"
            out.append((f"variable {var['name']}", m.group(1)))
    return out


def substitute(expr: str) -> str:
    def one(m: re.Match[str]) -> str:
        return DURATIONS.get(m.group(1), ".*")

    return re.sub(r"\$\{?(\w+)(?::\w+)?\}?", one, expr)


def test_the_dashboard_is_a_grafana_dashboard(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "adapterops" and dashboard["title"] == "AdapterOps"
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace", "finetunejob", "modeldeployment"} <= names
    for p in panels(dashboard):
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["title"] and p.get("description"), f"panel {p['id']} needs a title and a description"
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"] and t["expr"].strip(), p["title"]


def test_panels_cover_sweeps_canaries_and_serving_profiles(dashboard: dict[str, Any]) -> None:
    text = {p["title"]: " ".join(t["expr"] for t in p.get("targets", [])) for p in panels(dashboard)}
    wanted = {
        "Trials by state": "adapterops_trials",
        "Champion vs base model per sweep": "adapterops_champion_score",
        "Canary traffic weight": "adapterops_canary_weight_percent",
        "Latency: stable vs canary": 'adapterops_analysis_value{metric="latency"',
        "Judge score: stable vs canary": 'adapterops_analysis_value{metric="judge"',
        "Analysis verdicts (active canaries)": "adapterops_analysis_verdict",
        "Analysis thresholds": "adapterops_analysis_threshold",
        "Estimated monthly GPU cost": "adapterops_estimated_monthly_cost_usd",
        "Cost per million output tokens: stable vs canary": "adapterops_cost_per_million_tokens_usd",
        "Serving profile table": "adapterops_profile_candidate",
        "Chosen configuration": "adapterops_profile_chosen",
    }
    for title, needle in wanted.items():
        assert needle in text.get(title, ""), f"panel {title!r} should query {needle}"
    champion_vs_base = text["Champion vs base model per sweep"]
    assert "adapterops_baseline_score" in champion_vs_base and "adapterops_champion_win_rate" in champion_vs_base
    for title in ("Latency: stable vs canary", "Judge score: stable vs canary"):
        assert "by (modeldeployment, role)" in text[title] and "adapterops_analysis_threshold" in text[title]


def test_every_query_parses_in_promtool(promtool: str, dashboard: dict[str, Any], tmp_path: Path) -> None:
    rules = [
        {"record": f"adapterops:dashboard_query:{i}", "expr": substitute(expr)}
        for i, (_, expr) in enumerate(queries(dashboard))
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = run_promtool(promtool, "check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules)} rules found" in proc.stdout


def test_the_parse_check_catches_a_broken_query(promtool: str, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    rule = {"record": "adapterops:dashboard_query:0", "expr": "sum by (role (adapterops_analysis_value)"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [rule]}]}))
    assert run_promtool(promtool, "check", "rules", str(path)).returncode != 0


def test_queries_use_only_exported_metrics_and_labels(dashboard: dict[str, Any]) -> None:
    problems = [p for where, expr in queries(dashboard) for p in check_references(expr, where)]
    assert not problems, "\n".join(problems)


def test_every_exported_metric_is_on_the_dashboard(dashboard: dict[str, Any]) -> None:
    shown = set().union(*(references(expr)[0] for _, expr in queries(dashboard)))
    families = {re.sub(r"_(total|created|bucket|sum|count)$", "", n) for n in exported_metrics() if n != "up"}
    missing = {f for f in families if not any(s == f or s.startswith(f + "_") for s in shown)}
    assert not missing, f"metrics.py exports {sorted(missing)} but no dashboard panel shows them"


def test_the_reference_check_catches_typos() -> None:
    assert check_references('sum by (modeldeployments) (adapterops_canary_weight_percent{namespace="x"})', "t")
    assert check_references("adapterops_trial_count", "t")
    assert not check_references('sum by (role) (adapterops_analysis_value{metric="judge"})', "t")


def test_the_configmap_is_off_by_default_and_carries_the_dashboard(render: Render) -> None:
    assert not [d for d in render() if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]
    (cm,) = render(
        "metrics.grafanaDashboard.enabled=true",
        "metrics.grafanaDashboard.namespace=monitoring",
        "metrics.grafanaDashboard.annotations.grafana_folder=AdapterOps",
        show_only=TEMPLATE,
    )
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "AdapterOps"}
    assert json.loads(cm["data"]["adapterops.json"]) == json.loads(DASHBOARD_FILE.read_text())
    (cm,) = render("metrics.grafanaDashboard.enabled=true", show_only=TEMPLATE)
    assert cm["metadata"]["namespace"] == "adapterops-system"
