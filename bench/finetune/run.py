"""FineTuneJob controller benchmark on the local cluster (a benchmark, not a test).

Four processes: the operator (from its image, under its ServiceAccount), the raw creator
(bench/finetune/rawcreator.py), the observer (bench/finetune/observer.py: one clock, watches that see
both sides alike; every interval below is the difference of two of its stamps), and this driver, which
creates objects and reads the observer's log.

P1  Reaction and fan-out: from a FineTuneJob's creation to its 1st and Nth trial Job (one sweep of N trials,
    all allowed at once), against the raw creator reacting to a trigger ConfigMap by creating the same
    Jobs (built by the operator's own builder, owned by the trigger); >= 10 rounds, the order alternating;
    medians with distribution-free confidence intervals, and the per-round ratio.
P2  Scale: S FineTuneJobs x T trials (parallelism P) in 10 namespaces on 500 fake GPU nodes; trial pods
    "train" for >= --trial-seconds (kwok completes them with a trial result); kube-controller-manager's
    client rate raised (--kcm-qps) so that it does not cap the pace. Reports duplicates by Job UID and pod
    UID per trial, API requests per trial as the API server's audit log counts them (next to the
    operator's own counter), operator CPU and peak RSS, reconcile latency p50/p99 (trial finished ->
    next trial's Job; FineTuneJob Succeeded -> its ModelDeployment's first serving Deployment).

    .venv/bin/python bench/finetune/run.py                          # P1 (10 rounds) and P2, ~30 min
    .venv/bin/python bench/finetune/run.py --jobs 20 --rounds 2     # a quick look
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(REPO / "hack"), str(REPO / "operator"), str(REPO / "training-jobs"), str(HERE)]

import yaml  # noqa: E402
from events import EventLog, next_trial_latencies, succeeded_pods_by_job, trials_by_sweep  # noqa: E402
from stats import quantile, summary  # noqa: E402

from testworld.cluster import TOOLS, LocalCluster, OperatorProcess, wait_for  # noqa: E402

NAME = os.environ.get("ADAPTEROPS_BENCH_CLUSTER", "adapterops-bench")
OPERATOR_GROUP = "system:serviceaccounts:adapterops-system"
AUDIT_POLICY = f"""apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  userGroups: ["{OPERATOR_GROUP}"]
- level: None
"""


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
            "baseline": {"evaluate": False},
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


def serving(name: str, sweep_name: str) -> dict[str, Any]:
    """A ModelDeployment that serves a sweep's champion once there is one (vLLM: no NIM profile table needed)."""
    return {
        "apiVersion": "adapterops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "baseModel": {"name": "nvidia/Llama-3.1-Nemotron-Nano-8B-v1"},
            "runtime": {"engine": "vllm", "image": "vllm/vllm-openai:v0.11.0", "gpuType": "H100", "replicas": 1},
            "adapters": [{"name": "commerce", "fineTuneJobRef": {"name": sweep_name}}],
            "canary": {"steps": [100], "interval": "1m", "analysis": {"errorRate": {"maxPercent": 5}}},
        },
    }


def stage_file(trial_seconds: int, p1_namespaces: list[str]) -> Path:
    """kwok's pod-complete stage for trial pods, twice: P1's pods finish in 2-9 s (a round only waits for a
    quiet cluster), P2's after trial_seconds to trial_seconds + 7 (each transition its own status write)."""
    template = (HERE / "pod-complete-trial.yaml").read_text()
    docs = []
    for name, operator, delay_ms, jitter_ms in (
        ("pod-complete", "NotIn", trial_seconds * 1000, (trial_seconds + 7) * 1000),
        ("pod-complete-p1", "In", 2000, 9000),
    ):
        doc = yaml.safe_load(template)
        doc["metadata"]["name"] = name
        doc["spec"]["selector"]["matchExpressions"].append(
            {"key": ".metadata.namespace", "operator": operator, "values": p1_namespaces}
        )
        doc["spec"]["delay"] = {"durationMilliseconds": delay_ms, "jitterDurationMilliseconds": jitter_ms}
        docs.append(doc)
    path = TOOLS / "clusters" / f"{NAME}-stages.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(docs, width=1000))
    return path


