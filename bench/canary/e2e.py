"""Canaries run by the real controller on the local cluster: outcome and wall-clock time to a verdict.

    ADAPTEROPS_CLUSTER=adapterops-<you> .venv/bin/python bench/canary/e2e.py --runs 3   # ~15 min on 2 cores

The test world of tests/cluster (real kube-apiserver/etcd/controllers via kwok, the chart installed, the
operator under its identity, real Prometheus scraping every second, serving pods played by the NIM
stand-in on their pod IPs) with client traffic ramping from --rate/2 to --rate x 1.5 requests/s during
each canary. Each run changes the ModelDeployment (a new revision) in one of two ways:

  same     a revision serving exactly as stable (only STANDIN_SEED differs): a rollback is a false one;
  slower   the stand-in's median latency x 1.225 (1.5 x the +15% tolerance on p95): a promotion is false.

The analysis is the default one of a latency-only canary: p95 within +15% of stable, steps 25/50/100,
interval 1m, failureLimit 1. Printed: outcomes with Wilson 95% intervals and the seconds from the change
to the verdict (median, min, max). Few runs: the intervals are wide; bench/canary/oc.py gives the
operating characteristic from thousands of simulated canaries through the same analysis code.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "hack"), str(ROOT / "tests" / "cluster")]
from conftest import CHART_VALUES, OPERATOR_NAMESPACE, SERVING_IMAGES  # noqa: E402

from testworld.cluster import TOOLS, LocalCluster, OperatorProcess, local_volume, wait_for  # noqa: E402
from testworld.kubelet import Kubelet  # noqa: E402
from testworld.prometheus import Prometheus  # noqa: E402
from testworld.traffic import Traffic  # noqa: E402

MEDIAN = 0.05  # the stand-in's median latency, seconds


def adapter(root: Path) -> str:
    path = root / "adapters" / "v1"
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8, "lora_alpha": 16}))
    (path / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    return "pvc://work/adapters/v1"


def spec(uri: str, median: float, seed: int) -> dict[str, Any]:
    return {
        "baseModel": {"name": "tiny-llama"},
        "runtime": {
            "engine": "nim",
            "gpuType": "H100",
            "replicas": 4,
            "env": [
                {"name": "STANDIN_LATENCY_MEDIAN", "value": f"{median:g}"},
                {"name": "STANDIN_SEED", "value": str(seed)},
            ],
        },
        "adapters": [{"name": "commerce", "uri": uri}],
        "canary": {
            "steps": [25, 50, 100],
            "interval": "1m",
            "analysis": {"latency": {"quantile": 0.95, "maxIncreasePercent": 15}, "failureLimit": 1},
        },
    }


def ramp(traffic: Traffic, base: float, stop: threading.Event, seconds: float = 300.0) -> None:
    started = time.monotonic()
    while not stop.wait(1.0):
        traffic.rate = base * (0.5 + min(1.0, (time.monotonic() - started) / seconds))


def one_canary(cluster: LocalCluster, namespace: str, name: str, kind: str, seed: int, rate: float) -> dict[str, Any]:
    md = lambda: dict(cluster.get("mdep", name, "-n", namespace))  # noqa: E731
    uri = adapter(local_volume(cluster, namespace, "work", TOOLS / "pvcs" / cluster.name / namespace / "work"))
    body = {"apiVersion": "adapterops.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name}}
    cluster.apply({**body, "spec": spec(uri, MEDIAN, 1)}, namespace)
    cluster.kubectl("wait", "--for=condition=Ready", f"mdep/{name}", "-n", namespace, "--timeout=180s", timeout=190)
    traffic = Traffic(cluster, namespace, name, "commerce", rate=rate / 2).start()
    stop = threading.Event()
    threading.Thread(target=ramp, args=(traffic, rate, stop), daemon=True).start()
    try:
        time.sleep(20)  # stable's reference before the canary (its baseline window)
        median = MEDIAN * (1.225 if kind == "slower" else 1.0)
        changed = time.monotonic()
        cluster.apply({**body, "spec": spec(uri, median, seed)}, namespace)

        first = md()["status"]["stable"]["revision"]

        def outcome() -> dict[str, Any] | None:
            status = md().get("status", {})
            history = [h for h in status.get("history", []) if h.get("revision") != first]
            return history[0] if history else None

        entry = wait_for(outcome, 1800, f"a verdict on canary run {name}", interval=1.0)
        seconds = time.monotonic() - changed
    finally:
        stop.set()
        traffic.stop()
    return {"kind": kind, "outcome": entry["outcome"], "seconds": seconds, "message": entry.get("reason", "")}


def wilson(k: int, n: int) -> str:
    if n == 0:
        return "n/a"
    z, p = 1.96, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo, hi = 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)
    return f"{k}/{n} ({100 * p:.0f}%, 95% interval {lo:.0f}-{hi:.0f}%)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="canaries per kind")
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s at the middle of the ramp")
    parser.add_argument("--keep", action="store_true", help="leave the cluster up")
    args = parser.parse_args()
    name = os.environ.get("ADAPTEROPS_CLUSTER") or os.environ.get("ADAPTEROPS_TEST_CLUSTER") or "adapterops-bench"
    cluster = LocalCluster(name).up()
    prometheus = Prometheus(cluster).start()
    kubelet = Kubelet(cluster, images=SERVING_IMAGES).start()
    operator: OperatorProcess | None = None
    results: list[dict[str, Any]] = []
    try:
        cluster.install_chart(namespace=OPERATOR_NAMESPACE, values={**CHART_VALUES, "prometheusUrl": prometheus.url})
        operator = OperatorProcess(cluster, namespace=OPERATOR_NAMESPACE).start()
        print(f"# Canaries by the real controller on cluster {name} (load average {os.getloadavg()[0]:.1f})")
        for i in range(args.runs):
            for kind in ("same", "slower"):
                namespace = f"bench-{kind}-{i}-{int(time.time()) % 100000}"
                cluster.ensure_namespace(namespace)
                got = one_canary(cluster, namespace, "agent", kind, 100 + i, args.rate)
                results.append(got)
                said = got["message"][:300]
                print(f"- {kind:6} run {i}: {got['outcome']} after {got['seconds']:.0f} s: {said}", flush=True)
                cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    finally:
        if operator is not None:
            operator.stop()
        kubelet.stop()
        prometheus.close()
        if not args.keep:
            cluster.down()
    for kind, bad in (("same", "RolledBack"), ("slower", "Promoted")):
        got = [r for r in results if r["kind"] == kind]
        secs = [r["seconds"] for r in got]
        wrong = sum(r["outcome"] == bad for r in got)
        label = "false rollback" if kind == "same" else "false promotion"
        if secs:
            print(
                f"\n{kind}: {label} {wilson(wrong, len(got))}; seconds to the verdict: median "
                f"{statistics.median(secs):.0f} (min {min(secs):.0f}, max {max(secs):.0f})"
            )


if __name__ == "__main__":
    main()
