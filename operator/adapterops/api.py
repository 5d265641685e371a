"""The AdapterOps API (`adapterops.io/v1alpha1`): FineTuneJob and ModelDeployment.

These pydantic models are the single source of truth: `adapterops.crdgen` turns them into the CRD
YAML shipped in the chart and the kustomize base (descriptions, defaults and CEL rules included),
and the operator parses every object it reconciles with them.

CEL rules live next to the fields they guard (`cel(...)`); they hold every invariant that can be
checked on one object. What needs the cluster (GPU classes, queues, referenced jobs) is checked by
the operator and reported in the `Accepted` condition.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "adapterops.io"
VERSION = "v1alpha1"
API_VERSION: Final = "adapterops.io/v1alpha1"

# Ranks that both vLLM (`--max-lora-rank` choices) and NIM (any rank <= NIM_MAX_LORA_RANK) can serve.
SERVABLE_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# LoRA target modules: NeMo/Megatron names and their Hugging Face (Llama) equivalents.
NEMO_TARGET_MODULES = ("linear_qkv", "linear_proj", "linear_fc1", "linear_fc2")
HF_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Dotted spec paths a sweep may vary, with the kind of value each takes.
SWEEPABLE_PARAMETERS: dict[str, str] = {
    "training.learningRate": "number",
    "training.optimizer": "string",
    "training.weightDecay": "number",
    "training.scheduler.warmupSteps": "integer",
    "training.scheduler.minLearningRate": "number",
    "training.globalBatchSize": "integer",
    "training.microBatchSize": "integer",
    "training.maxSteps": "integer",
    "training.epochs": "number",
    "training.seed": "integer",
    "lora.rank": "integer",
    "lora.alpha": "integer",
    "lora.dropout": "number",
}


def cel(*rules: tuple[str, str], **extra: Any) -> dict[str, Any]:
    """`json_schema_extra` carrying CEL rules as (rule, message) pairs."""
    out: dict[str, Any] = dict(extra)
    out["x-kubernetes-validations"] = [{"rule": r, "message": m} for r, m in rules]
    return out


def immutable(field: str) -> dict[str, Any]:
    return cel(("self == oldSelf", f"{field} is immutable; create a new object to change it"))


def _list_in(values: tuple[Any, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" if isinstance(v, str) else str(v) for v in values) + "]"


class ApiModel(BaseModel):
    """Base for API models: camelCase on the wire, unknown fields refused (the CRD prunes them)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


# --------------------------------------------------------------------------- shared pieces


class SecretKeyRef(ApiModel):
    """A key of a Secret in the object's namespace."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret.")
    key: str = Field(min_length=1, max_length=253, description="Key inside the Secret's data.")


class LocalObjectReference(ApiModel):
    name: str = Field(min_length=1, max_length=253, description="Name of the object in the same namespace.")


class Toleration(ApiModel):
    """A Kubernetes toleration, added to the pods' GPU-class tolerations."""

    key: str | None = Field(default=None, max_length=316, description="Taint key the toleration applies to.")
    operator: Literal["Exists", "Equal"] | None = Field(default=None, description="Exists or Equal (default Equal).")
    value: str | None = Field(default=None, max_length=63, description="Taint value, with operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate; empty tolerates all effects."
    )
    toleration_seconds: int | None = Field(
        default=None, description="With effect NoExecute: how long the pod stays bound after the taint."
    )


class BaseModelRef(ApiModel):
    """The base model the LoRA adapters are trained for and served on."""

    name: str = Field(
        min_length=1,
        max_length=253,
        description="Model name as the serving engine knows it, e.g. nvidia/Llama-3.1-Nemotron-Nano-8B-v1.",
    )
    uri: str | None = Field(
        default=None,
        max_length=2048,
        description=(
            "Where the base checkpoint is read from: s3://bucket/prefix, pvc://claim/path or an absolute "
            "path mounted into the pod. Nothing is downloaded from a model hub at run time."
        ),
        json_schema_extra=cel(
            (
                "self.startsWith('s3://') || self.startsWith('pvc://') || self.startsWith('/')",
                "baseModel.uri must start with s3://, pvc:// or / (a mounted path)",
            )
        ),
    )


