"""A ServingProfile's status from its rows (pure): state, progress, the choice, conditions, and the
Events each transition of a candidate or of the profile deserves."""

from __future__ import annotations

from adapterops.api.servingprofile import CandidateResult, ServingProfileSpec, ServingProfileStatus
from adapterops.runtime.conditions import set_condition
from adapterops.runtime.events import EventType
from adapterops.servingprofile.choice import choose, slo_words

DONE = ("Measured", "Failed")


def figures(row: CandidateResult) -> str:
    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:.3g}s"

    per_m = "-" if row.cost_per_million_tokens is None else f"${row.cost_per_million_tokens:.4g}"
    return (
        f"p50 {s(row.p50_seconds)}, p95 {s(row.p95_seconds)}, mean {s(row.mean_seconds)}, TTFT {s(row.ttft_seconds)}, "
        f"{row.output_tokens_per_second or 0:.4g} tok/s, {row.requests_per_second or 0:.3g} req/s, "
        f"${row.cost_per_hour:.4g}/h, {per_m}/M tokens"
    )


def profile_status(
    old: ServingProfileStatus,
    spec: ServingProfileSpec,
    rows: list[CandidateResult],
    generation: int | None,
    waiting: str | None = None,
) -> ServingProfileStatus:
    done = sum(r.state in DONE for r in rows)
    conditions = set_condition(old.conditions, "Accepted", True, "Accepted", "spec accepted", generation)
    progress = f"{done}/{len(rows)}"
    choice = None
    if waiting is not None:
        state = "Pending"
        conditions = set_condition(conditions, "Running", False, "WaitingForAdapters", waiting, generation)
        conditions = set_condition(conditions, "Succeeded", False, "WaitingForAdapters", waiting, generation)
    elif done < len(rows):
        state = "Running"
        active = ", ".join(f"{r.name} {r.state}" for r in rows if r.state not in DONE and r.state != "Pending")
        message = f"{progress} candidates measured" + (f"; {active}" if active else "")
        conditions = set_condition(conditions, "Running", True, "Measuring", message, generation)
        conditions = set_condition(conditions, "Succeeded", False, "Measuring", message, generation)
    else:
        rows, choice = choose(rows, spec)
        conditions = set_condition(conditions, "Running", False, "Finished", f"{progress} candidates", generation)
        if choice is not None:
            state = "Succeeded"
            message = f"chose {choice.candidate}: {choice.reason}"
            conditions = set_condition(conditions, "Succeeded", True, "ChoiceMade", message, generation)
        else:
            state = "Failed"
            why = "; ".join(f"{r.name}: {r.reason}" for r in rows)
            message = f"no candidate meets the SLO ({slo_words(spec)}): {why}"
            conditions = set_condition(conditions, "Succeeded", False, "NoCandidateMeetsSLO", message, generation)
    return ServingProfileStatus(
        observed_generation=generation,
        conditions=conditions,
        state=state,
        progress=progress,
        slo=slo_words(spec),
        candidates=rows,
        choice=choice,
    )


def transitions(old: ServingProfileStatus, new: ServingProfileStatus) -> list[tuple[str, str, EventType]]:
    """Events for what changed: each candidate's new state, and the profile's outcome."""
    before = {r.revision: r.state for r in old.candidates}
    out: list[tuple[str, str, EventType]] = []
    for row in new.candidates:
        if before.get(row.revision) == row.state or row.state == "Pending":
            continue
        if row.state == "Deploying":
            out.append(("CandidateDeploying", f"{row.name}: deploying one replica ({row.image})", "Normal"))
        elif row.state == "Loading":
            out.append(("CandidateLoading", f"{row.name}: load started ({new.slo})", "Normal"))
        elif row.state == "Measured":
            verdict = "meets the SLO" if row.meets_slo else f"misses the SLO: {row.reason}"
            out.append(("CandidateMeasured", f"{row.name}: {figures(row)}; {verdict}", "Normal"))
        elif row.state == "Failed":
            out.append(("CandidateFailed", f"{row.name}: {row.reason}", "Warning"))
    if new.state != old.state and new.state in ("Succeeded", "Failed"):
        if new.choice is not None:
            out.append(("ChoiceMade", f"chose {new.choice.candidate}: {new.choice.reason}", "Normal"))
        else:
            cond = next((c for c in new.conditions if c.type == "Succeeded"), None)
            out.append(("NoCandidateMeetsSLO", cond.message if cond else "no candidate meets the SLO", "Warning"))
    return out
