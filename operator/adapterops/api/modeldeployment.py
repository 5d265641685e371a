"""ModelDeployment (`mdep`): a base model served with LoRA adapters, every change canaried."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from adapterops.api.common import (
    ApiModel,
    BaseModelRef,
    SecretKeyRef,
    SecretReference,
    cel,
    cel_list,
    storage_uri,
)
from adapterops.api.finetunejob import Judge, Rubric
from adapterops.api.kinds import API_VERSION
from adapterops.api.modeldeployment_status import AnalysisStatus as AnalysisStatus
from adapterops.api.modeldeployment_status import Cost as Cost
from adapterops.api.modeldeployment_status import HistoryEntry as HistoryEntry
from adapterops.api.modeldeployment_status import MetricResult as MetricResult
from adapterops.api.modeldeployment_status import ModelDeploymentStatus as ModelDeploymentStatus
from adapterops.api.modeldeployment_status import MonthlyCost as MonthlyCost
from adapterops.api.modeldeployment_status import ReplicaStatus as ReplicaStatus
from adapterops.api.modeldeployment_status import RevisionStatus as RevisionStatus
from adapterops.api.names import (
    OBJECT_NAME_RULE,
    AdapterName,
    EnvVarName,
    FineTuneJobName,
    HttpRouteName,
    ServingProfileName,
    Uri,
)
from adapterops_common.contract import SERVABLE_LORA_RANKS


class EnvVarSource(ApiModel):
    secret_key_ref: SecretKeyRef | None = Field(default=None, description="Value from a Secret key.")


class EnvVar(ApiModel):
    """An environment variable of the serving container."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.value) != has(self.valueFrom)",
                "runtime.env entries set exactly one of value or valueFrom",
            )
        )
    )

    name: EnvVarName = Field(description="Variable name.")
    value: str | None = Field(default=None, max_length=32768, description="Literal value (not for secrets).")
    value_from: EnvVarSource | None = Field(default=None, description="Value from a Secret key.")


class Runtime(ApiModel):
    """The serving engine and its placement."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.engine == 'nim' || !has(self.precision)",
                "runtime.precision picks a NIM profile; for vLLM set --dtype or --quantization in runtime.args",
            )
        )
    )

    engine: Literal["nim", "vllm"] = Field(default="nim", description="nim (NVIDIA NIM for LLMs) or vllm.")
    image: str | None = Field(
        default=None,
        max_length=1024,
        description="Serving image; default from the operator's config per engine.",
    )
    engine_version: str | None = Field(
        default=None,
        max_length=32,
        pattern=r"^v?[0-9]+(\.[0-9]+){0,2}$",
        description=(
            "The engine's version (e.g. 1.8, 2.0.6, 0.11.0): which metrics it exports (docs/engines.md). "
            "Default: the image's tag; needed when the tag is not the version (latest, a digest)."
        ),
    )
    precision: Literal["bf16", "fp16", "fp8", "nvfp4", "mxfp4"] | None = Field(
        default=None,
        description=(
            "NIM: the precision of the model profile to run (default bf16); with the GPU type, tensor "
            "parallelism and LoRA it picks NIM_MODEL_PROFILE from the operator's profile table. Not for vLLM "
            "(set --dtype or --quantization in args)."
        ),
    )
    tensor_parallel_size: Literal[1, 2, 4, 8] = Field(
        default=1, description="GPUs per replica the model is sharded over: 1, 2, 4 or 8."
    )
    gpu_type: str = Field(
        default="H100", min_length=1, max_length=63, description="GPU class from the operator's table."
    )
    replicas: int = Field(default=1, ge=1, le=64, description="Serving replicas of the stable revision.")
    max_lora_rank: int = Field(
        default=32,
        description="Largest adapter rank the engine reserves memory for (NIM_MAX_LORA_RANK / --max-lora-rank).",
        json_schema_extra=cel(
            (
                f"self in {cel_list(SERVABLE_LORA_RANKS)}",
                f"runtime.maxLoraRank must be one of {list(SERVABLE_LORA_RANKS)}",
            )
        ),
    )
    image_pull_secrets: list[SecretReference] = Field(
        default_factory=list, max_length=8, description="Secrets for pulling the image (e.g. nvcr.io)."
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key with the NGC API key (NIM: NGC_API_KEY)."
    )
    env: list[EnvVar] = Field(default_factory=list, max_length=64, description="Extra environment.")
    args: list[Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=list, max_length=64, description="Extra engine arguments."
    )
    from_profile: ServingProfileName | None = Field(
        default=None,
        description=(
            "Serve on the configuration a ServingProfile (same namespace) chose: the engine, tensorParallelSize, "
            "gpuType and image it measured (and engineVersion when the profile set one) replace these fields. "
            "Nothing is served until the profile has Succeeded; a new choice is a new revision, canaried."
        ),
    )


class FineTuneJobReference(ApiModel):
    name: FineTuneJobName = Field(description="Name of the FineTuneJob, in the ModelDeployment's namespace.")
    require_better_than_baseline: bool = Field(
        default=True,
        description=(
            "Serve the champion only when it beats the base model: a FineTuneJob whose condition "
            "ChampionNotBetterThanBaseline is True is not canaried (the stable revision keeps serving). "
            "false serves its champion anyway."
        ),
    )


class AdapterSource(ApiModel):
    """One LoRA adapter to serve, by the model name clients request."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.fineTuneJobRef) != has(self.uri)",
                "each adapter sets exactly one of fineTuneJobRef or uri",
            ),
            (
                "!has(self.replaces) || self.replaces != self.name",
                "adapters[].replaces names another adapter (the one this adapter takes over from), not itself",
            ),
        )
    )

    name: AdapterName = Field(description="Served model name: clients send it as `model` in OpenAI requests.")
    fine_tune_job_ref: FineTuneJobReference | None = Field(
        default=None, description="Follow this FineTuneJob's champion: a new champion starts a canary."
    )
    uri: Annotated[str, storage_uri("adapters[].uri")] | None = Field(
        default=None,
        description="A fixed adapter location (s3://, pvc://claim/path or a mounted path).",
    )
    replaces: AdapterName | None = Field(
        default=None,
        description=(
            "The adapter this one takes over from, by name. While the stable revision does not serve this "
            "adapter's name, the canary's paired judge compares it with that adapter on the stable revision "
            "(which must serve it). Unset: with the base model. Ignored once the stable revision serves this name."
        ),
    )


