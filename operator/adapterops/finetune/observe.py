"""FineTuneJob reconciliation, the pure part: validation, trial state from Jobs and pods, the champion,
which trials to start next, and the status. The controller does the I/O around these functions.

Champion selection (objective judgeScore): the highest mean judge score; ties go to the lower
validation loss, then to the earlier trial in the plan. Objective validationLoss: the lowest loss;
ties go to the higher judge score, then to the earlier trial. A trial without the objective's value
(e.g. its judge was unavailable) is never champion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from adapterops.api.finetunejob import FineTuneJobSpec
from adapterops.config import Config
from adapterops.finetune.builders import LABEL_TRIAL
from adapterops.finetune.plan import PlanError, PlannedTrial, plan
from adapterops.runtime.conditions import set_condition
from adapterops_common.contract import TERMINATION_MESSAGE_LIMIT, TrialResult, explain

TERMINAL = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Acceptance:
    spec: FineTuneJobSpec | None
    trials: list[PlannedTrial]
    error: str | None  # why the spec is refused, naming the field
    reason: str


def accept(name: str, spec_doc: dict[str, Any], config: Config) -> Acceptance:
    """Checks that need the operator's knowledge (GPU classes) or a computation (the sweep plan)."""
    try:
        spec = FineTuneJobSpec.model_validate(spec_doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = "spec." + ".".join(str(p) for p in err["loc"])
        return Acceptance(None, [], f"{field}: {err['msg']}", "InvalidSpec")
    gpu = spec.resources.gpu_type
    if gpu not in config.gpu_classes:
        known = ", ".join(sorted(config.gpu_classes)) or "none configured"
        return Acceptance(
            spec, [], f"spec.resources.gpuType: unknown GPU class {gpu!r}; this cluster has: {known}", "UnknownGpuClass"
        )
    per_node = config.gpu_classes[gpu].gpus_per_node
    if spec.resources.gpus_per_trial > per_node:
        return Acceptance(
            spec,
            [],
            f"spec.resources.gpusPerTrial: {spec.resources.gpus_per_trial} GPUs per node, but {gpu} nodes have "
            f"{per_node}; use at most {per_node} (or more nodes)",
            "TooManyGpus",
        )
    try:
        trials = plan(name, spec)
    except PlanError as exc:
        return Acceptance(spec, [], str(exc), "InvalidSweep")
    return Acceptance(spec, trials, None, "Accepted")


# --------------------------------------------------------------------------- observing trials


def job_summary(body: dict[str, Any]) -> dict[str, Any]:
    """What the reconcile needs of a trial Job (kept small: indices hold one per trial)."""
    status = body.get("status") or {}
    conditions = {
        c["type"]: {
            "status": c.get("status"),
            "reason": c.get("reason", ""),
            "message": c.get("message", ""),
            "time": c.get("lastTransitionTime"),
        }
        for c in status.get("conditions") or []
    }
    return {
        "name": body["metadata"]["name"],
        "uid": body["metadata"].get("uid"),
        "suspended": bool((body.get("spec") or {}).get("suspend")),
        "active": status.get("active", 0),
        "failed": status.get("failed", 0),
        "succeeded": status.get("succeeded", 0),
        "startTime": status.get("startTime"),
        "completionTime": status.get("completionTime"),
        "conditions": conditions,
    }


def engine_summary(body: dict[str, Any]) -> dict[str, Any]:
    """A JobSet or PyTorchJob trial, in the shape of `job_summary` (Complete/Failed conditions)."""
    status = body.get("status") or {}
    kind = body["kind"]
    spec = body.get("spec") or {}
    done = {"JobSet": ("Completed", "Failed"), "PyTorchJob": ("Succeeded", "Failed")}[kind]
    conditions = {}
    for c in status.get("conditions") or []:
        mapped = {done[0]: "Complete", done[1]: "Failed"}.get(c["type"])
        if mapped:
            conditions[mapped] = {
                "status": c.get("status"),
                "reason": c.get("reason", ""),
                "message": c.get("message", ""),
                "time": c.get("lastTransitionTime"),
            }
    if kind == "JobSet":
        active = sum(r.get("active", 0) for r in status.get("replicatedJobsStatus") or [])
        suspended = bool(spec.get("suspend"))
    else:
        active = sum(r.get("active", 0) for r in (status.get("replicaStatuses") or {}).values())
        suspended = bool((spec.get("runPolicy") or {}).get("suspend"))
    return {
        "name": body["metadata"]["name"],
        "uid": body["metadata"].get("uid"),
        "suspended": suspended,
        "active": active,
        "failed": status.get("restarts", 0),
        "succeeded": 0,
        "startTime": status.get("startTime") or body["metadata"].get("creationTimestamp"),
        "completionTime": status.get("completionTime"),
        "conditions": conditions,
    }


def pod_summary(body: dict[str, Any], container: str) -> dict[str, Any]:
    """What the reconcile needs of a trial pod. On several nodes only rank 0 reports the result."""
    status = body.get("status") or {}
    labels = body["metadata"].get("labels") or {}
    rank0 = labels.get("batch.kubernetes.io/job-completion-index", "0") == "0" and (
        labels.get("training.kubeflow.org/replica-type", "master") == "master"
    )
    terminated = None
    for cs in status.get("containerStatuses") or []:
        if rank0 and cs.get("name") in (container, "pytorch") and (cs.get("state") or {}).get("terminated"):
            t = cs["state"]["terminated"]
            terminated = {k: t.get(k) for k in ("exitCode", "reason", "message", "startedAt", "finishedAt")}
    return {
        "name": body["metadata"]["name"],
        "job": labels.get(LABEL_TRIAL),
        "created": body["metadata"].get("creationTimestamp"),
        "phase": status.get("phase", "Pending"),
        "leader": rank0,
        "terminated": terminated,
    }


def parse_result(message: str | None) -> tuple[TrialResult | None, str | None]:
    """The trial's result document, or why it cannot be used."""
    if not message:
        return None, "ResultMissing: the trial container left no result in its termination message"
    if len(message.encode()) > TERMINATION_MESSAGE_LIMIT:
        size = len(message.encode())
        return None, f"ResultTooLarge: the termination message is {size} bytes (limit {TERMINATION_MESSAGE_LIMIT})"
    try:
        return TrialResult.model_validate_json(message), None
    except ValidationError as exc:
        # e.g. a trainer image of another contract version: the message names the field and the version.
        return None, f"ResultMalformed: {explain(exc, TrialResult)}"


def _latest(pods: list[dict[str, Any]], phase: str) -> dict[str, Any] | None:
    matching = [p for p in pods if p["phase"] == phase]
    return max(matching, key=lambda p: p["created"] or "") if matching else None


def observe_trial(
    planned: PlannedTrial, job: dict[str, Any] | None, pods: list[dict[str, Any]], old: dict[str, Any] | None
) -> dict[str, Any]:
    """One leaderboard row, recomputed from the trial's Job and pods."""
    row: dict[str, Any] = {"name": planned.name, "index": planned.index, "parameters": planned.parameters}
    pods = [p for p in pods if p.get("leader", True)]  # one pod per attempt: the rank-0 pod
    if job is None:
        return {**row, "state": "Pending", "attempts": 0}
    row["attempts"] = max(len(pods), job["active"] + job["failed"] + job["succeeded"])
    row["startTime"] = job["startTime"]
    complete, failed = job["conditions"].get("Complete"), job["conditions"].get("Failed")
    if complete and complete["status"] == "True":
        row["completionTime"] = job["completionTime"] or complete["time"]
        pod = _latest(pods, "Succeeded")
        if pod is None and old and old.get("state") == "Succeeded":
            return old  # the pod is gone (deleted or evicted by GC); its result was recorded before
        result, problem = parse_result(pod["terminated"]["message"] if pod and pod["terminated"] else None)
        if result is None:
            return {**row, "state": "Failed", "message": problem}
        if result.status != "succeeded":
            return {**row, "state": "Failed", "message": f"{result.reason}: {result.message}"}
        return {**row, **_scores(result), "state": "Succeeded"}
    if failed and failed["status"] == "True":
        row["completionTime"] = failed["time"]
        return {**row, "state": "Failed", "message": _failure_message(pods, failed)}
    if job["suspended"]:
        return {**row, "state": "Pending", "message": "waiting for Kueue to admit the Job"}
    if job["active"] or any(p["phase"] == "Running" for p in pods):
        return {**row, "state": "Running"}
    return {**row, "state": "Pending"}


def _scores(result: TrialResult) -> dict[str, Any]:
    out: dict[str, Any] = {"validationLoss": result.validation_loss, "adapterUri": result.adapter_uri}
    if result.judge and result.judge.status == "ok":
        out["judgeScore"] = result.judge.mean
    elif result.judge:
        out["message"] = f"judge {result.judge.status}: {result.judge.message or 'no score'}"
    return {k: v for k, v in out.items() if v is not None}


def _failure_message(pods: list[dict[str, Any]], condition: dict[str, Any]) -> str:
    pod = _latest(pods, "Failed")
    job_reason = f"{condition['reason']}: {condition['message']}".strip(": ")
    if pod is None or pod["terminated"] is None:
        return job_reason
    term = pod["terminated"]
    result, _ = parse_result(term.get("message"))
    if result is not None and result.reason:
        return f"{result.reason}: {result.message or ''} ({job_reason})".strip()
    return f"exit code {term.get('exitCode')} ({term.get('reason') or 'Error'}); {job_reason}"


# --------------------------------------------------------------------------- deciding


def champion(rows: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    key = "judgeScore" if metric == "judgeScore" else "validationLoss"
    eligible = [r for r in rows if r["state"] == "Succeeded" and r.get(key) is not None and r.get("adapterUri")]
    if not eligible:
        return None
    inf = float("inf")
    if metric == "judgeScore":
        best = min(eligible, key=lambda r: (-r["judgeScore"], r.get("validationLoss", inf), r["index"]))
    else:
        best = min(eligible, key=lambda r: (r["validationLoss"], -r.get("judgeScore", -inf), r["index"]))
    out = {"trial": best["name"], "adapterUri": best["adapterUri"], "parameters": best["parameters"]}
    out.update({k: best[k] for k in ("validationLoss", "judgeScore") if k in best})
    return out


def to_start(
    trials: list[PlannedTrial], rows: list[dict[str, Any]], existing: set[str], parallelism: int, suspend: bool
) -> list[PlannedTrial]:
    """The next trials in plan order, keeping at most `parallelism` in flight."""
    if suspend:
        return []
    busy = sum(1 for r in rows if r["name"] in existing and r["state"] not in TERMINAL)
    free = max(0, parallelism - busy)
    return [t for t in trials if t.name not in existing][:free]


def sweep_status(
    old: dict[str, Any],
    rows: list[dict[str, Any]],
    spec: FineTuneJobSpec,
    generation: int | None,
    accepted_message: str,
) -> dict[str, Any]:
    counts = {s: sum(1 for r in rows if r["state"] == s) for s in ("Pending", "Running", "Succeeded", "Failed")}
    total = len(rows)
    done = counts["Succeeded"] + counts["Failed"]
    finished = done == total
    best = champion(rows, spec.objective.metric)
    conditions = list(old.get("conditions") or [])
    g = generation
    conditions = set_condition(conditions, "Accepted", True, "Accepted", accepted_message, g)
    summary = f"{counts['Running']} running, {counts['Succeeded']} succeeded, {counts['Failed']} failed of {total}"
    suspended = spec.suspend and not finished
    conditions = set_condition(
        conditions,
        "Suspended",
        suspended,
        "SuspendedBySpec" if suspended else "NotSuspended",
        "spec.suspend is true: no new trials start" if suspended else "",
        g,
    )
    running = not finished and (counts["Running"] > 0 or not suspended)
    conditions = set_condition(
        conditions,
        "Running",
        running,
        "TrialsRunning" if running else ("SweepFinished" if finished else "Suspended"),
        summary,
        g,
    )
    if finished and best:
        succeeded, failed = True, False
        reason, message = "ChampionSelected", f"champion {best['trial']}; {summary}"
    elif finished:
        succeeded, failed = False, True
        reason = "AllTrialsFailed" if counts["Succeeded"] == 0 else "NoChampion"
        message = (
            f"no trial has a {spec.objective.metric}; {summary}"
            if counts["Succeeded"]
            else f"every trial failed; {summary}"
        )
    else:
        succeeded, failed, reason, message = False, False, "InProgress", summary
    conditions = set_condition(conditions, "Succeeded", succeeded, reason, message, g)
    conditions = set_condition(
        conditions, "Failed", failed, reason if failed else "InProgress" if not finished else reason, message, g
    )
    state = (
        "Succeeded"
        if succeeded
        else "Failed"
        if failed
        else "Suspended"
        if suspended
        else "Running"
        if done or counts["Running"] or any(r["attempts"] for r in rows)
        else "Pending"
    )
    starts = [r["startTime"] for r in rows if r.get("startTime")]
    ends = [r["completionTime"] for r in rows if r.get("completionTime")]
    status: dict[str, Any] = {
        "observedGeneration": g,
        "conditions": conditions,
        "state": state,
        "progress": f"{done}/{total}",
        "trialCounts": {
            "total": total,
            "pending": counts["Pending"],
            "running": counts["Running"],
            "succeeded": counts["Succeeded"],
            "failed": counts["Failed"],
        },
        "trials": rows,
    }
    if best:
        status["champion"] = best
    if starts:
        status["startTime"] = min(starts)
    if finished and ends:
        status["completionTime"] = max(ends)
    return status


def refused_status(old: dict[str, Any], acceptance: Acceptance, generation: int | None) -> dict[str, Any]:
    """Accepted=False: nothing is created; the message names the field."""
    conditions = list(old.get("conditions") or [])
    assert acceptance.error is not None
    conditions = set_condition(conditions, "Accepted", False, acceptance.reason, acceptance.error, generation)
    return {**old, "conditions": conditions, "observedGeneration": generation, "state": old.get("state") or "Pending"}
