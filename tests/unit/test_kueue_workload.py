"""Why a queued trial waits, in Kueue's words: the trial's Workload (matched by the trial labels Kueue copies from
the Job's pod template into the Workload's pod set) gives its row the reason and message of the condition that
holds it back. Condition types, reasons and messages as Kueue v0.17.0 writes them (pkg/workload,
pkg/scheduler/flavorassigner, pkg/scheduler/preemption; tests/cluster/test_kueue_admission.py sees them live)."""

from __future__ import annotations

from typing import Any

from test_finetune import TRIALS, job

from adapterops.finetune.builders import LABEL_JOB, LABEL_JOB_UID, LABEL_TRIAL
from adapterops.finetune.observe import observe_trial, workload_item

QUOTA = (
    "couldn't assign flavors to pod set main: "
    "insufficient unused quota for nvidia.com/gpu in flavor h100, 1 more needed"
)
PREEMPTED = (
    "Preempted to accommodate a workload (UID: 7c1, JobUID: 9e2) due to prioritization in the ClusterQueue; "
    "preemptor path: /cq; preemptee path: /cq"
)


def workload(trial: str, *conditions: dict[str, str], namespace: str = "ml", labels: bool = True) -> dict[str, Any]:
    template_labels = {LABEL_JOB: "sweep", LABEL_JOB_UID: "owner", LABEL_TRIAL: trial} if labels else {}
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta1",
        "kind": "Workload",
        "metadata": {
            "name": f"job-{trial}-3f2a1",
            "namespace": namespace,
            "uid": f"wl-{trial}",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"kueue.x-k8s.io/job-uid": "9e2"},
        },
        "spec": {
            "queueName": "gpu-team",
            "podSets": [{"name": "main", "count": 1, "template": {"metadata": {"labels": template_labels}}}],
        },
        "status": {"conditions": list(conditions)},
    }


def cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def test_a_workload_is_grouped_under_its_trials_finetunejob_in_its_namespace() -> None:
    item = workload_item(workload("sweep-t00", cond("QuotaReserved", "False", "Pending", QUOTA)))
    assert item is not None and item.group == ("ml", "owner") and item.key == ("ml", "sweep")
    assert item.data.trial == "sweep-t00" and not item.data.admitted
    assert item.data.explain() == f"Pending: {QUOTA}"


def test_a_workload_without_the_trial_labels_is_nobodys() -> None:
    assert workload_item(workload("sweep-t00", labels=False)) is None


def test_a_suspended_trial_says_why_kueue_holds_it() -> None:
    waiting = workload_item(workload("sweep-t00", cond("QuotaReserved", "False", "Pending", QUOTA)))
    assert waiting is not None
    row = observe_trial(TRIALS[0], job("sweep-t00", suspended=True), [], None, waiting.data)
    assert row.state == "Pending"
    assert row.message == f"waiting for Kueue to admit the Job: Pending: {QUOTA}"


def test_a_preempted_trial_names_the_preemption_over_the_requeue() -> None:
    # After an eviction Kueue sets QuotaReserved=False (Pending, the eviction's message) and keeps Evicted=True.
    body = workload(
        "sweep-t00",
        cond("QuotaReserved", "False", "Pending", PREEMPTED),
        cond("Evicted", "True", "Preempted", PREEMPTED),
        cond("Preempted", "True", "InClusterQueue", PREEMPTED),
        cond("Admitted", "False", "NoReservation", "The workload has no reservation"),
    )
    state = workload_item(body)
    assert state is not None
    row = observe_trial(TRIALS[0], job("sweep-t00", suspended=True), [], None, state.data)
    assert row.message == f"waiting for Kueue to admit the Job: Preempted: {PREEMPTED}"


def test_an_admitted_workload_adds_nothing_to_a_running_row() -> None:
    admitted = workload_item(
        workload("sweep-t00", cond("QuotaReserved", "True", "QuotaReserved"), cond("Admitted", "True", "Admitted"))
    )
    assert admitted is not None and admitted.data.admitted
    suspended = observe_trial(TRIALS[0], job("sweep-t00", suspended=True), [], None, admitted.data)
    assert suspended.message == "waiting for Kueue to admit the Job"  # admitted, the Job not resumed yet
