"""ServingProfile (`sprof`): measure candidate serving configurations (engine, TP, GPU type) under a
declared load and choose the cheapest one that meets a latency SLO (the paper's TP x GPU decision).

Each candidate is deployed briefly (one replica, built like a ModelDeployment revision), driven by a load
Job (a real HTTP client) for a fixed duration, and measured from the engine's own Prometheus series over
that window; cost per hour is the GPU class price x TP, cost per million output tokens follows from the
measured throughput. A ModelDeployment takes the choice with `runtime.fromProfile`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from adapterops.api.common import ApiModel, BaseModelRef, Conditions, SecretReference, cel
from adapterops.api.kinds import API_VERSION
from adapterops.api.modeldeployment import AdapterSource, Runtime
from adapterops.api.names import OBJECT_NAME_RULE, Uri


class Candidate(ApiModel):
    """One serving configuration to measure; what it does not set comes from spec.runtime."""

    engine: Literal["nim", "vllm"] = Field(default="nim", description="nim or vllm.")
    tensor_parallel_size: Literal[1, 2, 4, 8] = Field(default=1, description="GPUs per replica: 1, 2, 4 or 8.")
    gpu_type: str = Field(min_length=1, max_length=63, description="GPU class from the operator's table.")
    image: str | None = Field(
        default=None, max_length=1024, description="Serving image; default spec.runtime.image, else per engine."
    )
    engine_version: str | None = Field(
        default=None,
        max_length=32,
        pattern=r"^v?[0-9]+(\.[0-9]+){0,2}$",
        description="The engine's version when the image tag does not say it.",
    )


class Load(ApiModel):
    """The load each candidate is measured under: an open loop (requestsPerSecond) or a closed one
    (concurrency), for warmupSeconds (not measured) then durationSeconds (measured)."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.requestsPerSecond) != has(self.concurrency)",
                "load sets exactly one of requestsPerSecond (open loop) or concurrency (closed loop)",
            )
        )
    )

    prompts: Annotated[
        str,
        Uri(
            ("configmap://", "s3://", "pvc://"),
            "load.prompts must start with configmap://, s3:// or pvc:// (the load Job reads it)",
        ),
    ] = Field(
        description=(
            "Prompts (JSON Lines: prompt, optional system), read by the load Job: configmap://NAME/KEY in the "
            "profile's namespace, s3://bucket/key (with storageSecretRef) or pvc://claim/path."
        )
    )
    requests_per_second: float | None = Field(
        default=None, gt=0, le=10000, description="Open loop: requests started per second, whatever the latency."
    )
    concurrency: int | None = Field(
        default=None, ge=1, le=4096, description="Closed loop: requests in flight at any time."
    )
    duration_seconds: int = Field(default=60, ge=5, le=3600, description="Measured window per candidate.")
    warmup_seconds: int = Field(
        default=30,
        ge=0,
        le=600,
        description=(
            "Load before the window, not measured. Make it at least two of Prometheus' scrape intervals: the "
            "engine's series must have been scraped before the window starts, or increase() undercounts it."
        ),
    )
    max_tokens: int = Field(default=256, ge=1, le=32768, description="max_tokens of each request.")
    model: str | None = Field(
        default=None,
        max_length=253,
        description="The served model name requested: default the first adapter, else the base model.",
    )


class LatencySlo(ApiModel):
    quantile: float = Field(
        default=0.95,
        description="End-to-end latency quantile bounded, in (0, 1).",
        json_schema_extra=cel(("self > 0.0 && self < 1.0", "slo.latency.quantile must be in (0, 1)")),
    )
    max_seconds: float = Field(gt=0, description="The quantile must be at most this (seconds).")


class Slo(ApiModel):
    """What a candidate must meet to be chosen, at the load above."""

    latency: LatencySlo = Field(description="End-to-end latency bound, e.g. p95 <= 2 s.")
    max_error_percent: float = Field(default=1.0, ge=0, le=100, description="Largest failed-request share.")
    min_requests_per_second: float | None = Field(
        default=None,
        ge=0,
        description=(
            "Served requests per second the candidate must sustain. Default: 90% of load.requestsPerSecond "
            "(open loop); none with concurrency."
        ),
    )