class Condition(ApiModel):
    """A metav1.Condition."""

    type: str = Field(max_length=316, description="Condition type, PascalCase (Accepted, Running, Ready...).")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(max_length=1024, description="CamelCase reason for the last transition.")
    message: str = Field(default="", max_length=32768, description="Human-readable detail.")
    last_transition_time: datetime = Field(description="When the status last changed.")
    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation this condition was computed from."
    )


Conditions = Annotated[
    list[Condition],
    Field(
        default_factory=list,
        description="Current state, one entry per condition type.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]

URI_RULE = (
    "self.startsWith('s3://') || self.startsWith('pvc://') || self.startsWith('/')",
    "must start with s3://, pvc:// or / (a path mounted into the pod)",
)


# --------------------------------------------------------------------------- FineTuneJob


class Dataset(ApiModel):
    """Training data: JSON Lines, one example per line."""

    train: str = Field(
        max_length=2048,
        description="URI of the training set (s3://, pvc://claim/path or a mounted path).",
        json_schema_extra=cel((URI_RULE[0], "dataset.train " + URI_RULE[1])),
    )
    validation: str | None = Field(
        default=None,
        max_length=2048,
        description="URI of a validation set; without it, validationFraction of train is held out.",
        json_schema_extra=cel((URI_RULE[0], "dataset.validation " + URI_RULE[1])),
    )
    validation_fraction: float = Field(
        default=0.3,
        description="Share of the training set held out for validation when no validation set is given.",
        json_schema_extra=cel(
            ("self > 0.0 && self < 1.0", "dataset.validationFraction must be strictly between 0 and 1")
        ),
    )
    seed: int = Field(default=42, description="Seed of the deterministic train/validation split.")
    format: Literal["chat", "prompt-response", "preference"] = Field(
        default="chat",
        description=(
            "Row format: chat ({messages: [{role, content}]}), prompt-response ({prompt, response}) "
            "or preference ({prompt, chosen, rejected}, required for DPO)."
        ),
    )


class Lora(ApiModel):
    """LoRA adapter shape."""

    rank: int = Field(
        default=8,
        description=f"LoRA rank (dim). One of {list(SERVABLE_LORA_RANKS)}: ranks NIM and vLLM can serve.",
        json_schema_extra=cel(
            (
                f"self in {_list_in(SERVABLE_LORA_RANKS)}",
                f"lora.rank must be one of {list(SERVABLE_LORA_RANKS)} (ranks NIM and vLLM can serve)",
            )
        ),
    )
    alpha: int = Field(default=16, ge=1, le=4096, description="LoRA alpha; the update is scaled by alpha/rank.")
    dropout: float = Field(
        default=0.05,
        description="Dropout on the LoRA input, in [0, 1).",
        json_schema_extra=cel(("self >= 0.0 && self < 1.0", "lora.dropout must be in [0, 1)")),
    )
    target_modules: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=lambda: list(NEMO_TARGET_MODULES),
        min_length=1,
        max_length=16,
        description=(
            "Layers that get adapters: NeMo names (linear_qkv, linear_proj, linear_fc1, linear_fc2) or "
            "Hugging Face Llama names (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)."
        ),
        json_schema_extra=cel(
            (
                f"self.all(m, m in {_list_in(NEMO_TARGET_MODULES + HF_TARGET_MODULES)})",
                "lora.targetModules accepts " + ", ".join(NEMO_TARGET_MODULES + HF_TARGET_MODULES),
            )
        ),
    )


class Scheduler(ApiModel):
    """Learning-rate schedule: linear warmup, then cosine annealing to minLearningRate."""

    type: Literal["cosine"] = Field(default="cosine", description="Schedule type; cosine annealing.")
    warmup_steps: int = Field(default=0, ge=0, description="Steps of linear warmup from 0 to learningRate.")
    min_learning_rate: float = Field(
        default=0.0, ge=0, description="Learning rate reached at the end of the cosine decay."
    )


class Training(ApiModel):
    """Hyperparameters of one training run (a sweep varies some of them per trial)."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.maxSteps) != has(self.epochs)",
                "training: set exactly one of maxSteps or epochs",
            ),
            (
                "self.globalBatchSize % self.microBatchSize == 0",
                "training.globalBatchSize must be a multiple of training.microBatchSize",
            ),
            (
                "self.scheduler.minLearningRate < self.learningRate",
                "training.scheduler.minLearningRate must be below training.learningRate",
            ),
        )
    )

    max_steps: int | None = Field(default=None, ge=1, description="Number of optimizer steps.")
    epochs: float | None = Field(
        default=None,
        description="Passes over the training set (alternative to maxSteps).",
        json_schema_extra=cel(("self > 0.0", "training.epochs must be > 0")),
    )
    learning_rate: float = Field(
        default=1e-4,
        description="Peak learning rate, > 0.",
        json_schema_extra=cel(("self > 0.0", "training.learningRate must be > 0")),
    )
    optimizer: Literal["adam", "adamw"] = Field(
        default="adamw", description="adam (L2 weight decay) or adamw (decoupled weight decay)."
    )
    weight_decay: float = Field(default=0.01, ge=0, description="Weight decay, >= 0.")
    scheduler: Scheduler = Field(default_factory=Scheduler, description="Learning-rate schedule.")
    global_batch_size: int = Field(default=8, ge=1, description="Examples per optimizer step, all GPUs.")
    micro_batch_size: int = Field(default=1, ge=1, description="Examples per forward pass per GPU.")
    seq_length: int = Field(default=2048, ge=16, le=131072, description="Maximum tokens per example.")
    precision: Literal["bf16", "fp16", "fp32"] = Field(default="bf16", description="Training precision.")
    seed: int = Field(default=1234, description="Seed for initialisation and data order.")


class SweepParameter(ApiModel):
    """Values one parameter takes: a list of numbers, a list of choices (strings), or a range."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "[has(self.values), has(self.choices), has(self.min) && has(self.max)].filter(x, x).size() == 1",
                "a sweep parameter sets exactly one of values (numbers), choices (strings) or min and max",
            ),
            ("has(self.min) == has(self.max)", "a sweep parameter range needs both min and max"),
            ("!has(self.min) || self.min < self.max", "sweep parameter min must be < max"),
            (
                "!has(self.scale) || self.scale != 'log' || (has(self.min) && self.min > 0.0)",
                "a log-scale sweep parameter needs min > 0",
            ),
        )
    )

    values: list[float] | None = Field(
        default=None, min_length=1, max_length=100, description="Numbers to try, e.g. [1e-4, 2e-4] or [8, 16, 32]."
    )
    choices: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, min_length=1, max_length=100, description="Strings to try (training.optimizer: adam, adamw)."
    )
    min: float | None = Field(default=None, description="Lower bound of a range (random strategy).")
    max: float | None = Field(default=None, description="Upper bound of a range (random strategy).")
    scale: Literal["linear", "log"] | None = Field(
        default=None, description="How a range is sampled: linear or log (default linear)."
    )