class LatencyAnalysis(ApiModel):
    """Latency check from the engine's request-latency histogram in Prometheus."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.maxSeconds) || has(self.maxIncreasePercent)",
                "canary.analysis.latency sets maxSeconds, maxIncreasePercent or both",
            )
        )
    )

    quantile: float = Field(
        default=0.95,
        description="Latency quantile compared, in (0, 1).",
        json_schema_extra=cel(("self > 0.0 && self < 1.0", "latency.quantile must be in (0, 1)")),
    )
    max_seconds: float | None = Field(default=None, gt=0, description="Absolute ceiling for the canary.")
    max_increase_percent: float | None = Field(
        default=None, ge=0, description="Largest allowed increase over the stable revision, in percent (e.g. 10)."
    )
    prometheus_url: str | None = Field(
        default=None, max_length=2048, description="Prometheus base URL; default from the operator's config."
    )
    query: str | None = Field(
        default=None,
        max_length=4096,
        description=(
            "PromQL template of the per-revision histogram buckets; {revision}, {namespace} and {window} "
            "are substituted. Default: the engine's e2e request-latency histogram."
        ),
    )


class ErrorRateAnalysis(ApiModel):
    max_percent: float = Field(default=1.0, ge=0, le=100, description="Largest canary error rate, in percent.")


class JudgeAnalysis(ApiModel):
    """Paired judging: the same prompts to stable and canary, both answers scored (mode rubric) or compared
    by the judge, in both orders (mode pairwise)."""

    dataset: Annotated[
        str,
        Uri(
            ("configmap://", "s3://"),
            "canary.analysis.judge.dataset must start with configmap:// or s3:// (the operator reads it)",
        ),
    ] = Field(
        description=(
            "Evaluation prompts (JSON Lines: prompt, optional system and reference), read by the operator: "
            "configmap://NAME/KEY in the ModelDeployment's namespace, or s3://bucket/key."
        ),
    )
    samples: int = Field(
        default=200,
        ge=1,
        le=1000,
        description=(
            "Most prompts judged per canary. The sequential test decides after 50-70 typically, 120-145 for the "
            "slowest tenth (bench/judge): at 100 a fifth of canaries would stay undecided."
        ),
    )
    concurrency: int = Field(
        default=4,
        ge=1,
        le=32,
        description=(
            "Prompts judged at a time: each sends one request to a stable and a canary pod and two to the judge. "
            "Raise it for a faster verdict within the judge endpoint's rate limit."
        ),
    )
    min_score: float | None = Field(default=None, ge=0, le=5, description="Lowest acceptable canary mean.")
    max_drop: float = Field(default=0.3, ge=0, le=5, description="Largest acceptable mean drop vs stable.")
    mode: Literal["rubric", "pairwise"] = Field(
        default="rubric",
        description=(
            "rubric: each answer scored 0-5, the paired scores tested (minScore, maxDrop). pairwise: the judge "
            "sees the stable and the canary answer and says which is better or a tie, asked in both orders to "
            "cancel position bias; the canary's win rate (ties count half) is tested against minWinRate. The "
            "metric is then named pairwise."
        ),
    )
    min_win_rate: float = Field(
        default=0.45,
        ge=0.05,
        le=0.475,
        description=(
            "mode pairwise: the canary fails when its win rate against stable is shown to be below 0.5 (an equal "
            "canary wins half), and passes once a win rate of minWinRate or less is refuted."
        ),
    )
    rubric: Rubric = Field(default_factory=lambda: Rubric(builtin="query-formulation"), description="Scoring rubric.")
    judge: Judge = Field(description="The judge endpoint.")


class Analysis(ApiModel):
    latency: LatencyAnalysis | None = Field(default=None, description="Latency check.")
    error_rate: ErrorRateAnalysis | None = Field(default=None, description="Error-rate check.")
    judge: JudgeAnalysis | None = Field(default=None, description="Judge-score check.")
    failure_limit: int = Field(default=1, ge=1, le=10, description="Failed steps before rollback.")
    max_inconclusive_steps: int = Field(
        default=0,
        ge=0,
        le=100,
        description=(
            "Intervals a step may run past its first without a verdict; one more makes the canary stuck (see "
            "canary.progressDeadlineAbort). 0: no such limit (canary.progressDeadlineSeconds still applies)."
        ),
    )


class HttpRouteRef(ApiModel):
    name: HttpRouteName = Field(description="HTTPRoute in the same namespace.")


class Traffic(ApiModel):
    """How traffic is split between stable and canary."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "(self.mode == 'httpRoute') == has(self.httpRouteRef)",
                "canary.traffic: mode httpRoute needs httpRouteRef, mode replicas must not set it",
            )
        )
    )

    mode: Literal["httpRoute", "replicas"] = Field(
        default="replicas",
        description="httpRoute: Gateway API backendRef weights; replicas: replica ratio behind one Service.",
    )
    http_route_ref: HttpRouteRef | None = Field(default=None, description="The HTTPRoute AdapterOps manages.")


