"""Reading the observer's log (bench/finetune/observer.py): what happened, when, by the observer's clock."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any


class EventLog:
    """The observer's JSON lines, read incrementally (the file only grows)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines: list[dict[str, Any]] = []

    def refresh(self) -> list[dict[str, Any]]:
        if self.path.exists():
            with self.path.open() as f:
                f.seek(self.offset)
                chunk = f.read()
            complete = chunk[: chunk.rfind("\n") + 1]  # a line being written stays for the next read
            self.offset += len(complete.encode())
            self.lines += [json.loads(line) for line in complete.splitlines() if line]
        return self.lines

    def of(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.refresh() if e["kind"] == kind and (namespace is None or e["ns"] == namespace)]

    def first_seen(self, kind: str, namespace: str, name: str) -> float | None:
        """When the object was first seen created (a watch ADDED event)."""
        return next((e["t"] for e in self.of(kind, namespace) if e["name"] == name and e["type"] == "ADDED"), None)

    def job_arrivals(self, namespace: str) -> list[float]:
        """When each Job of a namespace appeared, once per Job UID, in order."""
        seen: dict[str, float] = {}
        for e in self.of("Job", namespace):
            if e["type"] == "ADDED":
                seen.setdefault(e["uid"], e["t"])
        return sorted(seen.values())

    def jobs_complete(self, namespace: str) -> int:
        return len({e["uid"] for e in self.of("Job", namespace) if e.get("complete")})


def trials_by_sweep(log: EventLog, prefix: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Per sweep (namespace, FineTuneJob): its Jobs' arrivals and completions, Job UIDs per trial, and the
    pods that succeeded per Job, as the observer saw them."""
    sweeps: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"added": {}, "completed": {}, "uids_by_trial": defaultdict(set), "job_of": {}}
    )
    for e in log.refresh():
        if not e["ns"].startswith(prefix) or e["kind"] != "Job" or not e.get("owner"):
            continue
        sweep = sweeps[(e["ns"], e["owner"])]
        if e["type"] in ("ADDED", "EXISTING"):
            sweep["added"].setdefault(e["uid"], e["t"])
        if e.get("complete"):
            sweep["completed"].setdefault(e["uid"], e["t"])
        sweep["uids_by_trial"][e["trial"]].add(e["uid"])
        sweep["job_of"][e["name"]] = e["uid"]
    return dict(sweeps)


def succeeded_pods_by_job(log: EventLog, prefix: str) -> dict[tuple[str, str], set[str]]:
    pods: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in log.refresh():
        if e["kind"] == "Pod" and e["ns"].startswith(prefix) and e.get("job") and e.get("phase") == "Succeeded":
            pods[(e["ns"], e["job"])].add(e["uid"])
    return pods


def next_trial_latencies(sweep: dict[str, Any], parallelism: int) -> list[float]:
    """Trial finished -> the next trial's Job: with `parallelism` trials at a time, the k-th trial to finish
    frees the slot the (parallelism + k)-th Job takes."""
    added = sorted(sweep["added"].values())
    completed = sorted(sweep["completed"].values())
    return [added[parallelism + k] - completed[k] for k in range(min(len(completed), len(added) - parallelism))]
