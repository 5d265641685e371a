"""The in-place adapter canary on the real control plane: vLLM stand-in pods (run by the test world's
kubelet, with vLLM's run-time LoRA API), their adapter agents reading the pod annotation through a downward
API volume, real Prometheus. Two ModelDeployments side by side, each changing only its adapter: a good new
champion is canaried on one of the two running pods and promoted onto both, a failing one is rolled back to
the old adapter; in both, the pods are the ones that were there before (same UIDs: no new pod, no extra GPU).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_modeldeployment_e2e import change, cond, deployment, fake_adapter, mdep, serving_ready
from test_modeldeployment_e2e import world as world  # the fixture: a PVC and the canary prompts

from testworld.cluster import LocalCluster, wait_for
from testworld.prometheus import Prometheus
from testworld.traffic import Traffic

LATENCY = "0.6"  # vLLM resolves 0.3 s and 2.5 s bucket bounds (docs/engines.md)


def in_place(name: str, adapter: str) -> dict[str, Any]:
    md = deployment(name, adapter, engine="vllm", image="vllm/vllm-openai:v0.11.0", replicas=2)
    md["spec"]["runtime"]["env"] = [{"name": "STANDIN_LATENCY_MEDIAN", "value": LATENCY}]
    md["spec"]["canary"] |= {
        "adapterRollout": "InPlace",
        "steps": [50, 100],
        "interval": "10s",
        "analysis": {
            "latency": {"quantile": 0.9, "maxSeconds": 2.5},
            "errorRate": {"maxPercent": 5},
            "failureLimit": 1,
        },
    }
    return md


def uids(cluster: LocalCluster, name: str, namespace: str) -> dict[str, str]:
    pods = cluster.get("pods", "-n", namespace, "-l", f"adapterops.io/modeldeployment={name}")["items"]
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods if not p["metadata"].get("deletionTimestamp")}


def outcome(cluster: LocalCluster, name: str, namespace: str, revision: str) -> str | None:
    history = mdep(cluster, name, namespace).get("status", {}).get("history", [])
    return next((h["outcome"] for h in history if h["revision"] == revision), None)


def test_an_adapter_is_canaried_in_place_without_new_pods_then_promoted_or_rolled_back(
    cluster: LocalCluster, world: Path, namespace: str, prometheus: Prometheus
) -> None:
    v1, good, bad = (fake_adapter(world, v) for v in ("v1", "v2", "v3"))
    # The bad champion's requests fail half the time (the stand-in's per-adapter knob).
    (world / "adapters" / "v3" / "standin.json").write_text(json.dumps({"error_rate": 0.5}))
    for name in ("good", "bad"):
        cluster.apply(in_place(name, v1), namespace)
    before = {}
    for name in ("good", "bad"):
        ready = serving_ready(cluster, name, namespace)
        assert cond(ready, "AdaptersLoaded")["status"] == "True", ready["status"]
        assert {r["revision"] for r in ready["status"]["replicas"]} == {ready["status"]["stable"]["revision"]}
        before[name] = uids(cluster, name, namespace)
        assert len(before[name]) == 2
    traffic = [Traffic(cluster, namespace, name, "commerce", rate=40, workers=16).start() for name in ("good", "bad")]
    try:
        change(cluster, "good", namespace, {"adapters": [{"name": "commerce", "uri": good}]})
        change(cluster, "bad", namespace, {"adapters": [{"name": "commerce", "uri": bad}]})

        def canary_serving(name: str) -> dict[str, Any] | None:
            status = mdep(cluster, name, namespace).get("status", {})
            canary = status.get("canary") or {}
            return status if canary.get("weight", 0) > 0 else None

        for name in ("good", "bad"):
            live = wait_for(lambda n=name: canary_serving(n), timeout=60, what=f"{name}'s canary serving in place")
            assert live["canary"]["base"] == live["stable"]["base"] and len(live["canary"]["pods"]) == 1
            assert live["canary"]["weight"] == 50

        revisions = {n: mdep(cluster, n, namespace)["status"]["canary"]["revision"] for n in ("good", "bad")}
        wait_for(lambda: outcome(cluster, "good", namespace, revisions["good"]), timeout=150, what="good's verdict")
        wait_for(lambda: outcome(cluster, "bad", namespace, revisions["bad"]), timeout=150, what="bad's verdict")
        assert outcome(cluster, "good", namespace, revisions["good"]) == "Promoted"
        assert outcome(cluster, "bad", namespace, revisions["bad"]) == "RolledBack"

        def settled(name: str, revision: str) -> dict[str, Any] | None:
            status = mdep(cluster, name, namespace).get("status", {})
            replicas = status.get("replicas") or []
            done = len(replicas) == 2 and all(r["revision"] == revision and r["ready"] for r in replicas)
            return status if done else None

        promoted = wait_for(lambda: settled("good", revisions["good"]), timeout=60, what="good loaded on every pod")
        assert promoted["stable"]["adapters"] == {"commerce": good}
        stable_bad = mdep(cluster, "bad", namespace)["status"]["stable"]["revision"]
        wait_for(lambda: settled("bad", stable_bad), timeout=60, what="bad's pods back on the old adapter")
        assert "errorRate" in cond(mdep(cluster, "bad", namespace), "RolledBack")["message"]
        for name in ("good", "bad"):  # the same pods throughout: nothing restarted, no pod added
            assert uids(cluster, name, namespace) == before[name]
            assert (
                len(cluster.get("deployments", "-n", namespace, "-l", f"adapterops.io/modeldeployment={name}")["items"])
                == 1
            )
    finally:
        for t in traffic:
            t.stop()