_RANKS_AS_NUMBERS = _list_in(tuple(float(r) for r in SERVABLE_LORA_RANKS))
_sweep_paths = ", ".join(SWEEPABLE_PARAMETERS)


class Sweep(ApiModel):
    """The hyperparameter sweep: which trials to run and how many at once."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            ("self.parallelism <= self.maxTrials", "sweep.parallelism must be <= sweep.maxTrials"),
            (
                "self.strategy != 'grid' || self.parameters.all(p, !has(self.parameters[p].min))",
                "sweep.strategy grid needs values or choices for every parameter (min/max ranges need strategy random)",
            ),
            (
                "self.parameters.all(p, has(self.parameters[p].choices) == (p == 'training.optimizer'))",
                "sweep.parameters: training.optimizer takes choices (adam, adamw); every other parameter takes "
                "values or min/max",
            ),
            (
                "!('training.optimizer' in self.parameters) || "
                "self.parameters['training.optimizer'].choices.all(v, v == 'adam' || v == 'adamw')",
                "sweep.parameters[training.optimizer].choices accepts adam and adamw",
            ),
            (
                "!('lora.rank' in self.parameters) || "
                "(has(self.parameters['lora.rank'].values) && "
                f"self.parameters['lora.rank'].values.all(v, v in {_RANKS_AS_NUMBERS}))",
                f"sweep.parameters[lora.rank].values accepts {list(SERVABLE_LORA_RANKS)}",
            ),
        )
    )

    strategy: Literal["grid", "random"] = Field(
        default="grid",
        description="grid: every combination of the values; random: maxTrials samples, seeded.",
    )
    max_trials: int = Field(default=20, ge=1, le=100, description="Upper bound on trials, 1..100.")
    parallelism: int = Field(default=4, ge=1, le=100, description="Trials running at once, <= maxTrials.")
    seed: int = Field(default=0, description="Seed of the random strategy: same seed, same trials.")
    parameters: dict[str, SweepParameter] = Field(
        default_factory=dict,
        description=f"Dotted spec path -> values or range. Paths: {_sweep_paths}.",
        json_schema_extra={
            "maxProperties": 13,
            **cel(
                (
                    f"self.all(p, p in {_list_in(tuple(SWEEPABLE_PARAMETERS))})",
                    f"sweep.parameters keys must be one of: {_sweep_paths}",
                )
            ),
        },
    )


class Objective(ApiModel):
    """How the champion is chosen among succeeded trials."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "(self.metric == 'judgeScore') == (self.goal == 'maximize')",
                "objective.goal must be maximize for judgeScore and minimize for validationLoss",
            )
        )
    )

    metric: Literal["judgeScore", "validationLoss"] = Field(
        default="judgeScore", description="judgeScore (LLM-as-judge mean, 0-5) or validationLoss."
    )
    goal: Literal["maximize", "minimize"] = Field(
        default="maximize", description="maximize for judgeScore, minimize for validationLoss."
    )


