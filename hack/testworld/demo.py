"""The local demo behind hack/demo.sh (the README's first command).

A real control plane with fake GPU nodes; AdapterOps installed with Helm and running under its chart
identity; a 4-trial LoRA sweep trained for real on CPU (a tiny Llama built in code, the shipped
commerce dataset) and judged by a stand-in judge; the champion served by a stand-in NIM (the only
parts that are stand-ins: GPU software and the paid judge); a canary that is promoted and one that
is rolled back, watched through Prometheus and paired judging.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from testworld.cluster import REPO, TOOLS, LocalCluster, OperatorProcess, local_volume, wait_for
from testworld.engines import nim_profiles
from testworld.judge import StandInJudge
from testworld.kubelet import Kubelet
from testworld.nim import serving_images
from testworld.prometheus import Prometheus
from testworld.rootfs import operator_image
from testworld.traffic import Traffic

NAMESPACE = "ml-team"
IMAGES = serving_images()  # the stand-in of the engine version each image is (testworld/engines.py)
VALUES = {
    "podLabels": {"kwok.adapterops.io/kubelet": "harness"},
    "images": {
        "trainerNemo": "adapterops/trainer-nemo:local",
        "trainerHf": "adapterops/trainer-hf:local",
        "nim": "nvcr.io/nim/nvidia/llama-3.1-nemotron-nano-8b-v1:1.8",
        "vllm": "vllm/vllm-openai:v0.11.0",
        "fetcher": "adapterops/adapter-fetcher:local",
    },
    "reconcileSeconds": 10,
    "nimProfiles": nim_profiles(),  # the stand-in NIM images' profiles
    "prometheusScrapeSeconds": 1,  # testworld.prometheus scrapes every second
}


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def tiny_model() -> Path:
    """A tiny Llama built in code and pre-trained briefly on the shipped data (cached)."""
    from testworld.tiny_model import build

    dest = TOOLS / "cache" / "tiny-llama-demo-v1"
    if not (dest / "config.json").exists():
        print("building the tiny Llama (once, ~30 s)...", flush=True)
        build(dest.with_suffix(".tmp"), seed=0, pretrain_steps=300)
        dest.with_suffix(".tmp").rename(dest)
    return dest


def sweep(judge: StandInJudge) -> dict[str, Any]:
    return {
        "apiVersion": "adapterops.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "commerce-sft"},
        "spec": {
            "baseModel": {"name": "tiny-llama", "uri": "pvc://work/models/tiny"},
            "backend": "hf",
            "dataset": {"train": "pvc://work/data/train.jsonl", "format": "chat"},
            "lora": {"rank": 8, "alpha": 16, "targetModules": ["linear_qkv", "linear_proj"]},
            "training": {
                "maxSteps": 20,
                "learningRate": 1e-3,
                "globalBatchSize": 8,
                "microBatchSize": 4,
                "seqLength": 256,
                "precision": "fp32",
                "scheduler": {"warmupSteps": 2, "minLearningRate": 1e-5},
            },
            "sweep": {
                "maxTrials": 4,
                "parallelism": 2,
                "parameters": {
                    "training.learningRate": {"values": [3e-4, 3e-3]},
                    "training.optimizer": {"choices": ["adam", "adamw"]},
                },
            },
            "objective": {"metric": "judgeScore", "goal": "maximize"},
            "evaluation": {
                "dataset": "pvc://work/data/challenge.jsonl",
                "samples": 12,
                "rubric": {"builtin": "query-formulation"},
                "judge": {"endpoint": judge.url, "model": "stand-in-judge"},
            },
            "output": {"uri": "pvc://work/adapters"},
            "resources": {"gpuType": "H100", "gpusPerTrial": 1},
        },
    }


def deployment(judge: StandInJudge) -> dict[str, Any]:
    return {
        "apiVersion": "adapterops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "commerce-agent"},
        "spec": {
            "baseModel": {"name": "tiny-llama"},
            "runtime": {
                "engine": "nim",
                "tensorParallelSize": 1,
                "gpuType": "H100",
                "replicas": 2,
                "env": [{"name": "NIM_KVCACHE_PERCENT", "value": "0.8"}],
            },
            "adapters": [{"name": "commerce", "fineTuneJobRef": {"name": "commerce-sft"}}],
            "canary": {
                "steps": [20, 50, 100],
                "interval": "40s",
                "traffic": {"mode": "httpRoute", "httpRouteRef": {"name": "commerce-agent"}},
                "analysis": {
                    "latency": {"quantile": 0.95, "maxIncreasePercent": 25},
                    "errorRate": {"maxPercent": 2},
                    "judge": {
                        "dataset": "configmap://canary-prompts/prompts.jsonl",
                        "samples": 100,
                        "maxDrop": 0.5,
                        "judge": {"endpoint": judge.url, "model": "stand-in-judge"},
                    },
                    "failureLimit": 1,
                },
            },
        },
    }


def watch_canary(cluster: LocalCluster, until: str, timeout: float) -> dict[str, Any]:
    """Print the canary's progress until `until` (Promoted | RolledBack) shows in the history."""
    deadline = time.monotonic() + timeout
    last = ""
    start_history = len(cluster.get("mdep", "commerce-agent", "-n", NAMESPACE)["status"].get("history", []))
    while time.monotonic() < deadline:
        status = cluster.get("mdep", "commerce-agent", "-n", NAMESPACE)["status"]
        history = status.get("history", [])
        if len(history) > start_history and history[0]["outcome"] in ("Promoted", "RolledBack"):
            print(f"  -> {history[0]['outcome']}: {history[0]['reason'][:300]}")
            return status
        metrics = (status.get("analysis") or {}).get("metrics", [])
        verdicts = ", ".join(
            f"{m['name']}={m['verdict']}"
            + (
                f" ({m['canaryValue']:.3g} vs {m['stableValue']:.3g})"
                if m.get("canaryValue") is not None and m.get("stableValue") is not None
                else ""
            )
            for m in metrics
        )
        revision = (status.get("canary") or {}).get("revision", "-")
        line = f"  canary {revision} at {status.get('canaryWeight', 0):>3}%  {verdicts}"
        cost = status.get("estimatedMonthlyCost") or {}
        per_token = [(cost.get(role) or {}).get("costPerMillionTokens") for role in ("canary", "stable")]
        if all(per_token):
            line += f"  $/M output tokens {per_token[0]:.2f} vs {per_token[1]:.2f}"
        if line != last:
            print(line, flush=True)
            last = line
        time.sleep(2)
    raise TimeoutError(f"no {until} within {timeout}s")


