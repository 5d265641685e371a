"""The canary's decisions, pure: given the rollout's state, the spec and this look's verdicts, what
happens next — advance a step, promote, roll back, hold, or wait. No I/O: the reconciler fetches the
verdicts, applies the children and writes the status; these functions only change a RolloutState.

Rules kept here:
  - a step passes when every metric passes (as early as the evidence allows), fails when one fails;
  - inconclusive data never promotes: after the step's interval the canary holds and says why;
  - `failureLimit` failed steps roll back; a failed test is final, so the step is retried with a fresh
    test (new window, new judged pairs);
  - a promote or abort annotation applies only to the canary revision it names.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from adapterops.analysis.verdict import MetricVerdict
from adapterops.api.modeldeployment import AnalysisStatus, ModelDeploymentSpec
from adapterops.deploy.status import RolloutState, history_entry, metric_result, parse_interval, seconds_since
from adapterops.runtime.clock import now
from adapterops.runtime.conditions import set_condition

ACTION_ANNOTATION = "adapterops.io/{action}"
Action = Literal["abort", "promote"]
# What a look decided: the reconciler drops the canary's judge on a final outcome or a failed step.
Outcome = Literal["promoted", "rolled-back", "step-failed", "advanced", "waiting"]


def begin(s: RolloutState, spec: ModelDeploymentSpec, revision: str, describe: str) -> AnalysisStatus:
    """A new canary: its analysis starts at step 0."""
    assert s.stable is not None
    s.event(
        "CanaryStarted",
        f"canary revision {revision} ({describe}) against stable {s.stable.revision}; steps {spec.canary.steps}",
    )
    started = now()
    return AnalysisStatus(step=0, started_at=started, progressed_at=started)


def enter_step(s: RolloutState, spec: ModelDeploymentSpec, analysis: AnalysisStatus, weight: int) -> None:
    """The canary is ready at this step's weight: the step's clock starts (once)."""
    if analysis.step_started_at is None:
        assert s.canary is not None
        analysis.step_started_at = analysis.progressed_at = now()
        s.event(
            "CanaryStep",
            f"step {analysis.step + 1}/{len(spec.canary.steps)}: canary {s.canary.revision} at {weight}% of traffic",
        )


def pause(s: RolloutState, spec: ModelDeploymentSpec, analysis: AnalysisStatus, weight: int) -> None:
    """Hold at the current step; time paused counts neither toward the deadline nor the step's interval."""
    assert s.canary is not None
    analysis.progressed_at = analysis.step_started_at = None
    s.suspend(
        "Paused",
        f"spec.canary.paused: holding canary {s.canary.revision} at step {analysis.step + 1} ({weight}%)",
    )


def action_of(annotations: dict[str, str], revision: str) -> Action | None:
    """Promote or abort now: an annotation naming the canary's revision (what `kubectl adapterops
    promote|abort` and the Argo CD actions set). Naming the revision makes it apply to that canary only."""
    actions: tuple[Action, ...] = ("abort", "promote")
    for action in actions:
        if annotations.get(ACTION_ANNOTATION.format(action=action)) == revision:
            return action
    return None


def window_seconds(analysis: AnalysisStatus) -> float:
    """The sequential tests take all data since the canary (or its last failed step) began: one test,
    valid however often it is looked at, and at the last step (100%) stable's earlier traffic is the
    reference."""
    return seconds_since(analysis.started_at)


def step_seconds(analysis: AnalysisStatus) -> float:
    """Time at this step's traffic split: what the cost per token is measured over."""
    return seconds_since(analysis.step_started_at or analysis.started_at)