class Judge(ApiModel):
    """An OpenAI-compatible chat-completions endpoint used as the judge."""

    endpoint: str = Field(
        max_length=2048,
        description="Base URL of the OpenAI-compatible API, e.g. https://integrate.api.nvidia.com/v1.",
        json_schema_extra=cel(
            (
                "self.startsWith('http://') || self.startsWith('https://')",
                "judge.endpoint must be an http:// or https:// URL",
            )
        ),
    )
    model: str = Field(min_length=1, max_length=253, description="Judge model name.")
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the judge API key (never put keys in the spec)."
    )


class Rubric(ApiModel):
    """The 0-5 scoring rubric given to the judge."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.builtin) != has(self.text)",
                "evaluation.rubric sets exactly one of builtin or text",
            )
        )
    )

    builtin: Literal["query-formulation", "hypothetical-product"] | None = Field(
        default=None, description="A rubric shipped with AdapterOps for the commerce-agent tasks."
    )
    text: str | None = Field(default=None, max_length=16384, description="Your own rubric text.")


class Evaluation(ApiModel):
    """LLM-as-judge evaluation of each trial's adapter on a challenge set."""

    dataset: str = Field(
        max_length=2048,
        description="URI of the challenge set (JSON Lines with prompt and optional reference).",
        json_schema_extra=cel((URI_RULE[0], "evaluation.dataset " + URI_RULE[1])),
    )
    samples: int = Field(default=50, ge=1, le=10000, description="Challenge prompts judged per trial.")
    rubric: Rubric = Field(
        default_factory=lambda: Rubric(builtin="query-formulation"), description="Scoring rubric (0-5)."
    )
    judge: Judge = Field(description="The judge endpoint.")


