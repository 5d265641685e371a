"""FineTuneJob controller benchmark on the local cluster (a benchmark, not a test).

P1  trial-Job fan-out: Jobs per second the operator creates for one 100-trial sweep, as a ratio to the
    raw API create rate of the same Job manifests measured in the same run (same concurrency, admin).
P2  200 FineTuneJobs x 20 trials on 500 fake GPU nodes, trial pods completed by kwok (2-9 s each, with a
    result in their termination message): operator peak RSS, API requests per trial, lost or duplicate
    trials, time to converge.

    .venv/bin/python bench/finetune/run.py                      # P1 and P2 (~15-30 min on 2 cores)
    .venv/bin/python bench/finetune/run.py --jobs 20 --nodes 50  # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "hack"), str(REPO / "operator"), str(REPO / "training-jobs")]

import yaml  # noqa: E402
from kubernetes_asyncio import client, config  # noqa: E402

from adapterops.api.finetunejob import FineTuneJobSpec  # noqa: E402
from adapterops.config import Config, load_gpu_classes  # noqa: E402
from adapterops.finetune import builders as trialjob  # noqa: E402
from adapterops.finetune.plan import plan  # noqa: E402
from testworld.cluster import LocalCluster, OperatorProcess, wait_for  # noqa: E402

STAGE = Path(__file__).with_name("pod-complete-trial.yaml")


def sweep(name: str, trials: int, parallelism: int) -> dict[str, Any]:
    return {
        "apiVersion": "adapterops.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "baseModel": {"name": "nvidia/Llama-3.1-Nemotron-Nano-8B-v1", "uri": "s3://bench/base"},
            "backend": "hf",
            "dataset": {"train": "s3://bench/train.jsonl"},
            "training": {"maxSteps": 100, "scheduler": {"warmupSteps": 10, "minLearningRate": 1e-7}},
            "objective": {"metric": "validationLoss", "goal": "minimize"},
            "output": {"uri": "s3://bench/adapters"},
            "sweep": {
                "strategy": "random",
                "maxTrials": trials,
                "parallelism": parallelism,
                "seed": 1,
                "parameters": {"training.learningRate": {"min": 1e-5, "max": 1e-3, "scale": "log"}},
            },
            "resources": {"gpuType": "H100", "gpusPerTrial": 1},
        },
    }


async def raw_create_rate(cluster: LocalCluster, namespace: str, count: int, gpu_classes: Path) -> float:
    """Jobs/s when the same Job manifests are created straight through the API, CREATE_CONCURRENCY at a time
    (built with the operator's own GPU class table, so their pods are scheduled and completed as the
    operator's are)."""
    await config.load_kube_config(str(cluster.kubeconfig))
    owner = {
        "apiVersion": "adapterops.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "raw", "namespace": namespace, "uid": "00000000-0000-0000-0000-000000000000"},
    }
    spec = FineTuneJobSpec.model_validate(sweep("raw", count, count)["spec"])
    cfg = Config(gpu_classes=load_gpu_classes(gpu_classes))
    jobs = [trialjob.trial_job(owner, t, spec, cfg) for t in plan("raw", spec)]
    for job in jobs:
        job["metadata"].pop("ownerReferences")  # no owner object exists for the raw creates
        # Not the operator's: neither the Job nor its pods may be watched by it.
        for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
            labels.pop(trialjob.LABEL_JOB)
            labels.pop(trialjob.LABEL_JOB_UID)
    limit = asyncio.Semaphore(trialjob_concurrency())
    async with client.ApiClient() as api:
        batch = client.BatchV1Api(api)

        async def create(job: dict[str, Any]) -> None:
            async with limit:
                await batch.create_namespaced_job(namespace, job, _preload_content=False)

        arrivals = JobArrivals(cluster, namespace)
        await asyncio.gather(*(create(j) for j in jobs))
        return arrivals.rate(count)


def trialjob_concurrency() -> int:
    from adapterops.finetune.reconciler import CREATE_CONCURRENCY

    return CREATE_CONCURRENCY


class JobArrivals:
    """When each Job of a namespace appears, as one watch sees them: the same observer for the raw creates
    and for the operator's, so both rates are measured alike (first Job to last)."""

    def __init__(self, cluster: LocalCluster, namespace: str) -> None:
        import kubernetes

        api = kubernetes.client.BatchV1Api(kubernetes.config.new_client_from_config(str(cluster.kubeconfig)))
        self.times: list[float] = []
        self._watch = kubernetes.watch.Watch()
        ready = threading.Event()

        def run() -> None:
            version = api.list_namespaced_job(namespace).metadata.resource_version
            ready.set()
            try:
                for event in self._watch.stream(api.list_namespaced_job, namespace, resource_version=version):
                    if event["type"] == "ADDED":
                        self.times.append(time.monotonic())
            except Exception:  # the namespace deleted under a watch nobody reads any more
                pass

        threading.Thread(target=run, daemon=True).start()
        ready.wait(30)

    def rate(self, count: int) -> float:
        wait_for(lambda: len(self.times) >= count, 300, f"{count} Jobs")
        self._watch.stop()
        return (count - 1) / (self.times[count - 1] - self.times[0])


def operator_fanout_rate(cluster: LocalCluster, namespace: str, count: int) -> float:
    """Jobs/s the operator creates for one sweep of `count` trials, all allowed to run at once."""
    ftj = sweep("fanout", count, count)
    ftj["spec"]["suspend"] = True
    cluster.apply(ftj, namespace)
    wait_for(lambda: cluster.get("ftj", "fanout", "-n", namespace).get("status", {}).get("state"), 60, "acceptance")
    arrivals = JobArrivals(cluster, namespace)
    cluster.kubectl("patch", "ftj", "fanout", "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": false}}')
    return arrivals.rate(count)


