"""A Prometheus configured as the Prometheus Operator configures it from a PodMonitor.

No Prometheus Operator runs here (it needs a real Prometheus StatefulSet and Debian's Prometheus has no
Kubernetes service discovery), so this module does the two halves of its job the way they are written:

- `scrape_config(pod_monitor)`: the scrape job the operator generates for each `podMetricsEndpoints`
  entry of a PodMonitor, rule for rule as prometheus-operator's `generatePodMonitorConfig` writes it
  (OPERATOR_SRC: initRelabelings, generateRunningFilter, the selector's keep rules, the port filter, the
  namespace/container/pod target labels, podTargetLabels, the job and endpoint labels, the endpoint's
  own relabelings via generateRelabelConfig, and the address sharding rules of one shard), with its
  `kubernetes_sd_configs` (role pod, namespaces from the namespaceSelector) kept aside;
- `pod_targets(pods)`: what Prometheus' Kubernetes discovery (role pod) hands that job, target group per
  pod with the `__meta_kubernetes_*` labels of PROMETHEUS_POD_SD (one target per container port, one
  address-only target per container without ports).

`OperatorPrometheus` runs Debian's Prometheus with those jobs, the discovery replaced by file_sd files of
exactly those target groups: the relabelling that turns them into series labels is Prometheus' own.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from testworld.cluster import LocalCluster
from testworld.prometheus import Prometheus

OPERATOR_SRC = (
    "https://github.com/prometheus-operator/prometheus-operator/blob/002266347d12f6ee0ef0b4a774dfcc613d2d9547/"
    "pkg/prometheus/promcfg.go"
)
PROMETHEUS_POD_SD = (
    "https://github.com/prometheus/prometheus/blob/01f1ea3f74e6c129fd1a2dc43ac5ddf84a67bbc7/discovery/kubernetes/pod.go"
    " (and the kubernetes_sd_config section of the configuration docs)"
)
SHARD = "0"  # the config reloader substitutes $(SHARD): one shard, number 0


def sanitize(name: str) -> str:
    """sanitizeLabelName (promcfg.go) and strutil.SanitizeLabelName (Prometheus): anything else is `_`."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _relabel(rule: dict[str, Any]) -> dict[str, Any]:
    """generateRelabelConfig: a RelabelConfig of the CRD in Prometheus' spelling, action lower-cased."""
    out: dict[str, Any] = {}
    for crd, prom in (("sourceLabels", "source_labels"), ("separator", "separator"), ("targetLabel", "target_label")):
        if rule.get(crd):
            out[prom] = rule[crd]
    for crd, prom in (("regex", "regex"), ("modulus", "modulus"), ("replacement", "replacement")):
        if crd in rule and rule[crd] not in ("", 0, None):
            out[prom] = rule[crd]
    if rule.get("action"):
        out["action"] = str(rule["action"]).lower()
    return out


def namespaces(pod_monitor: dict[str, Any]) -> list[str]:
    """getNamespacesFromNamespaceSelector: [] (all) for `any`, else matchNames, else the monitor's own."""
    selector = pod_monitor["spec"].get("namespaceSelector") or {}
    if selector.get("any"):
        return []
    return list(selector.get("matchNames") or [pod_monitor["metadata"]["namespace"]])