def main() -> int:
    banner("local GPU cluster (kwok nodes: 4x 8xH100, 2x 8xB200, 1 CPU node; real control plane)")
    cluster = LocalCluster("adapterops").up()
    print(cluster.kubectl("get", "nodes", "-L", "nvidia.com/gpu.product", "-L", "nvidia.com/gpu.count").stdout)
    prometheus = Prometheus(cluster).start()
    print(f"Prometheus {prometheus.url} (scraping serving pods every second)")

    judge = StandInJudge()
    judge.start()

    banner("helm install adapterops (CRDs, RBAC, operator Deployment, GPU classes, the judge the admin allows)")
    egress = {"allowedJudgeEndpoints": [judge.url]}  # the admin's allowlist: tenants' judges must be on it
    cluster.install_chart(values={**VALUES, "prometheusUrl": prometheus.url, "egress": egress})
    print(cluster.helm("list", "-n", "adapterops-system").stdout)

    banner("operator: the operator image (hack/build-images.sh) under the chart's ServiceAccount; kubelet harness")
    operator = OperatorProcess(cluster, image=operator_image()).start()
    kubelet = Kubelet(cluster, images=IMAGES).start()
    traffic: Traffic | None = None
    print(f"operator log: {operator.log_path}; stand-in judge {judge.url}")
    try:
        # A rerun starts clean: the previous run's objects (immutable specs, old revisions) go first.
        cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--timeout=300s", timeout=320)
        cluster.ensure_namespace(NAMESPACE)
        root = local_volume(cluster, NAMESPACE, "work", TOOLS / "pvcs" / cluster.name / NAMESPACE / "work")
        (root / "models").mkdir(exist_ok=True)
        if not (root / "models" / "tiny").exists():
            (root / "models" / "tiny").symlink_to(tiny_model())
        shutil.copytree(REPO / "training-jobs/datasets/commerce", root / "data", dirs_exist_ok=True)
        prompts = (REPO / "training-jobs/datasets/commerce/challenge.jsonl").read_text()
        cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "canary-prompts"},
                "data": {"prompts.jsonl": prompts},
            },
            NAMESPACE,
        )

        banner("kubectl apply FineTuneJob commerce-sft: 4 LoRA trials (learning rate x Adam/AdamW), judged 0-5")
        cluster.apply(sweep(judge), NAMESPACE)
        last = ""

        def finished() -> bool:
            nonlocal last
            line = cluster.kubectl("get", "ftj", "commerce-sft", "-n", NAMESPACE, "--no-headers").stdout.strip()
            if line.rsplit(maxsplit=1)[0] != last.rsplit(maxsplit=1)[0:1][0] if last else True:  # ignore AGE
                print(f"  {line}", flush=True)
                last = line
            return any(s in line for s in (" Succeeded ", " Failed "))

        wait_for(finished, 1200, "the sweep", interval=3)
        banner("kubectl adapterops sweep commerce-sft (the leaderboard)")
        plugin = ["kubectl", "adapterops", "sweep", "commerce-sft", "-n", NAMESPACE]
        print(subprocess.run(plugin, env=cluster.env, capture_output=True, text=True).stdout)

        banner("kubectl apply ModelDeployment commerce-agent: NIM, TP 1 on H100, serving the champion")
        route = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "commerce-agent"},
            "spec": {
                "parentRefs": [{"name": "inference-gateway"}],
                "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}]}],
            },
        }
        cluster.apply(route, NAMESPACE)
        cluster.apply(deployment(judge), NAMESPACE)
        cluster.kubectl(
            "wait", "--for=condition=Ready", "mdep/commerce-agent", "-n", NAMESPACE, "--timeout=180s", timeout=190
        )
        print(cluster.kubectl("get", "mdep", "-n", NAMESPACE, "-o", "wide").stdout)
        # Clients through the Gateway: requests follow the HTTPRoute's backend weights.
        traffic = Traffic(cluster, NAMESPACE, "commerce-agent", "commerce", rate=60, workers=12)
        traffic.start(route="commerce-agent")

        banner("a runtime change (KV cache 80% -> 90%) is a new revision: canary 20% -> 50% -> 100%")
        patch = {"spec": {"runtime": {"env": [{"name": "NIM_KVCACHE_PERCENT", "value": "0.9"}]}}}
        cluster.kubectl("patch", "mdep", "commerce-agent", "-n", NAMESPACE, "--type=merge", "-p", json.dumps(patch))
        watch_canary(cluster, "Promoted", 600)

        banner("a change that triples latency (the stand-in engine's knob): rolled back")
        patch = {
            "spec": {
                "runtime": {
                    "env": [
                        {"name": "NIM_KVCACHE_PERCENT", "value": "0.9"},
                        {"name": "STANDIN_LATENCY_MEDIAN", "value": "3.0"},
                    ]
                }
            }
        }
        cluster.kubectl("patch", "mdep", "commerce-agent", "-n", NAMESPACE, "--type=merge", "-p", json.dumps(patch))
        watch_canary(cluster, "RolledBack", 600)

        banner("kubectl get ftj,mdep")
        print(cluster.kubectl("get", "ftj,mdep", "-n", NAMESPACE, "-o", "wide").stdout)
        print(
            cluster.kubectl(
                "get",
                "events",
                "-n",
                NAMESPACE,
                "--sort-by=.lastTimestamp",
                "--field-selector",
                "involvedObject.kind=ModelDeployment",
                "-o",
                "custom-columns=REASON:.reason,MESSAGE:.message",
            ).stdout[-3000:]
        )
    finally:
        if traffic:
            traffic.stop()
        judge.stop()
        kubelet.stop()
        operator.stop()
        prometheus.close()
    banner("done")
    print(
        "The cluster is still up (serving processes stopped with the demo):\n"
        f"  export KUBECONFIG={cluster.kubeconfig}\n  kubectl get ftj,mdep -A\nRemove it with: hack/cluster.sh down"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
