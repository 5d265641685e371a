"""What a ServingProfile's children say, as the informers keep them: the candidates' Deployments, their
pods (the engine's IP and readiness; the load pod's report) and the load Jobs. Matched to the profile by
namespace and owner-UID label, as every child of ours is."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod

from adapterops.deploy.builders import LABEL_COMPONENT, LABEL_REVISION
from adapterops.runtime.informer import Item
from adapterops.servingprofile.builders import LABEL_PROFILE, LABEL_PROFILE_UID

TERMINATION_MESSAGE_LIMIT = 4096


@dataclass(frozen=True)
class CandidateDeployment:
    name: str
    revision: str
    created: datetime | None


@dataclass(frozen=True)
class ProfilePod:
    name: str
    revision: str
    component: str  # serving or profile-load
    ip: str | None
    ready: bool
    report: str | None  # the load container's termination message


@dataclass(frozen=True)
class LoadRun:
    name: str
    revision: str
    complete: bool
    failed: bool
    message: str


def _owner(meta: Any) -> tuple[tuple[str, str], tuple[str, str], dict[str, str]] | None:
    labels = (meta.labels if meta else None) or {}
    if meta is None or meta.uid is None or meta.name is None or meta.namespace is None:
        return None
    if LABEL_PROFILE_UID not in labels or LABEL_PROFILE not in labels:
        return None
    return (meta.namespace, labels[LABEL_PROFILE_UID]), (meta.namespace, labels[LABEL_PROFILE]), labels


def deployment_item(deployment: Deployment) -> Item[CandidateDeployment] | None:
    meta = deployment.metadata
    found = _owner(meta)
    if found is None or meta is None or meta.uid is None or meta.name is None:
        return None
    group, key, labels = found
    data = CandidateDeployment(meta.name, labels.get(LABEL_REVISION, ""), meta.creationTimestamp)
    return Item(meta.uid, group, key, data)


def pod_item(pod: Pod) -> Item[ProfilePod] | None:
    meta = pod.metadata
    found = _owner(meta)
    if found is None or meta is None or meta.uid is None or meta.name is None:
        return None
    if pod.spec is not None and pod.spec.hostNetwork:
        return None  # never a candidate of ours: load would be sent to whatever listens on the node
    group, key, labels = found
    status = pod.status
    ready = any(c.type == "Ready" and c.status == "True" for c in (status.conditions if status else None) or [])
    report = None
    for cs in (status.containerStatuses if status else None) or []:
        t = cs.state.terminated if cs.state else None
        if t is not None and t.message:
            report = t.message
    data = ProfilePod(
        name=meta.name,
        revision=labels.get(LABEL_REVISION, ""),
        component=labels.get(LABEL_COMPONENT, ""),
        ip=status.podIP if status else None,
        ready=ready and meta.deletionTimestamp is None,
        report=report,
    )
    return Item(meta.uid, group, key, data)


def job_item(job: Job) -> Item[LoadRun] | None:
    meta = job.metadata
    found = _owner(meta)
    if found is None or meta is None or meta.uid is None or meta.name is None:
        return None
    group, key, labels = found
    conditions = {c.type: c for c in (job.status.conditions if job.status and job.status.conditions else [])}
    failed = conditions.get("Failed")
    complete = conditions.get("Complete")
    run = LoadRun(
        name=meta.name,
        revision=labels.get(LABEL_REVISION, ""),
        complete=complete is not None and complete.status == "True",
        failed=failed is not None and failed.status == "True",
        message=f"{failed.reason or ''}: {failed.message or ''}".strip(": ") if failed is not None else "",
    )
    return Item(meta.uid, group, key, run)


@dataclass(frozen=True)
class LoadReport:
    """The load generator's own account of its window (Unix seconds) and client-side counts."""

    start: float
    end: float
    sent: int
    ok: int
    errors: int


def parse_report(message: str | None) -> LoadReport | str:
    """The report, or why it cannot be used."""
    if not message:
        return "the load container left no report in its termination message"
    if len(message.encode()) > TERMINATION_MESSAGE_LIMIT:
        return f"the load report is larger than {TERMINATION_MESSAGE_LIMIT} bytes"
    try:
        doc = json.loads(message)
        report = LoadReport(
            float(doc["start"]), float(doc["end"]), int(doc["sent"]), int(doc["ok"]), int(doc["errors"])
        )
    except (ValueError, KeyError, TypeError) as exc:
        return f"the load report is not the load generator's JSON ({type(exc).__name__})"
    if not report.end > report.start:
        return "the load report's window is empty"
    return report