def scrape_config(pod_monitor: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """The scrape job of the PodMonitor's endpoint `index` (generatePodMonitorConfig), without its
    kubernetes_sd_configs (see `namespaces`)."""
    meta, spec = pod_monitor["metadata"], pod_monitor["spec"]
    ep = spec["podMetricsEndpoints"][index]
    cfg: dict[str, Any] = {
        "job_name": f"podMonitor/{meta['namespace']}/{meta['name']}/{index}",
        "honor_labels": bool(ep.get("honorLabels", False)),
    }
    for crd, prom in (("interval", "scrape_interval"), ("scrapeTimeout", "scrape_timeout"), ("path", "metrics_path")):
        if ep.get(crd):
            cfg[prom] = ep[crd]
    if ep.get("params"):
        cfg["params"] = ep["params"]
    if ep.get("scheme"):
        cfg["scheme"] = ep["scheme"]
    rules: list[dict[str, Any]] = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
    if ep.get("filterRunning", True):
        rules.append(
            {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"}
        )
    selector = spec.get("selector") or {}
    for key in sorted(selector.get("matchLabels") or {}):
        label = sanitize(key)
        rules.append(
            {
                "action": "keep",
                "source_labels": [
                    f"__meta_kubernetes_pod_label_{label}",
                    f"__meta_kubernetes_pod_labelpresent_{label}",
                ],
                "regex": f"({selector['matchLabels'][key]});true",
            }
        )
    for exp in selector.get("matchExpressions") or []:
        label, values = sanitize(exp["key"]), "|".join(exp.get("values") or [])
        both = [f"__meta_kubernetes_pod_label_{label}", f"__meta_kubernetes_pod_labelpresent_{label}"]
        present = [f"__meta_kubernetes_pod_labelpresent_{label}"]
        rules.append(
            {
                "In": {"action": "keep", "source_labels": both, "regex": f"({values});true"},
                "NotIn": {"action": "drop", "source_labels": both, "regex": f"({values});true"},
                "Exists": {"action": "keep", "source_labels": present, "regex": "true"},
                "DoesNotExist": {"action": "drop", "source_labels": present, "regex": "true"},
            }[exp["operator"]]
        )
    if ep.get("port"):
        rules.append(
            {"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": ep["port"]}
        )
    rules += [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]
    for label in spec.get("podTargetLabels") or []:
        rules.append(
            {
                "source_labels": [f"__meta_kubernetes_pod_label_{sanitize(label)}"],
                "target_label": sanitize(label),
                "regex": "(.+)",
                "replacement": "${1}",
            }
        )
    rules.append({"target_label": "job", "replacement": f"{meta['namespace']}/{meta['name']}"})
    if spec.get("jobLabel"):
        rules.append(
            {
                "source_labels": [f"__meta_kubernetes_pod_label_{sanitize(spec['jobLabel'])}"],
                "target_label": "job",
                "regex": "(.+)",
                "replacement": "${1}",
            }
        )
    if ep.get("port"):
        rules.append({"target_label": "endpoint", "replacement": ep["port"]})
    rules += [_relabel(r) for r in ep.get("relabelings") or []]
    rules += [
        {"source_labels": ["__address__"], "target_label": "__tmp_hash", "modulus": 1, "action": "hashmod"},
        {"source_labels": ["__tmp_hash"], "regex": SHARD, "action": "keep"},
    ]
    cfg["relabel_configs"] = rules
    if ep.get("metricRelabelings"):
        cfg["metric_relabel_configs"] = [_relabel(r) for r in ep["metricRelabelings"]]
    return cfg


def pod_targets(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Kubernetes discovery, role pod: a target group per pod with an IP (buildPod, podLabels)."""
    groups = []
    for pod in pods:
        meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
        ip = status.get("podIP")
        if not ip:
            continue
        ready = next((c["status"] for c in status.get("conditions") or [] if c["type"] == "Ready"), "Unknown")
        labels = {
            "__meta_kubernetes_namespace": meta["namespace"],
            "__meta_kubernetes_pod_name": meta["name"],
            "__meta_kubernetes_pod_ip": ip,
            "__meta_kubernetes_pod_ready": ready.lower(),
            "__meta_kubernetes_pod_phase": status.get("phase", ""),
            "__meta_kubernetes_pod_node_name": spec.get("nodeName", ""),
            "__meta_kubernetes_pod_host_ip": status.get("hostIP", ""),
            "__meta_kubernetes_pod_uid": meta.get("uid", ""),
        }
        owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
        if owner:
            labels["__meta_kubernetes_pod_controller_kind"] = owner["kind"]
            labels["__meta_kubernetes_pod_controller_name"] = owner["name"]
        for kind in ("label", "annotation"):
            for key, value in (meta.get(f"{kind}s") or {}).items():
                labels[f"__meta_kubernetes_pod_{kind}_{sanitize(key)}"] = value
                labels[f"__meta_kubernetes_pod_{kind}present_{sanitize(key)}"] = "true"
        for container in spec.get("containers") or []:
            ports = container.get("ports") or []
            if not ports:  # an anonymous target per container: the address is the pod IP alone
                group = {**labels, "__meta_kubernetes_pod_container_name": container["name"]}
                groups.append({"targets": [ip], "labels": group})
            for port in ports:
                group = {
                    **labels,
                    "__meta_kubernetes_pod_container_name": container["name"],
                    "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
                    "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                    "__meta_kubernetes_pod_container_port_protocol": port.get("protocol", "TCP"),
                }
                groups.append({"targets": [f"{ip}:{port['containerPort']}"], "labels": group})
    return groups


class OperatorPrometheus(Prometheus):
    """Debian's Prometheus with the scrape jobs the Prometheus Operator would generate from `pod_monitors`
    (a PodMonitor as the chart renders it), each fed the pods of its namespaces as discovery would."""

    def __init__(self, cluster: LocalCluster, pod_monitors: list[dict[str, Any]], name: str = "operator") -> None:
        super().__init__(cluster)
        self.dir = self.dir.parent / f"{cluster.name}-{name}"
        self.jobs = [
            (scrape_config(pm, i), namespaces(pm))
            for pm in pod_monitors
            for i in range(len(pm["spec"]["podMetricsEndpoints"]))
        ]

    def _file(self, index: int) -> str:
        return str(self.dir / f"targets-{index}.json")

    def config(self) -> dict[str, Any]:
        jobs = []
        for index, (job, _) in enumerate(self.jobs):
            jobs.append({**job, "file_sd_configs": [{"files": [self._file(index)], "refresh_interval": "1s"}]})
        return {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": jobs}

    def write_config(self) -> None:
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(self.config(), sort_keys=False))

    def _write_targets(self) -> None:
        try:
            pods = self.cluster.get("pods", "-A")["items"]
        except RuntimeError:
            return
        for index, (_, names) in enumerate(self.jobs):
            chosen = [p for p in pods if not names or p["metadata"]["namespace"] in names]
            tmp = self.dir / f"targets-{index}.json.tmp"
            tmp.write_text(json.dumps(pod_targets(chosen)))
            tmp.replace(self._file(index))
