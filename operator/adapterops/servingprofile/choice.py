"""The pure parts of a serving profile: cost, the SLO check and the choice rule, with the reason each
candidate was chosen or lost. No I/O.

Cost per hour is the GPU class's price per GPU hour x the candidate's GPUs (TP; one replica). Cost per
million output tokens is that hour's cost over the output tokens the candidate generated in an hour at the
measured rate. The choice is the cheapest candidate by `objective` among those that meet the SLO; ties go
to the lower SLO latency, then to the earlier candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapterops.api.servingprofile import CandidateResult, Choice, ServingProfileSpec


def cost_per_hour(price_per_gpu_hour: float, tensor_parallel_size: int, replicas: int = 1) -> float:
    return round(price_per_gpu_hour * tensor_parallel_size * replicas, 6)


def cost_per_million_tokens(per_hour: float, output_tokens_per_second: float | None) -> float | None:
    """US dollars per million output tokens at the measured throughput; None without throughput."""
    if not output_tokens_per_second or output_tokens_per_second <= 0:
        return None
    return round(per_hour / (output_tokens_per_second * 3600.0) * 1e6, 6)


@dataclass(frozen=True)
class Measurement:
    """What the engine's series said over a candidate's window."""

    seconds: float  # the window's length
    requests: float  # finished requests (histogram count)
    latency_sum: float  # seconds, end to end
    ttft_sum: float | None
    ttft_count: float | None
    output_tokens: float | None
    errors: float | None
    error_base: float | None  # the requests the error share is of
    p50: float | None
    p95: float | None
    slo_quantile: float | None  # the SLO's quantile (may be the p95)


def min_requests_per_second(spec: ServingProfileSpec) -> float | None:
    if spec.slo.min_requests_per_second is not None:
        return spec.slo.min_requests_per_second
    if spec.load.requests_per_second is not None:
        return round(0.9 * spec.load.requests_per_second, 6)
    return None


def slo_words(spec: ServingProfileSpec) -> str:
    q = spec.slo.latency.quantile
    load = (
        f"{spec.load.requests_per_second:g} req/s"
        if spec.load.requests_per_second is not None
        else f"{spec.load.concurrency} concurrent requests"
    )
    parts = [f"p{q * 100:g} <= {spec.slo.latency.max_seconds:g}s", f"errors <= {spec.slo.max_error_percent:g}%"]
    floor = min_requests_per_second(spec)
    if floor is not None:
        parts.append(f">= {floor:g} req/s served")
    return f"{', '.join(parts)} at {load} for {spec.load.duration_seconds}s"


def measured(result: CandidateResult, m: Measurement, spec: ServingProfileSpec) -> CandidateResult:
    """The candidate's row from its measurement, with whether it meets the SLO and, if not, why."""
    w = max(m.seconds, 1e-9)
    tokens_per_s = None if m.output_tokens is None else m.output_tokens / w
    error_percent = None
    if m.errors is not None and m.error_base:
        error_percent = 100.0 * m.errors / m.error_base
    elif m.errors is not None:
        error_percent = 0.0
    row = result.model_copy(
        update={
            "state": "Measured",
            "requests": round(m.requests),
            "p50_seconds": _r(m.p50),
            "p95_seconds": _r(m.p95),
            "slo_quantile_seconds": _r(m.slo_quantile),
            "mean_seconds": _r(m.latency_sum / m.requests) if m.requests > 0 else None,
            "ttft_seconds": _r(m.ttft_sum / m.ttft_count) if m.ttft_sum is not None and m.ttft_count else None,
            "output_tokens_per_second": _r(tokens_per_s),
            "requests_per_second": _r(m.requests / w),
            "error_percent": _r(error_percent),
            "cost_per_million_tokens": cost_per_million_tokens(result.cost_per_hour, tokens_per_s),
        }
    )
    misses = slo_misses(row, spec)
    return row.model_copy(update={"meets_slo": not misses, "reason": "; ".join(misses)})


