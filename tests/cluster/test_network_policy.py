"""The operator pod's NetworkPolicy (docs/security.md, "The operator's network"): in, only its health and
metrics ports; out, when enabled, only the API server, DNS, Prometheus, serving pods and the admin's judge
endpoints. The local cluster's network does not enforce NetworkPolicy (kwok plays the pods), so these
tests check what the chart installs and that the real API server accepts every variant of it."""

from __future__ import annotations

from typing import Any

import yaml

from testworld.cluster import CHART, LocalCluster

EGRESS = [
    "--set",
    "networkPolicy.egress.enabled=true",
    "--set-json",
    'networkPolicy.egress.apiServer.cidrs=["127.0.0.1/32"]',
    "--set-json",
    'networkPolicy.egress.judges=[{"cidr": "203.0.113.0/24", "except": ["203.0.113.7/32"], "ports": [443]}]',
    "--set-json",
    'networkPolicy.metricsFrom=[{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]',
]


def network_policy(cluster: LocalCluster, *args: str) -> dict[str, Any]:
    out = cluster.helm(
        "template", "adapterops", str(CHART), "-n", "adapterops-system",
        "--show-only", "templates/networkpolicy.yaml", *args,
    ).stdout  # fmt: skip
    [doc] = [d for d in yaml.safe_load_all(out) if d]
    return dict(doc)


def test_the_installed_policy_admits_only_the_health_and_metrics_ports(cluster: LocalCluster, chart: str) -> None:
    policy = cluster.get("networkpolicy", "adapterops", "-n", chart)
    deploy = cluster.get("deployment", "adapterops", "-n", chart)
    pod = deploy["spec"]["template"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    container_ports = {p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    ingress_ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ingress_ports == container_ports == {8080, 9090}
    # Egress is the admin's to open (the API server's address): by default the policy leaves it alone.
    assert policy["spec"]["policyTypes"] == ["Ingress"]


def ip(cidr: str, **more: Any) -> str:
    return yaml.safe_dump({"ipBlock": {"cidr": cidr, **more}}, sort_keys=True)


def test_egress_allows_only_the_listed_destinations(cluster: LocalCluster) -> None:
    policy = network_policy(cluster, *EGRESS)
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    metrics = next(r for r in spec["ingress"] if r["ports"][0]["port"] == 9090)
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    # No rule without `to`: that would be "anywhere".
    assert all(rule.get("to") for rule in spec["egress"]), spec["egress"]
    destinations = {
        (yaml.safe_dump(peer, sort_keys=True), p["port"], p["protocol"])
        for rule in spec["egress"]
        for peer in rule["to"]
        for p in rule["ports"]
    }
    dns = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
    serving = {"namespaceSelector": {}, "podSelector": {"matchLabels": {"adapterops.io/component": "serving"}}}
    prometheus = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    assert destinations == {
        (ip("127.0.0.1/32"), 443, "TCP"),
        (ip("127.0.0.1/32"), 6443, "TCP"),
        (yaml.safe_dump(dns, sort_keys=True), 53, "UDP"),
        (yaml.safe_dump(dns, sort_keys=True), 53, "TCP"),
        (yaml.safe_dump(prometheus, sort_keys=True), 9090, "TCP"),
        (yaml.safe_dump(serving, sort_keys=True), 8000, "TCP"),
        (yaml.safe_dump(serving, sort_keys=True), 8001, "TCP"),  # the in-place adapter agents' status
        (ip("203.0.113.0/24", **{"except": ["203.0.113.7/32"]}), 443, "TCP"),
    }


def test_the_api_server_accepts_the_egress_policy(cluster: LocalCluster, namespace: str) -> None:
    policy = network_policy(cluster, *EGRESS)
    policy["metadata"]["namespace"] = namespace
    proc = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(policy), check=False)
    assert proc.returncode == 0, proc.stderr


def test_egress_without_the_api_server_address_is_refused_at_render(cluster: LocalCluster) -> None:
    proc = cluster.helm("template", "x", str(CHART), "--set", "networkPolicy.egress.enabled=true", check=False)
    assert proc.returncode != 0 and "networkPolicy.egress.apiServer.cidrs" in proc.stderr, proc.stderr
