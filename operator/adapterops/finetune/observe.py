"""What a FineTuneJob's children say: trial Jobs (or JobSets, PyTorchJobs) and their pods summarised
as the informers keep them, and one leaderboard row per trial recomputed from them (level-based: the
same children always give the same row, whatever happened before)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import ConfigMap, Pod
from pydantic import ValidationError

from adapterops.api.common import parse_time as parse
from adapterops.api.finetunejob import Trial
from adapterops.finetune.builders import CONTAINER, CONTENT_HASH, LABEL_JOB, LABEL_JOB_UID, LABEL_TRIAL
from adapterops.finetune.plan import PlannedTrial
from adapterops.runtime.informer import Item
from adapterops_common.contract import TERMINATION_MESSAGE_LIMIT, TrialResult, explain

TERMINAL = ("Succeeded", "Failed")


@dataclass(frozen=True)
class JobCondition:
    status: str
    reason: str = ""
    message: str = ""
    time: datetime | None = None


@dataclass(frozen=True)
class TrialRun:
    """A trial's Job, JobSet or PyTorchJob: the Job's shape (Complete/Failed conditions, pod counts)."""

    name: str
    suspended: bool = False
    active: int = 0
    failed: int = 0
    succeeded: int = 0
    start_time: datetime | None = None
    completion_time: datetime | None = None
    conditions: dict[str, JobCondition] = field(default_factory=dict)

    def condition(self, type_: str) -> JobCondition | None:
        found = self.conditions.get(type_)
        return found if found is not None and found.status == "True" else None


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class TrialPod:
    name: str
    trial: str
    created: datetime | None
    phase: str
    leader: bool = True  # rank 0 of a multi-node trial (the one that reports the result)
    terminated: Terminated | None = None


def _owner(labels: dict[str, str] | None, namespace: str | None) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """((namespace, owner UID), owner key) from a child's labels; None for an object that is not a trial's.
    The group holds the child's own namespace: an owner's children are in its namespace (as owner references
    are), and anyone who may create a Job elsewhere can copy the labels, so a child of the same UID label in
    another namespace is nobody's."""
    labels = labels or {}
    if LABEL_JOB_UID not in labels or LABEL_JOB not in labels or namespace is None:
        return None
    return (namespace, labels[LABEL_JOB_UID]), (namespace, labels[LABEL_JOB])


def job_item(job: Job) -> Item[TrialRun] | None:
    meta = job.metadata
    owner = _owner(meta.labels if meta else None, meta.namespace if meta else None)
    if owner is None or meta is None or meta.uid is None or meta.name is None:
        return None
    status = job.status
    conditions = {
        c.type: JobCondition(c.status, c.reason or "", c.message or "", c.lastTransitionTime)
        for c in (status.conditions if status and status.conditions else [])
    }
    run = TrialRun(
        name=meta.name,
        suspended=bool(job.spec and job.spec.suspend),
        active=(status.active or 0) if status else 0,
        failed=(status.failed or 0) if status else 0,
        succeeded=(status.succeeded or 0) if status else 0,
        start_time=status.startTime if status else None,
        completion_time=status.completionTime if status else None,
        conditions=conditions,
    )
    return Item(meta.uid, owner[0], owner[1], run)


# A JobSet's and a PyTorchJob's terminal conditions, as the Job's.
ENGINE_DONE = {
    "JobSet": {"Completed": "Complete", "Failed": "Failed"},
    "PyTorchJob": {"Succeeded": "Complete", "Failed": "Failed"},
}


def engine_item(body: dict[str, Any]) -> Item[TrialRun] | None:
    """A JobSet or PyTorchJob trial (lightkube gives these add-on kinds as dicts)."""
    meta = body.get("metadata") or {}
    owner = _owner(meta.get("labels"), meta.get("namespace"))
    if owner is None:
        return None
    kind, status, spec = body["kind"], body.get("status") or {}, body.get("spec") or {}
    conditions = {
        ENGINE_DONE[kind][c["type"]]: JobCondition(
            c.get("status", ""), c.get("reason", ""), c.get("message", ""), parse(c.get("lastTransitionTime"))
        )
        for c in status.get("conditions") or []
        if c.get("type") in ENGINE_DONE[kind]
    }
    if kind == "JobSet":
        active = sum(r.get("active", 0) for r in status.get("replicatedJobsStatus") or [])
        suspended = bool(spec.get("suspend"))
    else:
        active = sum(r.get("active", 0) for r in (status.get("replicaStatuses") or {}).values())
        suspended = bool((spec.get("runPolicy") or {}).get("suspend"))
    run = TrialRun(
        name=meta["name"],
        suspended=suspended,
        active=active,
        failed=status.get("restarts", 0),
        start_time=parse(status.get("startTime") or meta.get("creationTimestamp")),
        completion_time=parse(status.get("completionTime")),
        conditions=conditions,
    )
    return Item(meta["uid"], owner[0], owner[1], run)


def pod_item(pod: Pod) -> Item[TrialPod] | None:
    """A trial pod. On several nodes only rank 0 reports the result."""
    meta = pod.metadata
    owner = _owner(meta.labels if meta else None, meta.namespace if meta else None)
    if owner is None or meta is None or meta.uid is None or meta.name is None:
        return None
    labels = meta.labels or {}
    leader = labels.get("batch.kubernetes.io/job-completion-index", "0") == "0" and (
        labels.get("training.kubeflow.org/replica-type", "master") == "master"
    )
    terminated = None
    status = pod.status
    for cs in status.containerStatuses if status and status.containerStatuses else []:
        t = cs.state.terminated if cs.state else None
        if leader and cs.name in (CONTAINER, "pytorch") and t is not None:
            terminated = Terminated(t.exitCode, t.reason, t.message)
    trial_pod = TrialPod(
        name=meta.name,
        trial=labels.get(LABEL_TRIAL, ""),
        created=meta.creationTimestamp,
        phase=(status.phase if status else None) or "Pending",
        leader=leader,
        terminated=terminated,
    )
    return Item(meta.uid, owner[0], owner[1], trial_pod)


