"""What the chaos tests share: a ledger of every Job, pod and Deployment a test's namespace ever had (by
UID, through watches that outlive an API server restart), the small sweep and the canary a fault is
injected into, the checks every test ends with, and the figures (recovery times) the suite reports."""

from __future__ import annotations

import json
import re
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from test_finetune_e2e import ftj, sweep, workspace
from test_modeldeployment_e2e import CHALLENGE, cond, mdep

from testworld.cluster import TOOLS, LocalCluster, OperatorProcess, local_volume, wait_for

TRIAL = "adapterops.io/trial"
OWNER_UID = "adapterops.io/finetunejob-uid"
REVISION = "adapterops.io/revision"
LEASE = "adapterops"  # the chart's leader election Lease (ADAPTEROPS_LEADER_ELECTION_NAME's default)
TRAIN_ROWS = 40  # of the shipped 240: the faults are the subject, not the training (~2x faster trials)

# Figures the suite reports at the end (tests/chaos/conftest.py): one dict per measurement.
FIGURES: list[dict[str, Any]] = []


def figure(case: str, what: str, value: float, unit: str = "s", **extra: Any) -> float:
    FIGURES.append({"case": case, "what": what, "value": round(value, 1), "unit": unit, **extra})
    return value


# --------------------------------------------------------------------------- the ledger


@dataclass(frozen=True)
class Seen:
    kind: str
    name: str
    uid: str
    labels: dict[str, str]


class Ledger:
    """Every Job, pod and Deployment of a namespace, by UID, for the whole test: a list then a watch per
    kind that resumes from the last resourceVersion after any failure (an API server restart included),
    so no object created meanwhile goes unseen, however briefly it lived."""

    KINDS = ("Job", "Pod", "Deployment")

    def __init__(self, cluster: LocalCluster, namespace: str) -> None:
        self.namespace = namespace
        api = config.new_client_from_config(str(cluster.kubeconfig))
        batch, core, apps = client.BatchV1Api(api), client.CoreV1Api(api), client.AppsV1Api(api)
        self._listers: dict[str, Callable[..., Any]] = {
            "Job": batch.list_namespaced_job,
            "Pod": core.list_namespaced_pod,
            "Deployment": apps.list_namespaced_deployment,
        }
        self.seen: dict[str, Seen] = {}
        self.listed = {kind: threading.Event() for kind in self.KINDS}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._follow, args=(k,), daemon=True) for k in self.KINDS]

    def __enter__(self) -> Ledger:
        for t in self._threads:
            t.start()
        for kind, listed in self.listed.items():
            assert listed.wait(30), f"the ledger could not list {kind}s"
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()

    def _record(self, kind: str, obj: Any) -> None:
        meta = obj.metadata
        self.seen.setdefault(meta.uid, Seen(kind, meta.name, meta.uid, dict(meta.labels or {})))

    def _follow(self, kind: str) -> None:
        lister, version = self._listers[kind], None
        while not self._stop.is_set():
            try:
                if version is None:
                    listing = lister(self.namespace, _request_timeout=10)
                    for obj in listing.items:
                        self._record(kind, obj)
                    version = listing.metadata.resource_version
                    self.listed[kind].set()
                stream = watch.Watch().stream(
                    lister,
                    self.namespace,
                    resource_version=version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=30,
                    _request_timeout=40,
                )
                for event in stream:
                    version = event["object"].metadata.resource_version
                    if event["type"] != "BOOKMARK":
                        self._record(kind, event["object"])
                    if self._stop.is_set():
                        return
            except client.ApiException as exc:
                if exc.status == 410:  # the version expired: list again (what was seen stays seen)
                    version = None
                self._stop.wait(0.5)
            except Exception:  # the API server is down or restarting: resume from the last version
                self._stop.wait(0.5)

    def of(self, kind: str, **labels: str) -> list[Seen]:
        return [s for s in list(self.seen.values()) if s.kind == kind and labels.items() <= s.labels.items()]

    def per_trial(self, kind: str, owner_uid: str) -> dict[str, int]:
        """How many distinct objects of `kind` each trial of the FineTuneJob with this UID ever had."""
        counts: dict[str, int] = {}
        for s in self.of(kind, **{OWNER_UID: owner_uid}):
            counts[s.labels.get(TRIAL, "")] = counts.get(s.labels.get(TRIAL, ""), 0) + 1
        return counts


# --------------------------------------------------------------------------- the sweep


