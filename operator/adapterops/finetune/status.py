"""A FineTuneJob's status, built from the leaderboard rows (typed: `FineTuneJobStatus`).

Champion selection (objective judgeScore): the highest mean judge score; ties go to the lower
validation loss, then to the earlier trial in the plan. Objective validationLoss: the lowest loss;
ties go to the higher judge score, then to the earlier trial. A trial without the objective's value
(e.g. its judge was unavailable) is never champion.
"""

from __future__ import annotations

from adapterops.api.finetunejob import (
    Baseline,
    Champion,
    FineTuneJobSpec,
    FineTuneJobStatus,
    Improvement,
    PairwiseResult,
    Trial,
    TrialCounts,
)
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


NOT_BETTER = "ChampionNotBetterThanBaseline"


def baseline_wanted(old: FineTuneJobStatus, spec: FineTuneJobSpec) -> bool:
    """spec.baseline.evaluate, except for a job that finished before baselines existed (it is not reopened)."""
    finished_without = old.state in ("Succeeded", "Failed") and old.baseline is None and old.completion_time
    return spec.baseline.evaluate and not finished_without


def improvement(champ: Champion, base: Baseline, spec: FineTuneJobSpec) -> Improvement | None:
    """Positive is better whatever the goal; None when either side lacks the objective's value."""
    metric = spec.objective.metric
    c, b = (
        (champ.judge_score, base.judge_score)
        if metric == "judgeScore"
        else (champ.validation_loss, base.validation_loss)
    )
    if base.state != "Succeeded" or c is None or b is None:
        return None
    absolute = c - b if metric == "judgeScore" else b - c
    margin = spec.baseline.min_improvement
    return Improvement(
        metric=metric,
        absolute=round(absolute, 6),
        relative=round(absolute / abs(b), 6) if b else None,
        min_improvement=margin,
        better_than_baseline=absolute > margin,
    )


def _baseline_verdict(champ: Champion, base: Baseline | None, spec: FineTuneJobSpec) -> tuple[bool, str, str]:
    """The ChampionNotBetterThanBaseline condition of a finished sweep: (status, reason, message)."""
    metric = spec.objective.metric
    if base is None:
        return False, "BaselineSkipped", "spec.baseline.evaluate is false: the champion was not compared"
    if base.state == "Failed":
        return False, "BaselineFailed", f"the baseline evaluation {base.job} failed: {base.message or ''}".strip()
    if champ.improvement is None:
        return False, "BaselineIncomplete", f"the baseline has no {metric}: {base.message or 'no value'}"
    imp = champ.improvement
    value = champ.judge_score if metric == "judgeScore" else champ.validation_loss
    base_value = base.judge_score if metric == "judgeScore" else base.validation_loss
    relative = f" ({imp.relative:+.1%})" if imp.relative is not None else ""
    numbers = (
        f"{metric}: champion {champ.trial} {value:.4g}, base model {base_value:.4g}, improvement "
        f"{imp.absolute:+.4g}{relative}; spec.baseline.minImprovement {imp.min_improvement:g}"
    )
    if imp.better_than_baseline:
        return False, "BetterThanBaseline", numbers
    return True, NOT_BETTER, numbers


def baseline_status(row: Trial, pairwise: PairwiseResult | None = None) -> Baseline:
    return Baseline(
        pairwise=pairwise,
        job=row.name,
        state=row.state,
        validation_loss=row.validation_loss,
        judge_score=row.judge_score,
        message=row.message,
        start_time=row.start_time,
        completion_time=row.completion_time,
    )


def sweep_status(
    old: FineTuneJobStatus,
    rows: list[Trial],
    spec: FineTuneJobSpec,
    generation: int | None,
    planned: str,
    baseline: Trial | None = None,
    pairwise: PairwiseResult | None = None,
) -> FineTuneJobStatus:
    """`baseline`: the baseline Job's row when it is wanted (`baseline_wanted`), else None."""
    counts = TrialCounts(
        total=len(rows),
        pending=sum(r.state == "Pending" for r in rows),
        running=sum(r.state == "Running" for r in rows),
        succeeded=sum(r.state == "Succeeded" for r in rows),
        failed=sum(r.state == "Failed" for r in rows),
    )
    done = counts.succeeded + counts.failed
    trials_done = done == counts.total
    best = champion(rows, spec.objective.metric)
    base = baseline_status(baseline, pairwise) if baseline is not None and trials_done and best is not None else None
    evaluating = base is not None and base.state not in ("Succeeded", "Failed")
    finished = trials_done and not evaluating
    if best is not None and base is not None:
        best.improvement = improvement(best, base, spec)
    g = generation
    summary = f"{counts.running} running, {counts.succeeded} succeeded, {counts.failed} failed of {counts.total}"
    suspended = spec.suspend and not finished  # the baseline Job too waits for spec.suspend: false
    running = not finished and (counts.running > 0 or (base is not None and base.state == "Running") or not suspended)
    if finished and best:
        succeeded, failed, reason, message = True, False, "ChampionSelected", f"champion {best.trial}; {summary}"
    elif evaluating and base is not None:
        succeeded, failed, reason = False, False, "EvaluatingBaseline"
        message = f"trials finished ({summary}); evaluating the base model ({base.job})"
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
        ("EvaluatingBaseline" if evaluating else "TrialsRunning")
        if running
        else ("SweepFinished" if finished else "Suspended"),
        summary,
        g,
    )
    if finished and best is not None:
        conditions = set_condition(conditions, NOT_BETTER, *_baseline_verdict(best, base, spec), g)
    conditions = set_condition(conditions, "Succeeded", succeeded, reason, message, g)
    conditions = set_condition(conditions, "Failed", failed, reason, message, g)
    if succeeded:
        state = "Succeeded"
    elif failed:
        state = "Failed"
    elif suspended:
        state = "Suspended"
    elif done or counts.running or evaluating or any(r.attempts for r in rows):
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
        baseline=base,
        start_time=min(starts) if starts else None,
        completion_time=max(ends + ([base.completion_time] if base and base.completion_time else []))
        if finished and ends
        else None,
    )


def refused_status(old: FineTuneJobStatus, refusal: Refusal, generation: int | None) -> FineTuneJobStatus:
    """Accepted=False: nothing is created; the message names the field."""
    conditions = set_condition(old.conditions, "Accepted", False, refusal.reason, refusal.message, generation)
    return old.model_copy(
        update={"conditions": conditions, "observed_generation": generation, "state": old.state or "Pending"}
    )