class GpuResources(ApiModel):
    """Where and on what each trial runs."""

    gpu_type: str = Field(
        default="H100",
        min_length=1,
        max_length=63,
        description="GPU class from the operator's table (e.g. H100, B200): node labels, tolerations, price.",
    )
    gpus_per_trial: int = Field(default=1, ge=1, le=8, description="GPUs per node for each trial, 1..8.")
    nodes: int = Field(
        default=1, ge=1, le=64, description="Nodes per trial; > 1 runs on JobSet or Kubeflow PyTorchJob."
    )
    queue_name: str | None = Field(
        default=None, max_length=63, description="Kueue LocalQueue; trials are admitted by its quota."
    )
    priority_class_name: str | None = Field(default=None, max_length=253, description="PriorityClass of trials.")
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=32, description="Extra tolerations on top of the GPU class's."
    )


class Output(ApiModel):
    uri: str = Field(
        max_length=2048,
        description="Where adapters are written, one folder per trial: s3://bucket/prefix or pvc://claim/path.",
        json_schema_extra=cel(
            (
                "self.startsWith('s3://') || self.startsWith('pvc://')",
                "output.uri must start with s3:// or pvc://",
            )
        ),
    )


SWEEP_IMMUTABLE = cel(
    (
        "self.strategy == oldSelf.strategy && self.maxTrials == oldSelf.maxTrials && "
        "self.seed == oldSelf.seed && self.parameters == oldSelf.parameters",
        "spec.sweep is immutable except parallelism; create a new FineTuneJob to change the trials",
    )
)