def round_finished(cluster: LocalCluster, raw_ns: str, op_ns: str, count: int) -> bool:
    done = 0
    for ns in (raw_ns, op_ns):
        done += sum(1 for j in cluster.get("jobs", "-n", ns)["items"] if (j.get("status") or {}).get("succeeded"))
    state = cluster.get("ftj", "fanout", "-n", op_ns).get("status", {}).get("state")
    return done == 2 * count and state == "Succeeded"


def peak_rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024  # type: ignore[union-attr]


def api_requests(operator: OperatorProcess) -> float:
    text = operator.metrics()
    return sum(float(v) for v in re.findall(r"^adapterops_api_requests_total\{[^}]*\} ([0-9.e+]+)$", text, re.M))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--parallelism", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--fanout", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="P1 rounds (0: P2 only)")
    parser.add_argument("--keep", action="store_true", help="leave the benchmark cluster up")
    args = parser.parse_args()

    os.environ.update(
        ADAPTEROPS_H100_NODES=str(args.nodes),
        ADAPTEROPS_B200_NODES="0",
        ADAPTEROPS_CPU_NODES="1",
        ADAPTEROPS_KWOK_POD_COMPLETE=str(STAGE),
    )
    cluster = LocalCluster("adapterops-bench")
    cluster.down()  # a fresh cluster: the custom kwok stage is read at creation
    cluster.up()
    try:
        cluster.install_chart(values={"reconcileSeconds": 60, "logLevel": "WARNING"})
        operator = OperatorProcess(cluster).start()
        try:
            return run(cluster, operator, args)
        finally:
            operator.stop()
    finally:
        if not args.keep:
            cluster.down()


