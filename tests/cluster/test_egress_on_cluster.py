"""A tenant cannot point the operator at an address the cluster admin did not allow: a ModelDeployment
naming a Prometheus URL or a judge endpoint outside the chart's `egress` lists (and a FineTuneJob naming
such a judge) is refused with the field named, and a listening server at that address receives nothing.
The same server under an allowed prefix is queried by the same canary (so "nothing" is not an accident of
timing), and what it answers never reaches the status."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testworld.cluster import CHART, REPO, TOOLS, LocalCluster, OperatorProcess, local_volume, wait_for
from testworld.kubelet import Kubelet
from testworld.listener import BODY, Listener

PROMPTS = "".join(json.dumps({"prompt": f"red running shoes, size {n}"}) + "\n" for n in range(40))
PAPER_FTJ = yaml.safe_load((REPO / "manifests/examples/finetunejob-nemotron-sweep.yaml").read_text())


def fake_adapter(root: Path, name: str) -> str:
    path = root / "adapters" / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8, "lora_alpha": 16}))
    (path / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    return f"pvc://work/adapters/{name}"


@pytest.fixture
def work(cluster: LocalCluster, operator: OperatorProcess, kubelet: Kubelet, namespace: str) -> Iterator[Path]:
    root = local_volume(cluster, namespace, "work", TOOLS / "pvcs" / cluster.name / namespace / "work")
    cluster.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "prompts"}, "data": {"prompts.jsonl": PROMPTS}},
        namespace,
    )
    yield root


def deployment(name: str, adapter_uri: str, judge_endpoint: str, prometheus_url: str | None = None) -> dict[str, Any]:
    latency: dict[str, Any] = {"quantile": 0.9, "maxIncreasePercent": 30}
    if prometheus_url is not None:
        latency["prometheusUrl"] = prometheus_url
    return {
        "apiVersion": "adapterops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "baseModel": {"name": "tiny-llama"},
            "runtime": {"engine": "nim", "gpuType": "H100", "replicas": 1},
            "adapters": [{"name": "commerce", "uri": adapter_uri}],
            "canary": {
                "steps": [50, 100],
                "interval": "10m",
                "analysis": {
                    "latency": latency,
                    "judge": {
                        "dataset": "configmap://prompts/prompts.jsonl",
                        "samples": 20,
                        "judge": {"endpoint": judge_endpoint, "model": "any"},
                    },
                },
            },
        },
    }


def accepted(cluster: LocalCluster, kind: str, name: str, namespace: str) -> dict[str, Any]:
    obj = cluster.get(kind, name, "-n", namespace)
    generation = obj["metadata"]["generation"]
    found = next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Accepted"), {})
    return found if found.get("observedGeneration") == generation else {}


def patch(cluster: LocalCluster, name: str, namespace: str, spec: dict[str, Any]) -> None:
    cluster.kubectl("patch", "mdep", name, "-n", namespace, "--type=merge", "-p", json.dumps({"spec": spec}))


def status_of(cluster: LocalCluster, name: str, namespace: str) -> dict[str, Any]:
    return dict(cluster.get("mdep", name, "-n", namespace).get("status") or {})


def test_urls_outside_the_allowlists_are_refused_by_field_and_never_called(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str, tenant_endpoint: Listener
) -> None:
    forbidden = f"{tenant_endpoint.url}/forbidden"
    allowed = f"{tenant_endpoint.url}/allowed"
    cluster.apply(deployment("prom", "pvc://work/adapters/v1", f"{allowed}/v1", prometheus_url=forbidden), namespace)
    cluster.apply(deployment("judge", "pvc://work/adapters/v1", f"{forbidden}/v1"), namespace)
    # The allowed host under another user name is still the other host.
    sneaky = f"http://{tenant_endpoint.url.removeprefix('http://')}@169.254.169.254/allowed"
    cluster.apply(deployment("sneaky", "pvc://work/adapters/v1", f"{allowed}/v1", prometheus_url=sneaky), namespace)
    ftj = copy.deepcopy(PAPER_FTJ)
    ftj["metadata"] = {"name": "sweep"}
    ftj["spec"]["evaluation"]["judge"]["endpoint"] = f"{forbidden}/v1"
    cluster.apply(ftj, namespace)

    prom = wait_for(lambda: accepted(cluster, "mdep", "prom", namespace), 30, "Accepted on prom")
    assert prom["status"] == "False" and prom["reason"] == "PrometheusUrlNotAllowed"
    assert prom["message"].startswith(f"spec.canary.analysis.latency.prometheusUrl: '{forbidden}' is not under")
    assert "this cluster allows Prometheus under: " in prom["message"] and allowed in prom["message"]
    judge = wait_for(lambda: accepted(cluster, "mdep", "judge", namespace), 30, "Accepted on judge")
    assert judge["status"] == "False" and judge["reason"] == "JudgeEndpointNotAllowed"
    assert judge["message"].startswith(f"spec.canary.analysis.judge.judge.endpoint: '{forbidden}/v1' is not under")
    assert "https://integrate.api.nvidia.com/v1" in judge["message"]
    sneaky_cond = wait_for(lambda: accepted(cluster, "mdep", "sneaky", namespace), 30, "Accepted on sneaky")
    assert sneaky_cond["reason"] == "PrometheusUrlNotAllowed" and "has userinfo" in sneaky_cond["message"]
    sweep = wait_for(lambda: accepted(cluster, "ftj", "sweep", namespace), 30, "Accepted on sweep")
    assert sweep["status"] == "False" and sweep["reason"] == "JudgeEndpointNotAllowed"
    assert sweep["message"].startswith(f"spec.evaluation.judge.endpoint: '{forbidden}/v1' is not under")
    warned = {e["reason"] for e in cluster.get("events", "-n", namespace)["items"] if e["type"] == "Warning"}
    assert {"PrometheusUrlNotAllowed", "JudgeEndpointNotAllowed"} <= warned
    # Refused objects get nothing: no serving Deployment, no trial.
    assert cluster.get("deployments", "-n", namespace)["items"] == []
    assert cluster.get("jobs", "-n", namespace)["items"] == []
    assert not [p for p in tenant_endpoint.paths() if p.startswith("/forbidden")]


def test_a_canary_queries_an_allowed_override_never_a_refused_one_and_never_quotes_it(
    cluster: LocalCluster, work: Path, namespace: str, tenant_endpoint: Listener
) -> None:
    forbidden = f"{tenant_endpoint.url}/forbidden"
    allowed = f"{tenant_endpoint.url}/allowed"
    cluster.apply(deployment("agent", fake_adapter(work, "v1"), f"{allowed}/v1"), namespace)
    cluster.kubectl("wait", "--for=condition=Ready", "mdep/agent", "-n", namespace, "--timeout=120s", timeout=130)

    # A new revision (a canary would start) together with a Prometheus the admin did not allow.
    patch(
        cluster,
        "agent",
        namespace,
        {
            "adapters": [{"name": "commerce", "uri": fake_adapter(work, "v2")}],
            "canary": {"analysis": {"latency": {"prometheusUrl": forbidden}}},
        },
    )
    refused = wait_for(lambda: accepted(cluster, "mdep", "agent", namespace), 30, "the new generation's Accepted")
    assert refused["status"] == "False" and refused["reason"] == "PrometheusUrlNotAllowed"
    assert "canary" not in status_of(cluster, "agent", namespace)

    # The same server under the allowed prefix: the canary starts and the operator queries it, and asks the
    # judge there (both answer 404 with a secret-looking body).
    patch(cluster, "agent", namespace, {"canary": {"analysis": {"latency": {"prometheusUrl": allowed}}}})
    wait_for(
        lambda: (c := accepted(cluster, "mdep", "agent", namespace)) and c["status"] == "True", 30, "Accepted again"
    )

    def queried() -> bool:
        paths = tenant_endpoint.paths()
        return any(p.startswith("/allowed/api/v1/query") for p in paths) and any(
            p == "/allowed/v1/chat/completions" for p in paths
        )

    wait_for(queried, 180, "the canary's analysis to query the allowed Prometheus and judge", interval=0.5)

    def said_404() -> dict[str, Any] | None:
        metrics = status_of(cluster, "agent", namespace).get("analysis", {}).get("metrics", [])
        messages = {m["name"]: m.get("message", "") for m in metrics}
        ok = "HTTP 404" in messages.get("latency", "") and "judge unavailable: HTTP 404" in messages.get("judge", "")
        return messages if ok else None

    wait_for(said_404, 120, "the analysis to report both 404s", interval=0.5)
    status = json.dumps(status_of(cluster, "agent", namespace))
    events = json.dumps([e["message"] for e in cluster.get("events", "-n", namespace)["items"]])
    assert BODY not in status and "LISTENER-SECRET" not in status and "LISTENER-SECRET" not in events

    # Now the judge moves outside the list: refused, and the judge that was running stops.
    patch(cluster, "agent", namespace, {"canary": {"analysis": {"judge": {"judge": {"endpoint": f"{forbidden}/v1"}}}}})
    judge = wait_for(lambda: accepted(cluster, "mdep", "agent", namespace), 30, "Accepted after the judge change")
    assert judge["status"] == "False" and judge["reason"] == "JudgeEndpointNotAllowed"
    assert not [p for p in tenant_endpoint.paths() if p.startswith("/forbidden")]


def test_the_chart_sets_the_egress_settings_and_refuses_ambiguous_entries(cluster: LocalCluster) -> None:
    out = cluster.helm("template", "adapterops", str(CHART), "-n", "adapterops-system").stdout
    deploy = next(d for d in yaml.safe_load_all(out) if d and d["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ADAPTEROPS_ALLOWED_JUDGE_ENDPOINTS"] == "https://integrate.api.nvidia.com/v1"
    assert env["ADAPTEROPS_ALLOWED_PROMETHEUS_URLS"] == "" and env["ADAPTEROPS_ALLOWED_S3_ENDPOINTS"] == ""
    assert env["ADAPTEROPS_JUDGE_DATASET_MAX_BYTES"] == "16777216"
    for setting, where in [
        ("egress.allowedJudgeEndpoints={https://user@judge.internal/v1}", "/egress/allowedJudgeEndpoints/0"),
        ("egress.allowedPrometheusUrls={prometheus:9090}", "/egress/allowedPrometheusUrls/0"),
        ("egress.judgeDatasetMaxBytes=0", "/egress/judgeDatasetMaxBytes"),
    ]:
        proc = cluster.helm("template", "x", str(CHART), "--set", setting, check=False)
        assert proc.returncode != 0 and where in proc.stderr, proc.stderr