class FineTuneJobSpec(ApiModel):
    """A LoRA fine-tuning sweep: trials on the GPU pool, each judged; the best becomes the champion."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.method != 'dpo' || self.dataset.format == 'preference'",
                "method dpo requires dataset.format preference (prompt, chosen, rejected)",
            ),
            (
                "self.objective.metric != 'judgeScore' || has(self.evaluation)",
                "objective.metric judgeScore requires spec.evaluation (challenge set and judge)",
            ),
            (
                "self.method != 'sft' || self.dataset.format != 'preference'",
                "method sft takes dataset.format chat or prompt-response; preference data is for dpo",
            ),
        )
    )

    base_model: BaseModelRef = Field(description="Base model.", json_schema_extra=immutable("spec.baseModel"))
    method: Literal["sft", "dpo"] = Field(
        default="sft",
        description="sft (supervised) or dpo (preference pairs).",
        json_schema_extra=immutable("spec.method"),
    )
    backend: Literal["nemo", "hf"] = Field(
        default="nemo",
        description=(
            "Trainer inside the trial pod: nemo (NeMo 2 recipe, GPUs) or hf (transformers + PEFT + TRL). "
            "DPO always runs on hf."
        ),
        json_schema_extra=immutable("spec.backend"),
    )
    dataset: Dataset = Field(description="Training data.", json_schema_extra=immutable("spec.dataset"))
    lora: Lora = Field(
        default_factory=Lora, description="LoRA adapter shape.", json_schema_extra=immutable("spec.lora")
    )
    training: Training = Field(description="Training hyperparameters.", json_schema_extra=immutable("spec.training"))
    sweep: Sweep = Field(default_factory=Sweep, description="Hyperparameter sweep.", json_schema_extra=SWEEP_IMMUTABLE)
    objective: Objective = Field(
        default_factory=Objective,
        description="Champion selection.",
        json_schema_extra=immutable("spec.objective"),
    )
    evaluation: Evaluation | None = Field(
        default=None, description="LLM-as-judge evaluation.", json_schema_extra=immutable("spec.evaluation")
    )
    resources: GpuResources = Field(default_factory=GpuResources, description="GPU placement of trials.")
    image: str | None = Field(
        default=None,
        max_length=1024,
        description="Trial image; default from the operator's config per backend.",
    )
    output: Output = Field(description="Where adapters go.", json_schema_extra=immutable("spec.output"))
    storage_secret_ref: LocalObjectReference | None = Field(
        default=None,
        description=(
            "Secret whose keys become the trial's environment, e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY "
            "and AWS_ENDPOINT_URL for s3:// URIs."
        ),
    )
    service_account_name: str | None = Field(
        default=None, max_length=253, description="ServiceAccount of trial pods (e.g. workload identity for storage)."
    )
    backoff_limit: int = Field(default=2, ge=0, le=10, description="Retries of a failed trial.")
    trial_deadline_seconds: int = Field(
        default=86400, ge=60, description="A trial running longer than this fails (activeDeadlineSeconds)."
    )
    suspend: bool = Field(default=False, description="True stops starting new trials; running ones finish.")


TrialState = Literal["Pending", "Running", "Succeeded", "Failed"]


class Trial(ApiModel):
    """One row of the sweep's leaderboard, recomputed from the trial's Job and pods."""

    name: str = Field(description="Trial name (also the Job name).")
    index: int = Field(description="Position in the sweep plan.")
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Swept values of this trial.",
        json_schema_extra={"additionalProperties": {"x-kubernetes-preserve-unknown-fields": True}},
    )
    state: TrialState = Field(description="Pending, Running, Succeeded or Failed.")
    attempts: int = Field(default=0, description="Pods started for this trial (1 + retries).")
    validation_loss: float | None = Field(default=None, description="Validation loss at the end of training.")
    judge_score: float | None = Field(default=None, description="Mean judge score on the challenge set (0-5).")
    adapter_uri: str | None = Field(default=None, description="Where the trial's adapter was written.")
    message: str | None = Field(default=None, description="Why the trial failed, when it did.")
    start_time: datetime | None = Field(default=None, description="When the trial's Job started.")
    completion_time: datetime | None = Field(default=None, description="When the trial finished.")


class TrialCounts(ApiModel):
    total: int = Field(default=0, description="Trials in the plan.")
    pending: int = Field(default=0, description="Not started yet (or waiting for admission).")
    running: int = Field(default=0, description="Running now.")
    succeeded: int = Field(default=0, description="Finished with a result.")
    failed: int = Field(default=0, description="Failed after all retries.")


class Champion(ApiModel):
    trial: str = Field(description="Winning trial.")
    adapter_uri: str = Field(description="URI of its adapter.")
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Its swept values.",
        json_schema_extra={"additionalProperties": {"x-kubernetes-preserve-unknown-fields": True}},
    )
    validation_loss: float | None = Field(default=None, description="Its validation loss.")
    judge_score: float | None = Field(default=None, description="Its mean judge score.")


class FineTuneJobStatus(ApiModel):
    observed_generation: int | None = Field(default=None, description="Generation the status describes.")
    conditions: Conditions
    state: Literal["Pending", "Running", "Succeeded", "Failed", "Suspended"] | None = Field(
        default=None, description="One-word summary for kubectl get."
    )
    progress: str | None = Field(default=None, description="Finished/total trials, e.g. 7/20.")
    trial_counts: TrialCounts | None = Field(default=None, description="Trials by state.")
    trials: list[Trial] = Field(
        default_factory=list,
        description="Leaderboard rows, one per trial.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    champion: Champion | None = Field(default=None, description="Best succeeded trial by spec.objective.")
    start_time: datetime | None = Field(default=None, description="When the first trial started.")
    completion_time: datetime | None = Field(default=None, description="When the sweep finished.")


class FineTuneJob(ApiModel):
    api_version: Literal["adapterops.io/v1alpha1"] = API_VERSION
    kind: Literal["FineTuneJob"] = "FineTuneJob"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: FineTuneJobSpec
    status: FineTuneJobStatus = Field(default_factory=FineTuneJobStatus)


# --------------------------------------------------------------------------- ModelDeployment


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

    name: str = Field(min_length=1, max_length=256, description="Variable name.")
    value: str | None = Field(default=None, max_length=32768, description="Literal value (not for secrets).")
    value_from: EnvVarSource | None = Field(default=None, description="Value from a Secret key.")


class Runtime(ApiModel):
    """The serving engine and its placement."""

    engine: Literal["nim", "vllm"] = Field(default="nim", description="nim (NVIDIA NIM for LLMs) or vllm.")
    image: str | None = Field(
        default=None,
        max_length=1024,
        description="Serving image; default from the operator's config per engine.",
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
                f"self in {_list_in(SERVABLE_LORA_RANKS)}",
                f"runtime.maxLoraRank must be one of {list(SERVABLE_LORA_RANKS)}",
            )
        ),
    )
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list, max_length=8, description="Secrets for pulling the image (e.g. nvcr.io)."
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key with the NGC API key (NIM: NGC_API_KEY)."
    )
    env: list[EnvVar] = Field(default_factory=list, max_length=64, description="Extra environment.")
    args: list[Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=list, max_length=64, description="Extra engine arguments."
    )


class AdapterSource(ApiModel):
    """One LoRA adapter to serve, by the model name clients request."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.fineTuneJobRef) != has(self.uri)",
                "each adapter sets exactly one of fineTuneJobRef or uri",
            )
        )
    )

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$",
        description="Served model name: clients send it as `model` in OpenAI requests.",
    )
    fine_tune_job_ref: LocalObjectReference | None = Field(
        default=None, description="Follow this FineTuneJob's champion: a new champion starts a canary."
    )
    uri: str | None = Field(
        default=None,
        max_length=2048,
        description="A fixed adapter location (s3://, pvc://claim/path or a mounted path).",
        json_schema_extra=cel((URI_RULE[0], "adapters[].uri " + URI_RULE[1])),
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
    """Paired judging: the same prompts to stable and canary, both answers scored."""

    dataset: str = Field(
        max_length=2048,
        description=(
            "Evaluation prompts (JSON Lines: prompt, optional system and reference), read by the operator: "
            "configmap://NAME/KEY in the ModelDeployment's namespace, or s3://bucket/key."
        ),
        json_schema_extra=cel(
            (
                "self.startsWith('configmap://') || self.startsWith('s3://')",
                "canary.analysis.judge.dataset must start with configmap:// or s3:// (the operator reads it)",
            )
        ),
    )
    samples: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="Most prompts judged per canary (the sequential test usually decides after 50-70).",
    )
    min_score: float | None = Field(default=None, ge=0, le=5, description="Lowest acceptable canary mean.")
    max_drop: float = Field(default=0.3, ge=0, le=5, description="Largest acceptable mean drop vs stable.")
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
        description="Inconclusive steps tolerated before Degraded; 0 means hold forever (never promote).",
    )


