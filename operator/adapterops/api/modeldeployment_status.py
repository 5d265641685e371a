"""ModelDeployment status: revisions, the canary's analysis, history and cost (typed; the kind is in
modeldeployment.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from adapterops.api.common import ApiModel, Conditions


class RevisionStatus(ApiModel):
    revision: str = Field(description="Hash of what this revision serves.")
    adapters: dict[str, str] = Field(default_factory=dict, description="Served name -> adapter URI.")
    engine: str = Field(description="nim or vllm.")
    image: str = Field(description="Serving image.")
    engine_version: str | None = Field(default=None, description="Engine version (spec or image tag).")
    profile: str | None = Field(
        default=None, description="NIM: the model profile in use (NIM_MODEL_PROFILE), and where it comes from."
    )
    tensor_parallel_size: int = Field(description="TP size.")
    gpu_type: str = Field(description="GPU class.")
    replicas: int = Field(default=0, description="Desired replicas.")
    ready_replicas: int = Field(default=0, description="Ready replicas.")
    weight: int = Field(default=0, description="Share of traffic, percent.")
    base: str | None = Field(
        default=None,
        description=(
            "adapterRollout InPlace: the base revision (image, TP, GPU type, engine settings), whose Deployment's "
            "pods serve this adapter set; stable and an in-place canary share it."
        ),
    )
    pods: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="In-place canary: the pods that have this revision's adapters loaded (the analysis reads these).",
    )


class ReplicaStatus(ApiModel):
    """adapterRollout InPlace: what one serving pod has loaded, as its adapter agent reports it."""

    pod: str = Field(description="Pod name.")
    revision: str = Field(
        default="", description="The revision whose adapters this pod serves; empty while it matches none."
    )
    wanted: str = Field(default="", description="The revision whose adapters the operator asked this pod to load.")
    loaded: dict[str, str] = Field(
        default_factory=dict,
        description="Served name -> version loaded (the first 12 hex digits of the SHA-256 of the adapter URI).",
    )
    ready: bool = Field(default=False, description="The pod is Ready and has the wanted adapters loaded.")
    message: str = Field(default="", description="The agent's last error, or why the pod could not be read.")


class MetricResult(ApiModel):
    name: str = Field(description="latency, errorRate or judge.")
    verdict: Literal["Pass", "Fail", "Inconclusive"] = Field(description="Pass, Fail or Inconclusive.")
    stable_value: float | None = Field(default=None, description="Value measured on the stable revision.")
    canary_value: float | None = Field(default=None, description="Value measured on the canary.")
    samples: int = Field(default=0, description="Observations behind the values.")
    threshold: str = Field(default="", description="The rule applied, in words.")
    message: str = Field(default="", description="Why this verdict.")


class AnalysisStatus(ApiModel):
    step: int = Field(description="Index into canary.steps.")
    started_at: datetime | None = Field(default=None, description="When the canary revision was created.")
    holding: bool = Field(default=False, description="The step's interval ended without a verdict: holding.")
    step_started_at: datetime | None = Field(default=None, description="When this step's traffic was set.")
    failed_steps: int = Field(default=0, description="Steps that failed so far.")
    inconclusive_steps: int = Field(default=0, description="Steps that ended inconclusive so far.")
    progressed_at: datetime | None = Field(
        default=None, description="When the canary last made progress (started, passed or retried a step)."
    )
    stuck: bool = Field(default=False, description="Past its progress deadline and held (progressDeadlineAbort false).")
    metrics: list[MetricResult] = Field(default_factory=list, description="Per-metric result of this step.")


class HistoryEntry(ApiModel):
    revision: str = Field(description="Revision hash.")
    outcome: Literal["Promoted", "RolledBack", "Superseded", "Initial"] = Field(description="What happened.")
    reason: str = Field(default="", description="Why.")
    adapters: dict[str, str] = Field(default_factory=dict, description="Served name -> adapter URI.")
    time: datetime = Field(description="When.")


class Cost(ApiModel):
    gpus: int = Field(description="GPUs held.")
    usd: float = Field(description="GPUs x price per GPU hour x 730, US dollars per month.")
    output_tokens_per_second: float | None = Field(
        default=None,
        description=(
            "Output tokens per second this revision's pods generated over the canary's current step, from the "
            "engine's generation token counter (measured while a canary runs)."
        ),
    )
    cost_per_million_tokens: float | None = Field(
        default=None,
        description=(
            "US dollars per million output tokens: the GPUs' hourly price over the measured output throughput, "
            "at the traffic this revision received (comparable between stable and canary when each side's "
            "replicas follow its traffic share: a replica-ratio split or an in-place canary)."
        ),
    )


class MonthlyCost(ApiModel):
    stable: Cost | None = Field(default=None, description="Stable revision.")
    canary: Cost | None = Field(default=None, description="Canary revision, while one runs.")
    total_usd: float = Field(default=0.0, description="Stable + canary.")


class ModelDeploymentStatus(ApiModel):
    observed_generation: int | None = Field(default=None, description="Generation the status describes.")
    conditions: Conditions
    stable: RevisionStatus | None = Field(default=None, description="The revision serving most traffic.")
    canary: RevisionStatus | None = Field(default=None, description="The revision under analysis.")
    canary_weight: int = Field(default=0, description="Canary share of traffic, percent.")
    analysis: AnalysisStatus | None = Field(default=None, description="The current step's analysis.")
    history: list[HistoryEntry] = Field(
        default_factory=list, max_length=20, description="Recent revisions, newest first."
    )
    endpoint: str | None = Field(default=None, description="In-cluster URL of the OpenAI API.")
    estimated_monthly_cost: MonthlyCost | None = Field(default=None, description="GPU cost estimate.")
    replicas: list[ReplicaStatus] = Field(
        default_factory=list,
        max_length=64,
        description="adapterRollout InPlace: per serving pod, which adapters it has loaded.",
    )
