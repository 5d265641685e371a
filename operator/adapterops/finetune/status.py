"""A FineTuneJob's status, built from the leaderboard rows (typed: `FineTuneJobStatus`).

Champion selection (objective judgeScore): the highest mean judge score; ties go to the lower
validation loss, then to the earlier trial in the plan. Objective validationLoss: the lowest loss;
ties go to the higher judge score, then to the earlier trial. A trial without the objective's value
(e.g. its judge was unavailable) is never champion.
"""

from __future__ import annotations

from adapterops.api.finetunejob import Champion, FineTuneJobSpec, FineTuneJobStatus, Trial, TrialCounts
from adapterops.runtime.acceptance import Refusal
from adapterops.runtime.conditions import set_condition


def champion(rows: list[Trial], metric: str) -> Champion | None:
    eligible = [
        r
        for r in rows
        if r.state == "Succeeded"
        and r.adapter_uri
        and (r.judge_score if metric == "judgeScore" else r.validation_loss) is not None
    ]
    if not eligible:
        return None
    inf = float("inf")
    if metric == "judgeScore":
        best = min(eligible, key=lambda r: (-(r.judge_score or 0.0), _or(r.validation_loss, inf), r.index))
    else:
        best = min(eligible, key=lambda r: (_or(r.validation_loss, inf), -_or(r.judge_score, -inf), r.index))
    assert best.adapter_uri is not None
    return Champion(
        trial=best.name,
        adapter_uri=best.adapter_uri,
        parameters=best.parameters,
        validation_loss=best.validation_loss,
        judge_score=best.judge_score,
    )


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def sweep_status(
    old: FineTuneJobStatus, rows: list[Trial], spec: FineTuneJobSpec, generation: int | None, planned: str
) -> FineTuneJobStatus:
    counts = TrialCounts(
        total=len(rows),
        pending=sum(r.state == "Pending" for r in rows),
        running=sum(r.state == "Running" for r in rows),
        succeeded=sum(r.state == "Succeeded" for r in rows),
        failed=sum(r.state == "Failed" for r in rows),
    )
    done = counts.succeeded + counts.failed
    finished = done == counts.total
    best = champion(rows, spec.objective.metric)
    g = generation
    summary = f"{counts.running} running, {counts.succeeded} succeeded, {counts.failed} failed of {counts.total}"
    suspended = spec.suspend and not finished
    running = not finished and (counts.running > 0 or not suspended)
    if finished and best:
        succeeded, failed, reason, message = True, False, "ChampionSelected", f"champion {best.trial}; {summary}"
    elif finished:
        succeeded, failed = False, True
        reason = "AllTrialsFailed" if counts.succeeded == 0 else "NoChampion"
        message = (
            f"no trial has a {spec.objective.metric}; {summary}"
            if counts.succeeded
            else f"every trial failed; {summary}"
        )
    else:
        succeeded, failed, reason, message = False, False, "InProgress", summary
    conditions = old.conditions
    conditions = set_condition(conditions, "Accepted", True, "Accepted", planned, g)
    conditions = set_condition(
        conditions,
        "Suspended",
        suspended,
        "SuspendedBySpec" if suspended else "NotSuspended",
        "spec.suspend is true: no new trials start" if suspended else "",
        g,
    )
    conditions = set_condition(
        conditions,
        "Running",
        running,
        "TrialsRunning" if running else ("SweepFinished" if finished else "Suspended"),
        summary,
        g,
    )
    conditions = set_condition(conditions, "Succeeded", succeeded, reason, message, g)
    conditions = set_condition(conditions, "Failed", failed, reason, message, g)
    if succeeded:
        state = "Succeeded"
    elif failed:
        state = "Failed"
    elif suspended:
        state = "Suspended"
    elif done or counts.running or any(r.attempts for r in rows):
        state = "Running"
    else:
        state = "Pending"
    starts = [r.start_time for r in rows if r.start_time]
    ends = [r.completion_time for r in rows if r.completion_time]
    return FineTuneJobStatus(
        observed_generation=g,
        conditions=conditions,
        state=state,
        progress=f"{done}/{counts.total}",
        trial_counts=counts,
        trials=rows,
        champion=best,
        start_time=min(starts) if starts else None,
        completion_time=max(ends) if finished and ends else None,
    )


def refused_status(old: FineTuneJobStatus, refusal: Refusal, generation: int | None) -> FineTuneJobStatus:
    """Accepted=False: nothing is created; the message names the field."""
    conditions = set_condition(old.conditions, "Accepted", False, refusal.reason, refusal.message, generation)
    return old.model_copy(
        update={"conditions": conditions, "observed_generation": generation, "state": old.state or "Pending"}
    )
