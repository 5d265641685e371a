"""The canary under the Prometheus Operator: the chart's serving PodMonitor, turned into scrape jobs as the
Prometheus Operator turns it (testworld/prometheus_operator.py, rule for rule from its source), scraped by
a real Prometheus. Its series carry the labels the operator sets (namespace, pod, container, job, endpoint,
and the revision from podTargetLabels), not the annotation path's `labelmap` of every pod label, and the
canary reaches its verdicts on them: a good change on NIM 1.x promoted, failing requests on vLLM rolled
back (the two engines serve metrics on different paths)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from test_engine_fidelity import short_canary
from test_modeldeployment_e2e import change, fake_adapter, mdep, serving_ready
from test_modeldeployment_e2e import world as world  # the fixture: a PVC and the canary prompts

from testworld import engines
from testworld.cluster import CHART, LocalCluster, wait_for
from testworld.prometheus_operator import OperatorPrometheus
from testworld.traffic import Traffic


def rendered_pod_monitors(cluster: LocalCluster, *settings: str) -> list[dict[str, Any]]:
    out = cluster.helm("template", "adapterops", str(CHART), "-n", "adapterops-system", *settings).stdout
    return [d for d in yaml.safe_load_all(out) if d and d.get("kind") == "PodMonitor"]


def test_the_chart_renders_a_serving_pod_monitor_only_when_enabled(cluster: LocalCluster) -> None:
    assert rendered_pod_monitors(cluster) == []
    (monitor,) = rendered_pod_monitors(cluster, "--set", "metrics.servingPodMonitor.enabled=true")
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == {"any": True}
    assert spec["selector"]["matchLabels"] == {
        "adapterops.io/component": "serving",
        "app.kubernetes.io/managed-by": "adapterops",
    }
    assert "adapterops.io/revision" in spec["podTargetLabels"]
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint["port"] == "http" and "path" not in endpoint  # the path comes from the pod's annotation
    (watching,) = rendered_pod_monitors(
        cluster,
        *("--set", "metrics.servingPodMonitor.enabled=true", "--set", "watchNamespaces={ml-team}"),
        *("--set", "metrics.servingPodMonitor.labels.release=kube-prometheus-stack"),
    )
    assert watching["spec"]["namespaceSelector"] == {"matchNames": ["ml-team"]}
    assert watching["metadata"]["labels"]["release"] == "kube-prometheus-stack"


@pytest.fixture
def operator_scraped(operator_prometheus: OperatorPrometheus) -> OperatorPrometheus:
    if operator_prometheus.proc is None:
        operator_prometheus.start()
    return operator_prometheus


def test_the_canary_decides_on_the_series_a_prometheus_operator_scrapes(
    cluster: LocalCluster, world: Path, namespace: str, operator_scraped: OperatorPrometheus
) -> None:
    v1 = fake_adapter(world, "v1")
    cases = {"good": engines.NIM1, "bad": engines.VLLM_0_11}
    for name, version in cases.items():
        md = short_canary(name, version, v1)
        md["spec"]["canary"]["analysis"]["latency"]["prometheusUrl"] = operator_scraped.url
        cluster.apply(md, namespace)
    stable = {name: serving_ready(cluster, name, namespace)["status"]["stable"]["revision"] for name in cases}

    # What the Prometheus Operator's job makes of each serving pod (`up`: scraped on its engine's path).
    (job, _), *_ = operator_scraped.jobs

    def scraped() -> dict[str, dict[str, str]]:
        rows = operator_scraped.query(f'up{{namespace="{namespace}"}} == 1')
        found = {row["metric"]["adapterops_io_modeldeployment"]: row["metric"] for row in rows}
        return found if set(found) == set(cases) else {}

    targets = wait_for(scraped, 60, "both engines' pods scraped through the PodMonitor's job")
    for name, labels in targets.items():
        assert labels["job"] == "/".join(job["job_name"].split("/")[1:3])  # <namespace>/<PodMonitor name>
        assert labels["container"] == "engine" and labels["endpoint"] == "http"
        assert labels["pod"].startswith(f"{name}-{stable[name]}-") and labels["adapterops_io_revision"] == stable[name]
        assert "adapterops_io_modeldeployment_uid" not in labels  # no labelmap of every pod label here

    traffic = [Traffic(cluster, namespace, name, "commerce", rate=40, workers=16).start() for name in cases]
    try:
        change(cluster, "good", namespace, {"adapters": [{"name": "commerce", "uri": fake_adapter(world, "v2")}]})
        env = [{"name": "STANDIN_LATENCY_MEDIAN", "value": "0.6"}, {"name": "STANDIN_ERROR_RATE", "value": "0.5"}]
        change(cluster, "bad", namespace, {"runtime": {"env": env}})

        def decided(name: str) -> str | None:
            history = mdep(cluster, name, namespace)["status"].get("history", [])
            return history[0]["outcome"] if history and history[0]["outcome"] != "Initial" else None

        wait_for(lambda: decided("good") and decided("bad"), 240, "both canaries decided on the operator's series")
    finally:
        for t in traffic:
            t.stop()
    good, bad = (mdep(cluster, name, namespace)["status"]["history"][0] for name in cases)
    # The engines' own series came through the same job (NIM 1.x on /v1/metrics, vLLM on /metrics).
    for series in ("e2e_request_latency_seconds_count", "vllm:e2e_request_latency_seconds_count"):
        rows = operator_scraped.query(f'{series}{{namespace="{namespace}"}}')
        assert rows and all(r["metric"]["job"] == targets["good"]["job"] for r in rows), series
    print(f"Prometheus Operator labels: NIM 1.x good -> {good['outcome']}: {good['reason']}")
    print(f"Prometheus Operator labels: vLLM 0.11 failing -> {bad['outcome']}: {bad['reason']}")
    assert good["outcome"] == "Promoted", good
    assert bad["outcome"] == "RolledBack" and bad["reason"].startswith("errorRate near or above the 5% limit"), bad