class ServingProfileSpec(ApiModel):
    """Candidates, a load, an SLO: which serving configuration is cheapest while meeting the SLO."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!has(self.runtime) || !has(self.runtime.fromProfile)",
                "runtime.fromProfile is for ModelDeployments; a ServingProfile lists its candidates",
            ),
        )
    )

    base_model: BaseModelRef = Field(description="Base model served.")
    runtime: Runtime = Field(
        default_factory=Runtime,
        description=(
            "Settings every candidate shares (image, engine version, precision, LoRA rank budget, env, args, "
            "pull secrets); each candidate sets engine, tensorParallelSize and gpuType. replicas is ignored: "
            "a candidate runs one replica."
        ),
    )
    adapters: list[AdapterSource] = Field(
        default_factory=list,
        max_length=64,
        description="Adapters served while measuring (a fineTuneJobRef waits for that job's champion).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    candidates: list[Candidate] = Field(
        min_length=1, max_length=16, description="Configurations measured, in this order."
    )
    load: Load = Field(description="Prompts and load level each candidate is measured under.")
    slo: Slo = Field(description="What the chosen candidate must meet.")
    objective: Literal["costPerMillionTokens", "costPerHour"] = Field(
        default="costPerMillionTokens",
        description=(
            "Cheapest by: costPerMillionTokens (GPU cost over measured output throughput) or costPerHour "
            "(GPU class price x TP)."
        ),
    )
    parallelism: int = Field(default=1, ge=1, le=16, description="Candidates deployed and measured at a time.")
    candidate_timeout_seconds: int = Field(
        default=1800,
        ge=60,
        le=86400,
        description="A candidate not Ready within this long (weights loading, no GPU free) is failed.",
    )
    storage_secret_ref: SecretReference | None = Field(
        default=None, description="Secret with AWS_* keys: adapter fetcher and s3:// prompts."
    )


CandidateState = Literal["Pending", "Deploying", "Loading", "Measuring", "Measured", "Failed"]


class Window(ApiModel):
    start: datetime = Field(description="Measured window start (after warm-up).")
    end: datetime = Field(description="Measured window end.")


class CandidateResult(ApiModel):
    name: str = Field(description="engine-tpN-gpu, as listed.")
    engine: str = Field(description="nim or vllm.")
    tensor_parallel_size: int = Field(description="TP.")
    gpu_type: str = Field(description="GPU class.")
    image: str = Field(description="Serving image.")
    revision: str = Field(description="Hash of the profile, the candidate and the load: a result is for this.")
    state: CandidateState = Field(description="Pending, Deploying, Loading, Measuring, Measured or Failed.")
    window: Window | None = Field(default=None, description="The measured window.")
    requests: int | None = Field(default=None, description="Requests the engine finished in the window.")
    p50_seconds: float | None = Field(default=None, description="Median end-to-end latency (histogram).")
    p95_seconds: float | None = Field(default=None, description="p95 end-to-end latency (histogram).")
    slo_quantile_seconds: float | None = Field(default=None, description="The SLO's latency quantile.")
    mean_seconds: float | None = Field(default=None, description="Mean end-to-end latency (sum / count).")
    ttft_seconds: float | None = Field(default=None, description="Mean time to first token (sum / count).")
    output_tokens_per_second: float | None = Field(default=None, description="Generated tokens per second.")
    requests_per_second: float | None = Field(default=None, description="Finished requests per second.")
    error_percent: float | None = Field(default=None, description="Failed requests, percent.")
    cost_per_hour: float = Field(description="US dollars per hour: GPU class price x TP.")
    cost_per_million_tokens: float | None = Field(
        default=None, description="US dollars per million output tokens at the measured throughput."
    )
    meets_slo: bool | None = Field(default=None, description="Whether it met the SLO (once measured).")
    chosen: bool = Field(default=False, description="The choice.")
    reason: str = Field(default="", description="Why chosen, why it lost, or why it failed.")


class Choice(ApiModel):
    candidate: str = Field(description="The chosen candidate's name.")
    engine: str = Field(description="nim or vllm.")
    tensor_parallel_size: int = Field(description="TP.")
    gpu_type: str = Field(description="GPU class.")
    image: str | None = Field(default=None, description="The serving image measured.")
    engine_version: str | None = Field(
        default=None, description="The engine version the candidate or spec.runtime set (else the image tag says it)."
    )
    cost_per_hour: float = Field(description="US dollars per hour.")
    cost_per_million_tokens: float | None = Field(default=None, description="US dollars per million output tokens.")
    reason: str = Field(default="", description="Why.")


class ServingProfileStatus(ApiModel):
    observed_generation: int | None = Field(default=None, description="Generation the status describes.")
    conditions: Conditions
    state: Literal["Pending", "Running", "Succeeded", "Failed"] | None = Field(
        default=None, description="Running while candidates are measured; Failed when none meets the SLO."
    )
    progress: str | None = Field(default=None, description="Candidates finished / listed.")
    slo: str | None = Field(default=None, description="The SLO and load, in words.")
    candidates: list[CandidateResult] = Field(default_factory=list, max_length=16, description="The table.")
    choice: Choice | None = Field(default=None, description="The cheapest candidate meeting the SLO.")


class ServingProfile(ApiModel):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [OBJECT_NAME_RULE]})

    api_version: Literal["adapterops.io/v1alpha1"] = API_VERSION
    kind: Literal["ServingProfile"] = "ServingProfile"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ServingProfileSpec
    status: ServingProfileStatus = Field(default_factory=ServingProfileStatus)