def small_workspace(cluster: LocalCluster, namespace: str, tiny_model: Path) -> Path:
    root = workspace(cluster, namespace, tiny_model)
    rows = (root / "data" / "train.jsonl").read_text().splitlines()[:TRAIN_ROWS]
    (root / "data" / "train-small.jsonl").write_text("\n".join(rows) + "\n")
    return root


def small_sweep(name: str, rates: list[float], parallelism: int = 2, **overrides: Any) -> dict[str, Any]:
    """One trial per learning rate on the small data set, objective validation loss."""
    doc = sweep(
        name,
        sweep={
            "maxTrials": len(rates),
            "parallelism": parallelism,
            "parameters": {"training.learningRate": {"values": rates}},
        },
        **overrides,
    )
    doc["spec"]["dataset"] = {
        "train": "pvc://work/data/train-small.jsonl",
        "format": "chat",
        "validationFraction": 0.25,
    }
    return doc


def running_trials(cluster: LocalCluster, namespace: str, name: str) -> int:
    return int(ftj(cluster, name, namespace).get("status", {}).get("trialCounts", {}).get("running") or 0)


def trial_pods(cluster: LocalCluster, namespace: str, name: str, phase: str = "Running") -> list[dict[str, Any]]:
    pods = cluster.get("pods", "-n", namespace, "-l", f"adapterops.io/finetunejob={name}")["items"]
    return [p for p in pods if (p.get("status") or {}).get("phase") == phase]


def wait_succeeded(cluster: LocalCluster, namespace: str, name: str, timeout: int = 600) -> None:
    cluster.kubectl(
        "wait",
        "--for=condition=Succeeded",
        f"ftj/{name}",
        "-n",
        namespace,
        f"--timeout={timeout}s",
        timeout=timeout + 20,
    )