def run(cluster: LocalCluster, operator: OperatorProcess, args: argparse.Namespace) -> int:
    results: dict[str, Any] = {}
    # ---------------------------------------------------------------- P1
    if args.repeat:  # --repeat 0: P2 only
        raw, fanout = [], []
        gpu_classes = operator.workdir / "gpu-classes.yaml"  # the chart's table, as the operator reads it
        for i in range(-1, args.repeat):  # round -1 warms both paths up and is not counted
            raw_ns, op_ns = f"p1-raw-{i + 1}", f"p1-op-{i + 1}"
            for ns in (raw_ns, op_ns):
                cluster.ensure_namespace(ns)
                cluster.kubectl("label", "namespace", ns, "adapterops.io/bench=p1", "--overwrite")
            # Alternate which goes first, so neither always runs on a cluster still busy with the other's pods.
            if i % 2:
                op_rate = operator_fanout_rate(cluster, op_ns, args.fanout)
                raw_rate = asyncio.run(raw_create_rate(cluster, raw_ns, args.fanout, gpu_classes))
            else:
                raw_rate = asyncio.run(raw_create_rate(cluster, raw_ns, args.fanout, gpu_classes))
                op_rate = operator_fanout_rate(cluster, op_ns, args.fanout)
            if i >= 0:
                raw.append(raw_rate)
                fanout.append(op_rate)
            # Each round starts on a quiet cluster: every Job of this round finished, the sweep's status written.
            # (Deleting the namespaces instead would keep the garbage collector busy through the next round.)
            finished = functools.partial(round_finished, cluster, raw_ns, op_ns, args.fanout)
            wait_for(finished, 300, f"round {i + 1} to finish", interval=2)
        cluster.kubectl("delete", "namespace", "-l", "adapterops.io/bench=p1", "--wait=false")
        results["P1"] = {
            "raw_jobs_per_s": [round(r, 1) for r in raw],
            "operator_jobs_per_s": [round(f, 1) for f in fanout],
            "ratio_median": round(statistics.median(fanout) / statistics.median(raw), 2),
        }
        print(json.dumps({"P1": results["P1"]}), flush=True)

    # ---------------------------------------------------------------- P2
    if not args.jobs:
        return 0
    total = args.jobs * args.trials
    before = api_requests(operator)
    namespaces = [f"team-{i % 10}" for i in range(args.jobs)]
    for ns in sorted(set(namespaces)):
        cluster.ensure_namespace(ns)
    docs = [
        sweep(f"sweep-{i:03d}", args.trials, args.parallelism)
        | {"metadata": {"name": f"sweep-{i:03d}", "namespace": ns}}
        for i, ns in enumerate(namespaces)
    ]
    start = time.monotonic()
    for i in range(0, len(docs), 25):  # one apply per 25: each call stays inside kubectl's timeout
        cluster.apply(yaml.safe_dump_all(docs[i : i + 25]))

    def converged() -> bool:
        items = [f for f in cluster.get("ftj", "-A")["items"] if f["metadata"]["namespace"].startswith("team-")]
        done = [f for f in items if f.get("status", {}).get("state") in ("Succeeded", "Failed")]
        print(f"  {time.monotonic() - start:6.0f}s  {len(done)}/{len(items)} sweeps finished", flush=True)
        return len(done) == args.jobs

    wait_for(converged, 7200, "every sweep to finish", interval=15)
    elapsed = time.monotonic() - start
    items = [f for f in cluster.get("ftj", "-A")["items"] if f["metadata"]["namespace"].startswith("team-")]
    jobs = [
        j
        for j in cluster.get("jobs", "-A", "-l", "adapterops.io/finetunejob")["items"]
        if j["metadata"]["namespace"].startswith("team-")
    ]
    names = [(j["metadata"]["namespace"], j["metadata"]["name"]) for j in jobs]
    succeeded = sum(f["status"]["trialCounts"]["succeeded"] for f in items)
    results["P2"] = {
        "sweeps": args.jobs,
        "trials": total,
        "nodes": args.nodes,
        "converge_seconds": round(elapsed),
        "operator_peak_rss_mb": round(peak_rss_mb(operator.proc.pid), 1) if operator.proc else None,
        "api_requests_per_trial": round((api_requests(operator) - before) / total, 2),
        "trials_succeeded": succeeded,
        "lost_trials": total - len(set(names)),
        "duplicate_jobs": len(names) - len(set(names)),
        "sweeps_with_champion": sum(1 for f in items if f["status"].get("champion")),
    }
    print(json.dumps({"P2": results["P2"]}, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