class Canary(ApiModel):
    """Progressive rollout of every new revision."""

    steps: list[int] = Field(
        default_factory=lambda: [10, 25, 50, 100],
        min_length=1,
        max_length=20,
        description="Canary traffic percentages, strictly increasing, ending at 100.",
        json_schema_extra=cel(
            ("self[size(self) - 1] == 100", "canary.steps must end at 100"),
            (
                "self.all(s, s >= 1 && s <= 100)",
                "canary.steps entries must be percentages between 1 and 100",
            ),
            (
                "self.isSorted() && self.all(s, self.exists_one(x, x == s))",
                "canary.steps must be strictly increasing, e.g. [10, 25, 50, 100]",
            ),
        ),
    )
    interval: str = Field(
        default="1m",
        pattern=r"^([0-9]+(s|m|h))+$",
        max_length=32,
        description="Time per step before its analysis is judged, e.g. 30s, 5m, 1h.",
    )
    traffic: Traffic = Field(default_factory=Traffic, description="Traffic split mechanism.")
    adapter_rollout: Literal["Revision", "InPlace"] = Field(
        default="Revision",
        description=(
            "Revision: every change of what is served, adapters included, is a new revision with new pods, "
            "canaried next to the stable ones. InPlace (vLLM only, replica traffic, at least 2 replicas): when only "
            "the adapters' URIs change, the serving pods load the new adapters at run time: the canary is c of the "
            "R running replicas, no new pods and no extra GPUs; promotion loads them on the rest, rollback restores "
            "the old ones. Changes of image, TP, GPU type, engine settings or the set of adapter names are still "
            "revision canaries with new pods."
        ),
    )
    analysis: Analysis = Field(default_factory=Analysis, description="What decides promotion.")
    auto_promote: bool = Field(
        default=True, description="Promote after the last step passes; false waits for a promote action."
    )
    paused: bool = Field(default=False, description="True holds the canary at its current step.")
    progress_deadline_seconds: int = Field(
        default=3600,
        ge=60,
        le=7 * 24 * 3600,
        description=(
            "A canary that makes no progress (not Ready, or no verdict at its step) for this long is stuck: "
            "rolled back, or held and reported, per progressDeadlineAbort. A paused canary is never stuck."
        ),
    )
    progress_deadline_abort: bool = Field(
        default=True,
        description="A stuck canary is rolled back (true) or held at its weight, Degraded, with an alert (false).",
    )


class ModelDeploymentSpec(ApiModel):
    """A base model served with LoRA adapters; every change is canaried against the stable revision."""

    base_model: BaseModelRef = Field(description="Base model the adapters apply to.")
    runtime: Runtime = Field(default_factory=Runtime, description="Serving engine, TP, GPU type, replicas.")
    adapters: list[AdapterSource] = Field(
        default_factory=list,
        max_length=64,
        description="Adapters served, each under its own model name.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    canary: Canary = Field(default_factory=Canary, description="Canary rollout and analysis.")
    storage_secret_ref: SecretReference | None = Field(
        default=None,
        description="Secret whose keys become the adapter fetcher's environment (e.g. AWS_* for s3:// adapters).",
    )


class ModelDeployment(ApiModel):
    # CEL at the root: the only place a rule sees metadata.name (see names.OBJECT_NAME_RULE).
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [OBJECT_NAME_RULE]})

    api_version: Literal["adapterops.io/v1alpha1"] = API_VERSION
    kind: Literal["ModelDeployment"] = "ModelDeployment"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus = Field(default_factory=ModelDeploymentStatus)