def check_sweep(
    cluster: LocalCluster,
    namespace: str,
    name: str,
    root: Path,
    ledger: Ledger,
    pods: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The sweep finished with every trial exactly once (one Job per trial over the whole test; one pod
    per trial unless `pods` says a fault cost it more), every result kept (each row's loss is the one its
    trial wrote), the right champion, and Events naming each trial once."""
    obj = ftj(cluster, name, namespace)
    status, uid = obj["status"], obj["metadata"]["uid"]
    rows = {t["name"]: t for t in status["trials"]}
    total = len(rows)
    assert status["state"] == "Succeeded" and status["progress"] == f"{total}/{total}", status
    assert all(r["state"] == "Succeeded" for r in rows.values()), rows
    assert ledger.per_trial("Job", uid) == dict.fromkeys(rows, 1), "a trial ran as more than one Job"
    assert ledger.per_trial("Pod", uid) == {t: (pods or {}).get(t, 1) for t in rows}, "unexpected trial pods"
    for row in rows.values():
        assert row["adapterUri"].startswith("pvc://work/"), row
        written = root / row["adapterUri"].removeprefix("pvc://work/").removesuffix("/adapter") / "metrics.json"
        result = json.loads(written.read_text())
        assert result["trial"] == row["name"] and result["finetuneJob"] == f"{namespace}/{name}"
        assert round(result["validationLoss"], 6) == row["validationLoss"], (row, result["validationLoss"])
    losses = {n: r["validationLoss"] for n, r in rows.items()}
    assert status["champion"]["trial"] == min(losses, key=lambda n: (losses[n], n))
    for reason in ("TrialStarted", "TrialSucceeded"):
        named = trials_in_events(cluster, namespace, reason, uid)
        assert sorted(named) == sorted(rows), f"{reason} Events named {named}"
    return dict(status)


def trials_in_events(cluster: LocalCluster, namespace: str, reason: str, uid: str) -> list[str]:
    """Trial names announced by Events of `reason` about the FineTuneJob with this UID, each time named."""
    messages = [
        e["message"]
        for e in cluster.get("events", "-n", namespace)["items"]
        if e["reason"] == reason and e["involvedObject"].get("uid") == uid
    ]
    return [name for m in messages for name in re.findall(r"\b[a-z0-9-]+-t\d\d\b", m)]


# --------------------------------------------------------------------------- the canary


def canary_world(cluster: LocalCluster, namespace: str, root: Path | None = None) -> Path:
    """PVC `work` (unless a sweep's workspace made it) and the judge's prompts ConfigMap."""
    if root is None:
        root = local_volume(cluster, namespace, "work", TOOLS / "pvcs" / cluster.name / namespace / "work")
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "canary-prompts"},
            "data": {"prompts.jsonl": CHALLENGE},
        },
        namespace,
    )
    return root


@dataclass
class Look:
    at: float
    stable: str | None
    canary: str | None
    weight: int
    suspended: dict[str, Any]
    metrics: list[dict[str, Any]]


@dataclass
class CanaryTrail:
    """The ModelDeployment's status sampled every half second for the whole test: when it was promoted,
    and what it said meanwhile."""

    cluster: LocalCluster
    namespace: str
    name: str
    looks: list[Look] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> CanaryTrail:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._look()  # what the test saw last (a promotion it waited for) is in the trail too

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._look()

    def _look(self) -> None:
        try:
            obj = mdep(self.cluster, self.name, self.namespace)
        except Exception:  # the API server is down: nothing to see
            return
        status = obj.get("status") or {}
        self.looks.append(
            Look(
                time.monotonic(),
                (status.get("stable") or {}).get("revision"),
                (status.get("canary") or {}).get("revision"),
                int(status.get("canaryWeight") or 0),
                cond(obj, "Suspended"),
                list((status.get("analysis") or {}).get("metrics") or []),
            )
        )

    def promoted_at(self, first_stable: str) -> float | None:
        return next((look.at for look in self.looks if look.stable and look.stable != first_stable), None)

    def stables(self) -> list[str]:
        """The stable revisions seen, in order, each once per stretch."""
        out: list[str] = []
        for look in self.looks:
            if look.stable and (not out or out[-1] != look.stable):
                out.append(look.stable)
        return out

    def between(self, start: float, end: float) -> list[Look]:
        return [look for look in self.looks if start <= look.at <= end]


def wait_canary_step(cluster: LocalCluster, namespace: str, name: str, timeout: float = 180) -> dict[str, Any]:
    """Until the canary serves its first step's traffic (its analysis is under way)."""
    return dict(
        wait_for(
            lambda: (s := mdep(cluster, name, namespace).get("status") or {}).get("canaryWeight") and s,
            timeout,
            f"canary of {name} to serve its first step",
            interval=0.5,
        )
    )


def wait_promoted(cluster: LocalCluster, namespace: str, name: str, first: str, timeout: float = 400) -> dict[str, Any]:
    def promoted() -> dict[str, Any] | None:
        status = mdep(cluster, name, namespace).get("status") or {}
        return status if (status.get("stable") or {}).get("revision") != first and "canary" not in status else None

    return dict(wait_for(promoted, timeout, f"the canary of {name} to be promoted", interval=1))


def check_promoted(status: dict[str, Any], ledger: Ledger, name: str) -> None:
    """Promoted on evidence (every metric's last verdict Pass), each revision's Deployment created once."""
    entry = status["history"][0]
    assert entry["outcome"] == "Promoted", status["history"]
    revisions = [s.labels.get(REVISION) for s in ledger.of("Deployment", **{"adapterops.io/modeldeployment": name})]
    assert len(revisions) == len(set(revisions)), f"a revision's Deployment was created twice: {revisions}"


# --------------------------------------------------------------------------- the operator's replicas


def lease_holder(cluster: LocalCluster, namespace: str) -> str:
    lease = cluster.get("lease", LEASE, "-n", namespace)
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def leader_of(cluster: LocalCluster, namespace: str, replicas: list[OperatorProcess]) -> OperatorProcess | None:
    """The replica that holds the Lease and says so on /readyz."""
    holder = lease_holder(cluster, namespace)
    for replica in replicas:
        if replica.running and holder.startswith(f"{replica.pod_name}_") and replica.role() == "leader":
            return replica
    return None


def reconciles(replica: OperatorProcess) -> int:
    """Reconciles the replica has finished (its adapterops_reconcile_duration_seconds count, all kinds)."""
    total = 0.0
    for line in replica.metrics().splitlines():
        if line.startswith("adapterops_reconcile_duration_seconds_count"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def settled_rss(replica: OperatorProcess, window: float = 6.0, timeout: float = 180.0) -> int:
    """RSS once it stops moving: the median of the last samples when they span under 1% for `window` s."""
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples.append((time.monotonic(), replica.rss_bytes()))
        recent = [rss for at, rss in samples if at >= samples[-1][0] - window]
        if samples[-1][0] - samples[0][0] >= window and (max(recent) - min(recent)) <= 0.01 * max(recent):
            return int(statistics.median(recent))
        time.sleep(1)
    raise TimeoutError(f"the operator's RSS did not settle within {timeout}s: {[r for _, r in samples[-10:]]}")