def trial_specs_item(configmap: ConfigMap) -> Item[tuple[str, str]] | None:
    """A trials ConfigMap: its name and the content hash it was written with."""
    meta = configmap.metadata
    owner = _owner(meta.labels if meta else None, meta.namespace if meta else None)
    if owner is None or meta is None or meta.uid is None or meta.name is None:
        return None
    digest = (meta.annotations or {}).get(CONTENT_HASH, "")
    return Item(meta.uid, owner[0], owner[1], (meta.name, digest))


def parse_result(message: str | None) -> tuple[TrialResult | None, str | None]:
    """The trial's result document, or why it cannot be used."""
    if not message:
        return None, "ResultMissing: the trial container left no result in its termination message"
    if len(message.encode()) > TERMINATION_MESSAGE_LIMIT:
        size = len(message.encode())
        return None, f"ResultTooLarge: the termination message is {size} bytes (limit {TERMINATION_MESSAGE_LIMIT})"
    try:
        result = TrialResult.model_validate_json(message)
    except ValidationError as exc:
        # e.g. a trainer image of another contract version: the message names the field and the version.
        return None, f"ResultMalformed: {explain(exc, TrialResult)}"
    for name, value in _numbers(result):
        if not math.isfinite(value):
            # A diverged run reports NaN or infinity: not a score to rank, and JSON has no such number.
            return None, f"InvalidResult: {name} is {value} (a diverged run?); a trial's numbers must be finite"
    return result, None


def _numbers(result: TrialResult) -> list[tuple[str, float]]:
    found = [
        ("validationLoss", result.validation_loss),
        ("trainLoss", result.train_loss),
        ("durationSeconds", result.duration_seconds),
    ]
    if result.judge is not None:
        found += [("judge.mean", result.judge.mean), ("judge.std", result.judge.std)]
    return [(name, value) for name, value in found if value is not None]


def _latest(pods: list[TrialPod], phase: str) -> TrialPod | None:
    matching = [p for p in pods if p.phase == phase]
    return max(matching, key=lambda p: p.created or datetime.min) if matching else None


def observe_trial(planned: PlannedTrial, run: TrialRun | None, pods: list[TrialPod], old: Trial | None) -> Trial:
    """One leaderboard row, recomputed from the trial's Job and pods."""
    row = Trial(name=planned.name, index=planned.index, parameters=planned.parameters, state="Pending")
    if run is None:
        return row
    pods = [p for p in pods if p.leader]  # one pod per attempt: the rank-0 pod
    row.attempts = max(len(pods), run.active + run.failed + run.succeeded)
    row.start_time = run.start_time
    complete, failed = run.condition("Complete"), run.condition("Failed")
    if complete:
        row.completion_time = run.completion_time or complete.time
        pod = _latest(pods, "Succeeded")
        if pod is None and old is not None and old.state == "Succeeded":
            return old  # the pod is gone (deleted or evicted by GC); its result was recorded before
        result, problem = parse_result(pod.terminated.message if pod and pod.terminated else None)
        if result is None:
            return row.model_copy(update={"state": "Failed", "message": problem})
        if result.status != "succeeded":
            return row.model_copy(update={"state": "Failed", "message": f"{result.reason}: {result.message}"})
        return row.model_copy(update={**_scores(result), "state": "Succeeded"})
    if failed:
        row.completion_time = failed.time
        return row.model_copy(update={"state": "Failed", "message": _failure_message(pods, failed)})
    if run.suspended:
        return row.model_copy(update={"message": "waiting for Kueue to admit the Job"})
    if run.active or any(p.phase == "Running" for p in pods):
        return row.model_copy(update={"state": "Running"})
    return row


def baseline_pairwise(pods: list[TrialPod]) -> dict[str, Any] | None:
    """The baseline Job's pairwise comparison (champion against base model), from its succeeded pod's result."""
    pod = _latest([p for p in pods if p.leader], "Succeeded")
    result, _ = parse_result(pod.terminated.message if pod and pod.terminated else None)
    if result is None or result.pairwise is None:
        return None
    return result.pairwise.model_dump(exclude_none=True)


def _scores(result: TrialResult) -> dict[str, Any]:
    out: dict[str, Any] = {"validation_loss": result.validation_loss, "adapter_uri": result.adapter_uri}
    if result.judge and result.judge.status == "ok":
        out["judge_score"] = result.judge.mean
    elif result.judge:
        out["message"] = f"judge {result.judge.status}: {result.judge.message or 'no score'}"
    return {k: v for k, v in out.items() if v is not None}


def _failure_message(pods: list[TrialPod], condition: JobCondition) -> str:
    pod = _latest(pods, "Failed")
    job_reason = f"{condition.reason}: {condition.message}".strip(": ")
    if pod is None or pod.terminated is None:
        return job_reason
    term = pod.terminated
    result, _ = parse_result(term.message)
    if result is not None and result.reason:
        return f"{result.reason}: {result.message or ''} ({job_reason})".strip()
    return f"exit code {term.exit_code} ({term.reason or 'Error'}); {job_reason}"
