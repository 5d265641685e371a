"""Champion to traffic, revision canary (new pods) and in-place canary (`canary.adapterRollout: InPlace`: the
running pods load the adapter): how long from a new adapter URI in a ModelDeployment (what a FineTuneJob's
new champion does to a ModelDeployment following it) until the new adapter answers canary traffic, and how
many GPU-seconds the canary holds beyond the stable replicas until it is decided.

On the test world's cluster (`--cluster`, default adapterops-bench-champion; created if absent, the chart
installed as the cluster tests install it, the operator under the chart's identity, the kubelet harness
running the stand-in engine), per run: a ModelDeployment with R stable replicas serving adapter vN is
Ready and under client traffic (testworld.traffic: a pick per request among Ready pods, as kube-proxy
would); its adapter URI is changed to vN+1 (t0). Measured: t_ready (the canary revision's pods Ready, from
the ModelDeployment's status), t_traffic (the first request a canary pod answered, seen by the client),
t_decided (Promoted in status), and extra GPU-seconds: the integral over t0..t_decided of (stable + canary
desired replicas - R) x TP, sampled every 0.5 s from the status. Medians with min-max over `--runs`.
In place (`--rollout InPlace`), the canary pods are the stable ones, so the client cannot tell which adapter
answered: t_traffic is when a pod's engine first lists the new adapter version in /v1/models (polled every
0.1 s), after which that Ready pod answers the canary's share of requests (20 requests/s over 2 pods: the
next one within ~0.1 s). The stand-in's run-time load takes STANDIN_LORA_LOAD_SECONDS (LOAD_SECONDS below).

    .venv/bin/python bench/champion/run.py --runs 5 --rollout both

What these figures leave out: the engine's own start-up. The stand-in starts in STANDIN_STARTUP_SECONDS
(default 0.5 s); a real NIM or vLLM pod loads an 8B model for minutes (weights download or cache, CUDA
graphs, NIM engine builds), which a revision canary pays on every adapter change and an in-place load does
not. So a revision canary's t_traffic here is AdapterOps' and Kubernetes' share of it (scheduling, the adapter
fetch init container, readiness probe periods, the operator's reconcile cadence), a lower bound for real
engines; the in-place one includes its real costs but the load time, which is the stand-in's assumed
LOAD_SECONDS, and the fetch, a local copy here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "hack")]

from adapterops_common.agent import version_of_uri  # noqa: E402
from testworld.cluster import TOOLS, LocalCluster, OperatorProcess, local_volume, wait_for  # noqa: E402
from testworld.engines import nim_profiles  # noqa: E402
from testworld.kubelet import Kubelet  # noqa: E402
from testworld.nim import serving_images  # noqa: E402
from testworld.prometheus import Prometheus  # noqa: E402
from testworld.traffic import Traffic  # noqa: E402

NAMESPACE = "bench-champion"
NAME = "champ"
TP = 1
# The stand-in's run-time adapter load (vLLM's /v1/load_lora_adapter): an assumption, not a GPU measurement
# (bench/README.md: a rank-8..64 adapter of an 8B model is tens to hundreds of MB read from the pod's disk).
LOAD_SECONDS = "1.0"


def adapter(root: Path, version: int) -> str:
    path = root / "adapters" / f"v{version}"
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8, "lora_alpha": 16}))
    (path / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    return f"pvc://work/adapters/v{version}"


def deployment(uri: str, replicas: int, rollout: str = "Revision") -> dict[str, Any]:
    return {
        "apiVersion": "adapterops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "baseModel": {"name": "tiny-llama"},
            "runtime": {
                "engine": "vllm",
                "image": "vllm/vllm-openai:v0.11.0",
                "tensorParallelSize": TP,
                "gpuType": "H100",
                "replicas": replicas,
                "env": [
                    {"name": "STANDIN_LATENCY_MEDIAN", "value": "0.6"},
                    {"name": "STANDIN_LORA_LOAD_SECONDS", "value": LOAD_SECONDS},
                ],
            },
            "adapters": [{"name": "commerce", "uri": uri}],
            # One step at 50% then 100%, judged on a latency ceiling every 10 s: a short canary.
            "canary": {
                "adapterRollout": rollout,
                "steps": [50, 100],
                "interval": "10s",
                "analysis": {"latency": {"quantile": 0.9, "maxSeconds": 2.5}, "failureLimit": 1},
            },
        },
    }


def status(cluster: LocalCluster) -> dict[str, Any]:
    return dict(cluster.get("mdep", NAME, "-n", NAMESPACE).get("status") or {})


def settled(cluster: LocalCluster, replicas: int) -> bool:
    s = status(cluster)
    return bool(s.get("stable") and not s.get("canary") and s["stable"]["readyReplicas"] >= replicas)


class LoadWatch:
    """When a serving pod's engine first lists `version` of the adapter (its /v1/models `root` ends with it)."""

    def __init__(self, cluster: LocalCluster, version: str) -> None:
        self.cluster, self.version, self.seen = cluster, version, None
        self._stop = threading.Event()
        self._ips: list[str] = []
        self._threads = [
            threading.Thread(target=self._pods, daemon=True),
            threading.Thread(target=self._poll, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _pods(self) -> None:
        while not self._stop.is_set() and self.seen is None:
            with contextlib.suppress(Exception):
                pods = self.cluster.get("pods", "-n", NAMESPACE, "-l", f"adapterops.io/modeldeployment={NAME}")
                self._ips = [p["status"]["podIP"] for p in pods["items"] if p.get("status", {}).get("podIP")]
            time.sleep(0.5)

    def _poll(self) -> None:
        while not self._stop.is_set() and self.seen is None:
            for ip in list(self._ips):
                with contextlib.suppress(OSError, ValueError):
                    with urllib.request.urlopen(f"http://{ip}:8000/v1/models", timeout=1) as r:
                        roots = [m.get("root", "") for m in json.load(r)["data"] if m.get("parent")]
                    if any(root.endswith(self.version) for root in roots):
                        self.seen = time.monotonic()
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()


def one_run(cluster: LocalCluster, root: Path, version: int, replicas: int, rollout: str) -> dict[str, float]:
    """The stable revision serves v<version>, Ready, no canary: change to v<version + 1>."""
    wait_for(lambda: settled(cluster, replicas), 180, "stable Ready without a canary")
    traffic = Traffic(cluster, NAMESPACE, NAME, "commerce", rate=20, workers=8).start()
    uri = adapter(root, version + 1)
    watch = LoadWatch(cluster, version_of_uri(uri)) if rollout == "InPlace" else None
    try:
        wait_for(lambda: traffic.first_served, 60, "traffic served")
        old = status(cluster)["stable"]["revision"]
        t0 = time.monotonic()
        cluster.apply(deployment(uri, replicas, rollout))
        ready = decided = None
        canary = ""
        gpu_seconds, last = 0.0, t0
        while decided is None and time.monotonic() - t0 < 300:
            s = status(cluster)
            now = time.monotonic()
            held = sum((s.get(role) or {}).get("replicas", 0) for role in ("stable", "canary")) - replicas
            gpu_seconds += max(0, held) * TP * (now - last)
            last = now
            if s.get("canary"):
                canary = s["canary"]["revision"]
                if ready is None and s["canary"]["readyReplicas"] >= s["canary"]["replicas"] > 0:
                    ready = now
            history = s.get("history") or []
            if history and history[0]["revision"] != old and history[0]["outcome"] in ("Promoted", "RolledBack"):
                canary = history[0]["revision"]
                if history[0]["outcome"] != "Promoted":
                    raise RuntimeError(f"canary {canary} not promoted: {history[0]}")
                decided = now
            time.sleep(0.5)
        served = watch.seen if watch is not None else traffic.first_served.get(canary)
        if decided is None or ready is None or served is None:
            raise RuntimeError(f"run {version}: no decision, readiness or canary traffic within 300 s")
        return {
            "t_ready": ready - t0,
            "t_traffic": served - t0,
            "t_decided": decided - t0,
            "extra_gpu_seconds": gpu_seconds,
        }
    finally:
        traffic.stop()
        if watch is not None:
            watch.stop()


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--rollout", choices=("Revision", "InPlace", "both"), default="both")
    parser.add_argument("--cluster", default="adapterops-bench-champion")
    parser.add_argument("--keep", action="store_true", help="leave the benchmark cluster up")
    args = parser.parse_args()
    cluster = LocalCluster(args.cluster).up()
    prometheus = Prometheus(cluster).start()
    cluster.install_chart(
        values={
            "podLabels": {"kwok.adapterops.io/kubelet": "harness"},
            "images": {"vllm": "vllm/vllm-openai:v0.11.0", "fetcher": "adapterops/adapter-fetcher:local"},
            "reconcileSeconds": 5,
            "nimProfiles": nim_profiles(),
            "prometheusUrl": prometheus.url,
        }
    )
    kubelet = Kubelet(cluster, images=serving_images()).start()
    operator = OperatorProcess(cluster).start()
    try:
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=120s", check=False)
        cluster.ensure_namespace(NAMESPACE)
        root = local_volume(cluster, NAMESPACE, "work", TOOLS / "pvcs" / cluster.name / NAMESPACE / "work")
        rollouts = ("Revision", "InPlace") if args.rollout == "both" else (args.rollout,)
        version = 0
        for rollout in rollouts:
            # A change of mode is itself a change of the pods (a revision canary, analysed on traffic like any
            # other): settle it before measuring.
            traffic = Traffic(cluster, NAMESPACE, NAME, "commerce", rate=20, workers=8).start()
            try:
                cluster.apply(deployment(adapter(root, version), args.replicas, rollout))
                wait_for(lambda: settled(cluster, args.replicas), 300, f"{rollout}: stable Ready without a canary")
            finally:
                traffic.stop()
            rows = []
            for run in range(args.runs):
                row = one_run(cluster, root, version, args.replicas, rollout)
                version += 1
                rows.append(row)
                print(
                    json.dumps({"rollout": rollout, "run": run, **{k: round(v, 2) for k, v in row.items()}}), flush=True
                )
            summary = {key: spread([r[key] for r in rows]) for key in rows[0]}
            print(json.dumps({f"{rollout} canary, median (min-max) over runs": summary}), flush=True)
    finally:
        operator.stop()
        kubelet.stop()
        prometheus.close()
        if not args.keep:
            cluster.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