class ProcessStats:
    """CPU seconds and peak RSS of one process, from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def peak_rss_mb(self) -> float:
        text = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024  # type: ignore[union-attr]


def operator_requests(operator: OperatorProcess) -> float:
    text = operator.metrics()
    return sum(float(v) for v in re.findall(r"^adapterops_api_requests_total\{[^}]*\} ([0-9.e+]+)$", text, re.M))


def audit_requests(path: Path, since_line: int = 0) -> tuple[dict[str, int], int]:
    """Requests the API server logged for the operator's ServiceAccount, by verb (one per audit ID), and the
    number of lines read."""
    verbs: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines[since_line:]:
        event = json.loads(line)
        if OPERATOR_GROUP in event["user"].get("groups", []):
            verbs[event["auditID"]] = event["verb"]
    counts: dict[str, int] = {}
    for verb in verbs.values():
        counts[verb] = counts.get(verb, 0) + 1
    return counts, len(lines)


# ------------------------------------------------------------------------------------------------ P1


def p1(cluster: LocalCluster, log: EventLog, args: argparse.Namespace, gpu_classes: Path) -> dict[str, Any]:
    raw = subprocess.Popen(
        [sys.executable, str(HERE / "rawcreator.py"), str(cluster.kubeconfig), str(gpu_classes)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert raw.stdout is not None and "watching" in raw.stdout.readline()
        sides: dict[str, list[dict[str, float]]] = {"operator": [], "raw": []}
        for i in range(-1, args.rounds):  # round -1 warms both paths up and is not counted
            order = ("operator", "raw") if i % 2 else ("raw", "operator")
            for side in order:
                ns = p1_namespace(side, i + 1)
                cluster.ensure_namespace(ns, {"adapterops.io/bench": "p1"})
                ftj = sweep("fanout", args.fanout, args.fanout)
                if side == "operator":
                    cluster.apply(ftj, ns)
                    trigger = ("FineTuneJob", "fanout")
                else:
                    cm = {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": "fanout", "labels": {"adapterops.io/bench-trigger": "p1"}},
                        "data": {"spec": json.dumps(ftj["spec"])},
                    }
                    cluster.apply(cm, ns)
                    trigger = ("ConfigMap", "fanout")
                arrivals = wait_for(
                    lambda ns=ns: arrived(log, ns, args.fanout),
                    300,
                    f"{args.fanout} Jobs in {ns}",
                    interval=0.5,
                )
                t0 = wait_for(lambda ns=ns, trig=trigger: log.first_seen(trig[0], ns, trig[1]), 30, "the trigger seen")
                if i >= 0:
                    n = args.fanout
                    sides[side].append(
                        {
                            "first_job_s": arrivals[0] - t0,
                            "nth_job_s": arrivals[n - 1] - t0,
                            "jobs_per_s": (n - 1) / (arrivals[n - 1] - arrivals[0]),
                        }
                    )
                    print(f"  P1 round {i + 1} {side}: {json.dumps(sides[side][-1])}", flush=True)
            # The next round starts on a quiet cluster: every Job of this round finished, the sweep's status written.
            wait_for(
                lambda i=i: (
                    all(log.jobs_complete(p1_namespace(s, i + 1)) >= args.fanout for s in sides)
                    and cluster.get("ftj", "fanout", "-n", p1_namespace("operator", i + 1))["status"].get("state")
                    == "Succeeded"
                ),
                300,
                f"round {i + 1} to finish",
                interval=1,
            )
    finally:
        raw.terminate()
        raw.wait(10)
    cluster.kubectl("delete", "namespace", "-l", "adapterops.io/bench=p1", "--wait=false")
    result: dict[str, Any] = {}
    for figure in ("first_job_s", "nth_job_s", "jobs_per_s"):
        result[figure] = {side: summary([r[figure] for r in rounds], 3) for side, rounds in sides.items()}
    # Paired by round: operator time over raw time (> 1: the operator is slower).
    for figure in ("first_job_s", "nth_job_s"):
        ratios = [o[figure] / r[figure] for o, r in zip(sides["operator"], sides["raw"], strict=True)]
        result[f"{figure}_ratio_operator_over_raw"] = summary(ratios)
    return result


def arrived(log: EventLog, namespace: str, count: int) -> list[float] | None:
    arrivals = log.job_arrivals(namespace)
    return arrivals if len(arrivals) >= count else None


def p1_namespace(side: str, round_: int) -> str:
    return f"p1-{'op' if side == 'operator' else 'raw'}-{round_}"


# ------------------------------------------------------------------------------------------------ P2


def p2(
    cluster: LocalCluster, log: EventLog, operator: OperatorProcess, proc: ProcessStats, args: argparse.Namespace
) -> dict[str, Any]:
    audit = TOOLS / "kwok" / "clusters" / NAME / "logs" / "audit.log"
    _, audit_start = audit_requests(audit)
    counter_start, cpu_start = operator_requests(operator), proc.cpu_seconds()
    total = args.jobs * args.trials
    namespaces = [f"team-{i % 10}" for i in range(args.jobs)]
    for ns in sorted(set(namespaces)):
        cluster.ensure_namespace(ns)
    docs = []
    for i, ns in enumerate(namespaces):
        ftj = sweep(f"sweep-{i:03d}", args.trials, args.parallelism)
        ftj["metadata"]["namespace"] = ns
        docs.append(ftj)
        if i < args.deployments:
            md = serving(f"serve-{i:03d}", f"sweep-{i:03d}")
            md["metadata"]["namespace"] = ns
            docs.append(md)
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
    served = functools.partial(served_after_success, log)
    wait_for(lambda: served() >= args.deployments, 300, "every ModelDeployment's Deployment", interval=2)
    cpu = proc.cpu_seconds() - cpu_start
    counter = operator_requests(operator) - counter_start
    audited, _ = audit_requests(audit, audit_start)

    items = [f for f in cluster.get("ftj", "-A")["items"] if f["metadata"]["namespace"].startswith("team-")]
    sweeps = trials_by_sweep(log, "team-")
    pods = succeeded_pods_by_job(log, "team-")
    jobs_per_trial = [len(uids) for s in sweeps.values() for uids in s["uids_by_trial"].values()]
    pods_per_job = [len(pods.get((ns, name), set())) for (ns, _), s in sweeps.items() for name in s["job_of"]]
    next_trial = [lat for s in sweeps.values() for lat in next_trial_latencies(s, args.parallelism)]
    to_serving = serving_latencies(log)
    non_watch = sum(n for verb, n in audited.items() if verb != "watch")
    return {
        "sweeps": args.jobs,
        "trials": total,
        "trial_seconds": f"{args.trial_seconds}-{args.trial_seconds + 7}",
        "kcm_api_qps": args.kcm_qps,
        "converge_seconds": round(elapsed),
        "trials_succeeded": sum(f["status"]["trialCounts"]["succeeded"] for f in items),
        "trials_seen": len(jobs_per_trial),
        "trials_with_more_than_one_job_uid": sum(1 for n in jobs_per_trial if n > 1),
        "jobs_with_more_than_one_succeeded_pod": sum(1 for n in pods_per_job if n > 1),
        "jobs_without_succeeded_pod": sum(1 for n in pods_per_job if n == 0),
        "operator_cpu_seconds": round(cpu, 1),
        "operator_cpu_cores_mean": round(cpu / elapsed, 3),
        "operator_peak_rss_mb": round(proc.peak_rss_mb(), 1),
        "api_requests_per_trial_audit": round(non_watch / total, 2),
        "api_requests_per_trial_operator_counter": round(counter / total, 2),
        "audit_by_verb": audited,
        "reconcile_next_trial_s": latency_summary(next_trial),
        "reconcile_succeeded_to_serving_s": latency_summary(to_serving),
    }


def latency_summary(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"n": 0}
    return {
        "n": len(xs),
        "p50": round(quantile(xs, 0.5), 3),
        "p99": round(quantile(xs, 0.99), 3),
        "max": round(max(xs), 3),
    }


def succeeded_times(log: EventLog) -> dict[tuple[str, str], float]:
    done: dict[tuple[str, str], float] = {}
    for e in log.of("FineTuneJob"):
        if e["ns"].startswith("team-") and e.get("state") == "Succeeded":
            done.setdefault((e["ns"], e["name"]), e["t"])
    return done


def serving_latencies(log: EventLog) -> list[float]:
    """FineTuneJob Succeeded -> the first Deployment of the ModelDeployment that follows it."""
    done = succeeded_times(log)
    first: dict[tuple[str, str], float] = {}
    for e in log.of("Deployment"):
        if e["ns"].startswith("team-") and e.get("owner") and e["type"] == "ADDED":
            first.setdefault((e["ns"], e["owner"]), e["t"])
    return [
        t - done[(ns, owner.replace("serve-", "sweep-"))]
        for (ns, owner), t in first.items()
        if (ns, owner.replace("serve-", "sweep-")) in done
    ]


def served_after_success(log: EventLog) -> int:
    return len(serving_latencies(log))


# ------------------------------------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="P1 rounds per side (0: P2 only)")
    parser.add_argument("--fanout", type=int, default=100, help="P1: trials in the one sweep")
    parser.add_argument("--jobs", type=int, default=200, help="P2: FineTuneJobs (0: P1 only)")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--parallelism", type=int, default=5)
    parser.add_argument("--deployments", type=int, default=20, help="P2: sweeps followed by a ModelDeployment")
    parser.add_argument("--trial-seconds", type=int, default=60)
    parser.add_argument("--kcm-qps", type=int, default=400)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--keep", action="store_true", help="leave the benchmark cluster up")
    args = parser.parse_args()

    policy = TOOLS / "clusters" / f"{NAME}-audit-policy.yaml"
    policy.parent.mkdir(parents=True, exist_ok=True)
    policy.write_text(AUDIT_POLICY)
    p1_namespaces = [p1_namespace(side, r) for side in ("operator", "raw") for r in range(args.rounds + 1)]
    os.environ.update(
        ADAPTEROPS_CLUSTER=NAME,
        ADAPTEROPS_H100_NODES=str(args.nodes),
        ADAPTEROPS_B200_NODES="0",
        ADAPTEROPS_CPU_NODES="1",
        ADAPTEROPS_KWOK_POD_COMPLETE=str(stage_file(args.trial_seconds, p1_namespaces)),
        ADAPTEROPS_AUDIT_POLICY=str(policy),
        ADAPTEROPS_KCM_API_QPS=str(args.kcm_qps),
    )
    cluster = LocalCluster(NAME)
    cluster.down()  # a fresh cluster: the stages, the audit policy and the client rate are read at creation
    cluster.up()
    out = TOOLS / "bench" / f"finetune-events-{int(time.time())}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    observer = subprocess.Popen(
        [sys.executable, str(HERE / "observer.py"), str(cluster.kubeconfig), str(out), "p1-", "team-"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert observer.stdout is not None and "watching" in observer.stdout.readline()
        cluster.install_chart(values={"reconcileSeconds": 60, "logLevel": "WARNING"})
        operator = OperatorProcess(cluster).start()
        assert operator.proc is not None
        log = EventLog(out)
        results: dict[str, Any] = {"events": str(out)}
        try:
            if args.rounds:
                results["P1"] = p1(cluster, log, args, operator.workdir / "gpu-classes.yaml")
                print(json.dumps({"P1": results["P1"]}, indent=1), flush=True)
            if args.jobs:
                results["P2"] = p2(cluster, log, operator, ProcessStats(operator.proc.pid), args)
                print(json.dumps({"P2": results["P2"]}, indent=1), flush=True)
        finally:
            operator.stop()
        (TOOLS / "bench" / "finetune-last.json").write_text(json.dumps(results, indent=1))
        return 0
    finally:
        observer.terminate()
        if not args.keep:
            cluster.down()


if __name__ == "__main__":
    sys.exit(main())