class HttpRouteRef(ApiModel):
    name: str = Field(min_length=1, max_length=253, description="HTTPRoute in the same namespace.")


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
    analysis: Analysis = Field(default_factory=Analysis, description="What decides promotion.")
    auto_promote: bool = Field(
        default=True, description="Promote after the last step passes; false waits for a promote action."
    )
    paused: bool = Field(default=False, description="True holds the canary at its current step.")


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
    storage_secret_ref: LocalObjectReference | None = Field(
        default=None,
        description="Secret whose keys become the adapter fetcher's environment (e.g. AWS_* for s3:// adapters).",
    )


class RevisionStatus(ApiModel):
    revision: str = Field(description="Hash of what this revision serves.")
    adapters: dict[str, str] = Field(default_factory=dict, description="Served name -> adapter URI.")
    engine: str = Field(description="nim or vllm.")
    image: str = Field(description="Serving image.")
    tensor_parallel_size: int = Field(description="TP size.")
    gpu_type: str = Field(description="GPU class.")
    replicas: int = Field(default=0, description="Desired replicas.")
    ready_replicas: int = Field(default=0, description="Ready replicas.")
    weight: int = Field(default=0, description="Share of traffic, percent.")


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


class ModelDeployment(ApiModel):
    api_version: Literal["adapterops.io/v1alpha1"] = API_VERSION
    kind: Literal["ModelDeployment"] = "ModelDeployment"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus = Field(default_factory=ModelDeploymentStatus)