def judge(
    s: RolloutState,
    spec: ModelDeploymentSpec,
    analysis: AnalysisStatus,
    verdicts: list[MetricVerdict],
    adapters: dict[str, str],
    weight: int,
) -> Outcome:
    """Apply this look's verdicts to the current step."""
    assert s.canary is not None
    c, step, revision = spec.canary, analysis.step, s.canary.revision
    analysis.metrics = [metric_result(v) for v in verdicts]
    failed = [v for v in verdicts if v.verdict == "Fail"]
    if failed:
        analysis.failed_steps += 1
        reason = "; ".join(v.message for v in failed)  # each message starts with its metric's name
        if analysis.failed_steps >= c.analysis.failure_limit:
            rollback(s, revision, adapters, reason)
            return "rolled-back"
        s.event(
            "CanaryStepFailed",
            f"step {step + 1} failed ({analysis.failed_steps}/{c.analysis.failure_limit}): {reason}",
            "Warning",
        )
        analysis.step_started_at = analysis.started_at = analysis.progressed_at = now()
        analysis.holding = False
        s.progress("StepFailed", reason)
        return "step-failed"
    elapsed = seconds_since(analysis.step_started_at)
    interval = parse_interval(c.interval)
    passed = all(v.verdict == "Pass" for v in verdicts) and (verdicts or elapsed >= interval)
    # Stable without traffic (an HTTPRoute's last step at 100%): the relative tests gain no evidence, so an
    # Inconclusive would hold for ever. Every metric passed at the steps before (or this one would not have
    # been reached); none failing here for a whole interval passes the step.
    idle_stable = step > 0 and s.stable is not None and s.stable.weight == 0 and elapsed >= interval
    if not passed and idle_stable:
        passed = True
        verdicts = [v if v.verdict == "Pass" else _held_by_earlier_steps(v) for v in verdicts]
    if passed:
        if step + 1 < len(c.steps):
            s.event(
                "CanaryStepPassed",
                f"step {step + 1}/{len(c.steps)} passed at {weight}%: "
                + "; ".join(f"{v.name} {_fmt(v.canary_value)}" for v in verdicts),
            )
            analysis.step, analysis.step_started_at, analysis.holding = step + 1, None, False
            analysis.progressed_at = now()
            s.progress("CanaryProgressing", f"step {step + 1} passed; moving to {c.steps[step + 1]}%")
            return "advanced"
        if c.auto_promote:
            promote(s, revision, adapters, verdicts)
            return "promoted"
        s.suspend(
            "AwaitingPromotion", f"canary {revision} passed every step; promote it (adapterops.io/promote annotation)"
        )
        return "waiting"
    inconclusive = "; ".join(v.message for v in verdicts if v.verdict == "Inconclusive")
    if elapsed >= interval:
        if not analysis.holding:
            analysis.inconclusive_steps += 1
            analysis.holding = True
            s.event(
                "CanaryHolding",
                f"step {step + 1}: no verdict after {c.interval}, holding at {weight}%: {inconclusive}",
                "Warning",
            )
        s.suspend("AnalysisInconclusive", f"holding canary {revision} at {weight}%: {inconclusive}")
    else:
        s.progress("Analysing", f"step {step + 1}/{len(c.steps)} at {weight}%: {inconclusive or 'collecting data'}")
    return "waiting"


def _held_by_earlier_steps(v: MetricVerdict) -> MetricVerdict:
    return dataclasses.replace(
        v, threshold=f"{v.threshold}; passed at the earlier steps, no stable traffic to compare with at this one"
    )


def check_progress(
    s: RolloutState, spec: ModelDeploymentSpec, analysis: AnalysisStatus, adapters: dict[str, str]
) -> Outcome | None:
    """A stuck canary (no progress within progressDeadlineSeconds, or more inconclusive steps than
    maxInconclusiveSteps) is rolled back, or held, Degraded and announced once, per progressDeadlineAbort."""
    assert s.canary is not None
    c = spec.canary
    if analysis.progressed_at is None:  # resumed after a pause: the clocks start again now
        analysis.progressed_at = now()
    idle = seconds_since(analysis.progressed_at)
    limit = c.analysis.max_inconclusive_steps
    interval = parse_interval(c.interval)
    at_step = seconds_since(analysis.step_started_at) if analysis.step_started_at else 0.0
    if idle > c.progress_deadline_seconds:
        why = f"no progress for {idle:.0f}s (canary.progressDeadlineSeconds is {c.progress_deadline_seconds})"
    elif limit and at_step > (limit + 1) * interval:
        why = (
            f"step {analysis.step + 1} ran {at_step // interval:.0f} intervals of {c.interval} without a verdict "
            f"(canary.analysis.maxInconclusiveSteps is {limit})"
        )
    else:
        analysis.stuck = False
        return None
    revision = s.canary.revision
    if c.progress_deadline_abort:
        rollback(s, revision, adapters, f"stuck: {why}", cause="ProgressDeadlineExceeded")
        return "rolled-back"
    if not analysis.stuck:
        s.event(
            "CanaryStuck", f"canary {revision} is stuck, holding (progressDeadlineAbort is false): {why}", "Warning"
        )
    analysis.stuck = True
    s.suspend("ProgressDeadlineExceeded", f"holding canary {revision}: {why}")
    return "waiting"


def promote(
    s: RolloutState, revision: str, adapters: dict[str, str], verdicts: list[MetricVerdict], by: str = ""
) -> None:
    assert s.canary is not None and s.stable is not None
    summary = (
        by or "; ".join(f"{v.name} {_fmt(v.canary_value)} ({v.threshold})" for v in verdicts) or "no metrics configured"
    )
    old_stable = s.stable.revision
    s.stable = s.canary.model_copy(update={"replicas": s.stable.replicas, "weight": 100})
    s.canary, s.analysis = None, None
    s.record(history_entry(revision, adapters, "Promoted", summary))
    s.event("Promoted", f"revision {revision} promoted over {old_stable}: {summary}")
    s.conditions = set_condition(
        s.conditions, "RolledBack", False, "Promoted", f"revision {revision} promoted", s.generation
    )


def rollback(
    s: RolloutState, revision: str, adapters: dict[str, str], reason: str, cause: str = "AnalysisFailed"
) -> None:
    assert s.stable is not None
    s.rollback_cause = cause
    entry = history_entry(revision, adapters, "RolledBack", reason)
    s.record(entry)
    s.canary, s.analysis = None, None
    s.stable.weight = 100
    s.rolled_back = entry
    s.event("RolledBack", f"revision {revision} rolled back, {s.stable.revision} keeps serving: {reason}", "Warning")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
