"""P5: the operator at rest — CPU and memory against the number of objects it watches (a benchmark).

On a local cluster of its own, the chart installed and the operator running under the chart's identity
(one process, the leader), this creates FineTuneJobs (the shipped 20-trial sweep, suspended: planned, no
trial started) and ModelDeployments (following those sweeps, so waiting for a champion: a stable Service
and a status, no pods), half each, in steps up to the largest count. At each step it waits until every
object's status describes its generation, lets a resync period pass (the chart's 300 s), then samples
the operator process for `--seconds` (one resync period, so every object's periodic look counts): CPU as
the share of one core (its own utime+stime over wall time, from /proc, so the other processes' load does
not count) and RSS (VmRSS, every 5 s). Figures: medians with min-max over the samples, and RSS per
object between steps.

    .venv/bin/python bench/resting/run.py                          # 0, 100, 1000, 5000 objects (~50 min)
    .venv/bin/python bench/resting/run.py --counts 0 100 --resync 30 --seconds 30   # a quick look

What could make these figures wrong: the resync period sets the idle work (at 30 s, 5000 objects cost
8.5% of a core, about 10x the 300 s default); a busier API server slows each reconcile but the CPU time
is the operator's own; RSS after a peak stays high (CPython rarely returns freed arenas), so each step's
figure is the high-water mark of getting there, not only of resting there; objects here have short specs
and no history.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "hack")]

import yaml  # noqa: E402

from testworld.cluster import LocalCluster, OperatorProcess, wait_for  # noqa: E402

EXAMPLE = REPO / "manifests" / "examples" / "finetunejob-nemotron-sweep.yaml"
RESYNC_SECONDS = 300  # the chart's default (values.yaml reconcileSeconds)
BATCH = 200  # objects per kubectl apply
NAMESPACES = 10
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def finetunejob(index: int) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"] = {"name": f"sweep-{index:05d}", "namespace": f"rest-{index % NAMESPACES}"}
    doc["spec"]["suspend"] = True
    doc["spec"].pop("storageSecretRef", None)
    return doc


def modeldeployment(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "adapterops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": f"serve-{index:05d}", "namespace": f"rest-{index % NAMESPACES}"},
        "spec": {
            "baseModel": {"name": "nvidia/Llama-3.1-Nemotron-Nano-8B-v1"},
            "runtime": {"engine": "nim", "gpuType": "H100"},
            "adapters": [{"name": "commerce", "fineTuneJobRef": {"name": f"sweep-{index:05d}"}}],
        },
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def settled(cluster: LocalCluster, total: int) -> bool:
    count = 0
    for kind in ("ftj", "mdep"):
        for obj in cluster.get(kind, "-A")["items"]:
            status = obj.get("status") or {}
            if status.get("observedGeneration") != obj["metadata"].get("generation"):
                return False
            count += 1
    print(f"    {count}/{total} objects with a current status", flush=True)
    return count == total


def sample(pid: int, seconds: float) -> dict[str, Any]:
    rss, cpu_shares = [], []
    for _ in range(max(1, int(seconds // 5))):
        cpu0, wall0 = cpu_seconds(pid), time.monotonic()
        time.sleep(5)
        cpu_shares.append(100 * (cpu_seconds(pid) - cpu0) / (time.monotonic() - wall0))
        rss.append(rss_mb(pid))
    return {
        "cpu_percent_of_a_core": {
            "median": round(statistics.median(cpu_shares), 2),
            "min": round(min(cpu_shares), 2),
            "max": round(max(cpu_shares), 2),
        },
        "rss_mb": {"median": round(statistics.median(rss), 1), "min": round(min(rss), 1), "max": round(max(rss), 1)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[0, 100, 1000, 5000])
    parser.add_argument("--seconds", type=float, default=RESYNC_SECONDS, help="sampling window (a resync period)")
    parser.add_argument("--resync", type=float, default=RESYNC_SECONDS, help="the operator's resync period")
    parser.add_argument("--keep", action="store_true", help="leave the benchmark cluster up")
    args = parser.parse_args()
    cluster = LocalCluster("adapterops-rest")
    cluster.down()
    cluster.up()
    try:
        cluster.install_chart(values={"reconcileSeconds": args.resync, "logLevel": "WARNING"})
        for ns in range(NAMESPACES):
            cluster.ensure_namespace(f"rest-{ns}")
        operator = OperatorProcess(cluster).start()
        assert operator.proc is not None
        try:
            rows = []
            made = 0
            for count in sorted(args.counts):
                while made < count:
                    batch = range(made // 2, min(count, made + BATCH) // 2)
                    docs = [finetunejob(i) for i in batch] + [modeldeployment(i) for i in batch]
                    cluster.apply(yaml.safe_dump_all(docs))
                    made += 2 * len(batch)
                wait_for(functools.partial(settled, cluster, made), 1800, f"{made} objects to settle", interval=10)
                time.sleep(args.resync)  # resting: past the reconciles that creation caused
                row = {"objects": made, **sample(operator.proc.pid, args.seconds)}
                rows.append(row)
                print(json.dumps(row), flush=True)
            for low, high in itertools.pairwise(rows):
                grew = high["rss_mb"]["median"] - low["rss_mb"]["median"]
                per = 1024 * grew / (high["objects"] - low["objects"])
                print(f"RSS per object {low['objects']} -> {high['objects']}: {per:.1f} KiB", flush=True)
            print(json.dumps({"P5": rows}), flush=True)
        finally:
            operator.stop()
    finally:
        if not args.keep:
            cluster.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
