"""FineTuneJob (`ftj`): a LoRA fine-tuning sweep, its trials and champion."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from adapterops.api.common import (
    SWEEPABLE_PARAMETERS,
    ApiModel,
    BaseModelRef,
    SecretKeyRef,
    SecretReference,
    Toleration,
    cel,
    cel_list,
    immutable,
    storage_uri,
)
from adapterops.api.finetunejob_status import Baseline as Baseline
from adapterops.api.finetunejob_status import Champion as Champion
from adapterops.api.finetunejob_status import FineTuneJobStatus as FineTuneJobStatus
from adapterops.api.finetunejob_status import Improvement as Improvement
from adapterops.api.finetunejob_status import PairwiseResult as PairwiseResult
from adapterops.api.finetunejob_status import Trial as Trial
from adapterops.api.finetunejob_status import TrialCounts as TrialCounts
from adapterops.api.finetunejob_status import TrialState as TrialState
from adapterops.api.kinds import API_VERSION
from adapterops.api.names import OBJECT_NAME_RULE, PriorityClassName, QueueName, ServiceAccountName, Uri
from adapterops_common.contract import HF_TARGET_MODULES, NEMO_TARGET_MODULES, SERVABLE_LORA_RANKS


class Dataset(ApiModel):
    """Training data: JSON Lines, one example per line."""

    train: Annotated[str, storage_uri("dataset.train")] = Field(
        description="URI of the training set (s3://, pvc://claim/path or a mounted path).",
    )
    validation: Annotated[str, storage_uri("dataset.validation")] | None = Field(
        default=None,
        description="URI of a validation set; without it, validationFraction of train is held out.",
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
                f"self in {cel_list(SERVABLE_LORA_RANKS)}",
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
                f"self.all(m, m in {cel_list(NEMO_TARGET_MODULES + HF_TARGET_MODULES)})",
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


_RANKS_AS_NUMBERS = cel_list(tuple(float(r) for r in SERVABLE_LORA_RANKS))
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
                    f"self.all(p, p in {cel_list(tuple(SWEEPABLE_PARAMETERS))})",
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

    dataset: Annotated[str, storage_uri("evaluation.dataset")] = Field(
        description="URI of the challenge set (JSON Lines with prompt and optional reference).",
    )
    samples: int = Field(default=50, ge=1, le=10000, description="Challenge prompts judged per trial.")
    rubric: Rubric = Field(
        default_factory=lambda: Rubric(builtin="query-formulation"), description="Scoring rubric (0-5)."
    )
    judge: Judge = Field(description="The judge endpoint.")


MAX_NODES = 64  # per trial; trial names leave room for a node index of this many digits


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
        default=1, ge=1, le=MAX_NODES, description="Nodes per trial; > 1 runs on JobSet or Kubeflow PyTorchJob."
    )
    queue_name: QueueName | None = Field(
        default=None, description="Kueue LocalQueue; trials are admitted by its quota."
    )
    priority_class_name: PriorityClassName | None = Field(default=None, description="PriorityClass of trials.")
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=32, description="Extra tolerations on top of the GPU class's."
    )


class Output(ApiModel):
    uri: Annotated[str, Uri(("s3://", "pvc://"), "output.uri must start with s3:// or pvc://")] = Field(
        description="Where adapters are written, one folder per trial: s3://bucket/prefix or pvc://claim/path.",
    )


class BaselineSpec(ApiModel):
    """The base model (no adapter) evaluated like the trials, to say whether fine-tuning paid off."""

    evaluate: bool = Field(
        default=True,
        description=(
            "Evaluate the base model without an adapter once the trials have finished: one extra Job (no "
            "training) computing its validation loss on the same split and its judge score on the same "
            "challenge set, judge and rubric. false skips it (no comparison, nothing blocks a deployment)."
        ),
    )
    pairwise: bool = Field(
        default=True,
        description=(
            "With spec.evaluation: the baseline Job also has the judge compare the champion's answers with the "
            "base model's, each pair in both orders (status.baseline.pairwise: win rate, ties, agreement)."
        ),
    )
    min_improvement: float = Field(
        default=0.0,
        ge=0,
        description=(
            "How much the champion must beat the baseline by, in spec.objective.metric's units (judge points "
            "for judgeScore, loss for validationLoss). A champion that does not beat it by more than this ends "
            "the job Succeeded with the condition ChampionNotBetterThanBaseline=True."
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
    baseline: BaselineSpec = Field(
        default_factory=BaselineSpec, description="The base model evaluated as a reference for the champion."
    )
    image: str | None = Field(
        default=None,
        max_length=1024,
        description="Trial image; default from the operator's config per backend.",
    )
    output: Output = Field(description="Where adapters go.", json_schema_extra=immutable("spec.output"))
    storage_secret_ref: SecretReference | None = Field(
        default=None,
        description=(
            "Secret whose keys become the trial's environment, e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY "
            "and AWS_ENDPOINT_URL for s3:// URIs."
        ),
    )
    service_account_name: ServiceAccountName | None = Field(
        default=None, description="ServiceAccount of trial pods (e.g. workload identity for storage)."
    )
    backoff_limit: int = Field(default=2, ge=0, le=10, description="Retries of a failed trial.")
    trial_deadline_seconds: int = Field(
        default=86400, ge=60, description="A trial running longer than this fails (activeDeadlineSeconds)."
    )
    suspend: bool = Field(default=False, description="True stops starting new trials; running ones finish.")


class FineTuneJob(ApiModel):
    # CEL at the root: the only place a rule sees metadata.name (see names.OBJECT_NAME_RULE).
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [OBJECT_NAME_RULE]})

    api_version: Literal["adapterops.io/v1alpha1"] = API_VERSION
    kind: Literal["FineTuneJob"] = "FineTuneJob"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: FineTuneJobSpec
    status: FineTuneJobStatus = Field(default_factory=FineTuneJobStatus)