def slo_misses(row: CandidateResult, spec: ServingProfileSpec) -> list[str]:
    """Why a measured candidate does not meet the SLO (empty: it does)."""
    slo = spec.slo
    q = f"p{slo.latency.quantile * 100:g}"
    misses = []
    if not row.requests:
        return ["no request finished in the window"]
    if row.slo_quantile_seconds is None or row.slo_quantile_seconds > slo.latency.max_seconds:
        measured_q = "unknown" if row.slo_quantile_seconds is None else f"{row.slo_quantile_seconds:.3g}s"
        misses.append(f"{q} {measured_q} > {slo.latency.max_seconds:g}s")
    if row.error_percent is not None and row.error_percent > slo.max_error_percent:
        misses.append(f"errors {row.error_percent:.3g}% > {slo.max_error_percent:g}%")
    floor = min_requests_per_second(spec)
    if floor is not None and (row.requests_per_second or 0.0) < floor:
        misses.append(f"served {row.requests_per_second or 0:.3g} req/s < {floor:g} req/s")
    return misses


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _cost(row: CandidateResult, objective: str) -> float:
    if objective == "costPerHour":
        return row.cost_per_hour
    return row.cost_per_million_tokens if row.cost_per_million_tokens is not None else float("inf")


def _cost_words(row: CandidateResult, objective: str) -> str:
    if objective == "costPerHour":
        return f"${row.cost_per_hour:.4g}/h"
    per_m = row.cost_per_million_tokens
    return f"${per_m:.4g} per million output tokens" if per_m is not None else "no measured throughput"


def choose(rows: list[CandidateResult], spec: ServingProfileSpec) -> tuple[list[CandidateResult], Choice | None]:
    """Once every candidate is Measured or Failed: the rows with chosen/reason set, and the choice (None
    when no candidate meets the SLO)."""
    objective = spec.objective
    meeting = [(i, r) for i, r in enumerate(rows) if r.state == "Measured" and r.meets_slo]
    if not meeting:
        out = [r.model_copy(update={"chosen": False, "reason": _lost_slo(r)}) for r in rows]
        return out, None
    best_index, best = min(meeting, key=lambda ir: (_cost(ir[1], objective), ir[1].slo_quantile_seconds or 0.0, ir[0]))
    out = []
    for i, r in enumerate(rows):
        if i == best_index:
            why = f"cheapest meeting the SLO: {_cost_words(r, objective)}"
            if len(meeting) == 1:
                why = f"the only candidate meeting the SLO: {_cost_words(r, objective)}"
            out.append(r.model_copy(update={"chosen": True, "reason": why}))
        elif r.state == "Measured" and r.meets_slo:
            why = f"meets the SLO but costs more: {_cost_words(r, objective)} vs {_cost_words(best, objective)}"
            if _cost(r, objective) == _cost(best, objective):
                why = f"meets the SLO at the same cost as {best.name}, which has the lower latency or is listed first"
            out.append(r.model_copy(update={"chosen": False, "reason": why}))
        else:
            out.append(r.model_copy(update={"chosen": False, "reason": _lost_slo(r)}))
    chosen = out[best_index]
    choice = Choice(
        candidate=chosen.name,
        engine=chosen.engine,
        tensor_parallel_size=chosen.tensor_parallel_size,
        gpu_type=chosen.gpu_type,
        image=chosen.image,  # the image measured, whether the candidate or spec.runtime named it
        engine_version=spec.candidates[best_index].engine_version or spec.runtime.engine_version,
        cost_per_hour=chosen.cost_per_hour,
        cost_per_million_tokens=chosen.cost_per_million_tokens,
        reason=chosen.reason,
    )
    return out, choice


def _lost_slo(row: CandidateResult) -> str:
    if row.state == "Failed":
        return row.reason if row.reason.startswith("failed") else f"failed: {row.reason}"
    return f"misses the SLO: {row.reason}" if not row.reason.startswith("misses") else row.reason
