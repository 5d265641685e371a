"""The test world's Prometheus Operator stand-in (hack/testworld/prometheus_operator.py) writes the scrape
job prometheus-operator's generatePodMonitorConfig writes: its rules in its order (for the PodMonitor of
the operator's own promcfg tests, testpodmonitor1: podTargetLabels, a port, an interval), and hands it
the targets Kubernetes discovery (role pod) would: one per container port, meta labels sanitised."""

from __future__ import annotations

from typing import Any

from testworld.prometheus_operator import namespaces, pod_targets, scrape_config


def pod_monitor(**spec: Any) -> dict[str, Any]:
    endpoint = {"port": "web", "interval": "30s"}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "testpodmonitor1", "namespace": "default"},
        "spec": {"podTargetLabels": ["example", "env"], "podMetricsEndpoints": [endpoint], **spec},
    }


def test_the_job_has_the_operators_rules_in_the_operators_order() -> None:
    job = scrape_config(pod_monitor())
    assert job["job_name"] == "podMonitor/default/testpodmonitor1/0" and job["scrape_interval"] == "30s"
    assert job["honor_labels"] is False
    assert job["relabel_configs"] == [
        {"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"},
        {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"},
        {"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "web"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {
            "source_labels": ["__meta_kubernetes_pod_label_example"],
            "target_label": "example",
            "regex": "(.+)",
            "replacement": "${1}",
        },
        {
            "source_labels": ["__meta_kubernetes_pod_label_env"],
            "target_label": "env",
            "regex": "(.+)",
            "replacement": "${1}",
        },
        {"target_label": "job", "replacement": "default/testpodmonitor1"},
        {"target_label": "endpoint", "replacement": "web"},
        {"source_labels": ["__address__"], "target_label": "__tmp_hash", "modulus": 1, "action": "hashmod"},
        {"source_labels": ["__tmp_hash"], "regex": "0", "action": "keep"},
    ]


def test_selector_and_endpoint_relabelings_become_keep_rules_and_trailing_rules() -> None:
    monitor = pod_monitor(
        selector={"matchLabels": {"adapterops.io/component": "serving"}},
        namespaceSelector={"any": True},
    )
    monitor["spec"]["podMetricsEndpoints"][0]["relabelings"] = [
        {
            "sourceLabels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
            "regex": "(.+)",
            "targetLabel": "__metrics_path__",
            "action": "Replace",
        }
    ]
    rules = scrape_config(monitor)["relabel_configs"]
    assert rules[2] == {
        "action": "keep",
        "source_labels": [
            "__meta_kubernetes_pod_label_adapterops_io_component",
            "__meta_kubernetes_pod_labelpresent_adapterops_io_component",
        ],
        "regex": "(serving);true",
    }
    assert rules[-3] == {
        "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
        "target_label": "__metrics_path__",
        "regex": "(.+)",
        "action": "replace",
    }
    assert namespaces(monitor) == [] and namespaces(pod_monitor()) == ["default"]
    assert namespaces(pod_monitor(namespaceSelector={"matchNames": ["a", "b"]})) == ["a", "b"]


def test_discovery_gives_one_target_per_container_port_with_sanitised_meta_labels() -> None:
    pod = {
        "metadata": {
            "name": "p",
            "namespace": "ml",
            "uid": "u",
            "labels": {"adapterops.io/revision": "abc"},
            "annotations": {"prometheus.io/path": "/v1/metrics"},
        },
        "spec": {
            "nodeName": "n",
            "initContainers": [{"name": "fetch"}],
            "containers": [{"name": "engine", "ports": [{"name": "http", "containerPort": 8000}]}, {"name": "side"}],
        },
        "status": {"podIP": "10.0.0.1", "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    engine, side = pod_targets([pod, {**pod, "status": {"phase": "Pending"}}])  # no IP: no targets
    assert engine["targets"] == ["10.0.0.1:8000"] and side["targets"] == ["10.0.0.1"]
    labels = engine["labels"]
    assert labels["__meta_kubernetes_pod_label_adapterops_io_revision"] == "abc"
    assert labels["__meta_kubernetes_pod_labelpresent_adapterops_io_revision"] == "true"
    assert labels["__meta_kubernetes_pod_annotation_prometheus_io_path"] == "/v1/metrics"
    assert labels["__meta_kubernetes_pod_container_port_name"] == "http"
    assert labels["__meta_kubernetes_pod_ready"] == "true" and labels["__meta_kubernetes_namespace"] == "ml"
    assert "__meta_kubernetes_pod_container_port_name" not in side["labels"]
