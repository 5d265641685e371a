"""The operator <-> trainer contract: what one trial pod is asked to do, and what it answers.

The operator writes a `TrialSpec` (the FineTuneJob's spec with this trial's sweep values applied,
every setting resolved) into a ConfigMap mounted at `TRIAL_SPEC_PATH`; the trainer reads it. The
trainer's answer is a `TrialResult`, written as compact JSON to the termination log, where the kubelet
picks it up as the container's termination message (at most `TERMINATION_MESSAGE_LIMIT` bytes) and the
operator reads it from the pod status.

Versioning rule. `CONTRACT_VERSION` names the wire format of both documents (`TrialSpec.apiVersion` is
`adapterops.io/trial-spec/v<N>`, `TrialResult.v` is N). The structure of both (fields, types,
constraints, what is required; not the prose) is committed per version in
`schema/trial-contract.v<N>.json`, and a test fails when the models no longer match the current
version's snapshot. Any change to either document bumps `CONTRACT_VERSION` and adds a new snapshot
(`python -m adapterops_common.contract --write-schema`); a released snapshot is never rewritten. Both
sides accept exactly their own version and refuse fields they do not know (`extra="forbid"`): a
trainer image older than the operator fails the trial at once (exit 2, `SpecInvalid`, the unknown
field named) instead of silently dropping a setting it was asked for.

Standalone: pydantic only, no import of the operator's API. The operator converts its CRD models into
these by dumping them (camelCase) and validating here; a unit test proves that a FineTuneJob using
every field converts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import models_json_schema

CONTRACT_VERSION: Final = 2
TRIAL_SPEC_VERSION: Final = "adapterops.io/trial-spec/v2"
RESULT_VERSION: Final = 2
SCHEMA_DIR: Final = Path(__file__).parent / "schema"

# The kubelet keeps at most this many bytes of a termination message.
TERMINATION_MESSAGE_LIMIT: Final = 4096
# Exit codes of the trainer (`python -m adapterops_train run`): the operator's podFailurePolicy fails a
# trial's Job at once on EXIT_PERMANENT (retrying cannot fix a bad spec, dataset or base model) and
# retries EXIT_FAILED.
EXIT_FAILED: Final = 1
EXIT_PERMANENT: Final = 2
PERMANENT_REASONS: Final = frozenset(
    {"SpecInvalid", "DatasetInvalid", "DatasetNotFound", "BaseModelNotFound", "BackendUnavailable"}
)
# Where the operator mounts things in trial and serving pods.
TRIAL_SPEC_PATH: Final = "/etc/adapterops/trial.json"
JUDGE_API_KEY_PATH: Final = "/var/run/secrets/adapterops/judge/api-key"
PVC_ROOT: Final = "/mnt/pvc"

# Ranks that both vLLM (`--max-lora-rank` choices) and NIM (any rank <= NIM_MAX_LORA_RANK) can serve.
SERVABLE_LORA_RANKS: Final = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# LoRA target modules: NeMo/Megatron names and their Hugging Face (Llama) equivalents.
NemoTargetModule = Literal["linear_qkv", "linear_proj", "linear_fc1", "linear_fc2"]
HfTargetModule = Literal["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
NEMO_TARGET_MODULES: Final[tuple[str, ...]] = get_args(NemoTargetModule)
HF_TARGET_MODULES: Final[tuple[str, ...]] = get_args(HfTargetModule)
TargetModule = Literal[NemoTargetModule, HfTargetModule]
BuiltinRubric = Literal["query-formulation", "hypothetical-product"]
BUILTIN_RUBRICS: Final[tuple[str, ...]] = get_args(BuiltinRubric)


class ContractModel(BaseModel):
    """camelCase on the wire; a field this side does not know is an error, never dropped."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# --------------------------------------------------------------------------- operator -> trainer


class BaseModelRef(ContractModel):
    name: str = Field(min_length=1, description="Model name as the serving engine knows it.")
    uri: str | None = Field(
        default=None, description="s3://, pvc:// or absolute path of the HF checkpoint; none: the trial fails."
    )


class Dataset(ContractModel):
    train: str = Field(description="URI of the training set (JSON Lines).")
    validation: str | None = Field(default=None, description="URI of the validation set; none: hold out.")
    validation_fraction: float = Field(gt=0, lt=1, description="Share held out when there is no validation set.")
    seed: int = Field(description="Seed of the train/validation split.")
    format: Literal["chat", "prompt-response", "preference"]


class Lora(ContractModel):
    rank: int = Field(ge=1)
    alpha: int = Field(ge=1)
    dropout: float = Field(ge=0, lt=1)
    target_modules: list[TargetModule] = Field(min_length=1)


class Scheduler(ContractModel):
    type: Literal["cosine"]
    warmup_steps: int = Field(ge=0)
    min_learning_rate: float = Field(ge=0)


class Training(ContractModel):
    max_steps: int | None = Field(default=None, ge=1, description="Optimizer steps; exactly one of this or epochs.")
    epochs: float | None = Field(default=None, gt=0, description="Passes over the training set.")
    learning_rate: float = Field(gt=0)
    optimizer: Literal["adam", "adamw"]
    weight_decay: float = Field(ge=0)
    scheduler: Scheduler
    global_batch_size: int = Field(ge=1)
    micro_batch_size: int = Field(ge=1)
    seq_length: int = Field(ge=16)
    precision: Literal["bf16", "fp16", "fp32"]
    seed: int

    @model_validator(mode="after")
    def _one_length(self) -> Training:
        if (self.max_steps is None) == (self.epochs is None):
            raise ValueError(
                f"training sets maxSteps={self.max_steps} and epochs={self.epochs}; exactly one of them is accepted"
            )
        return self


class Rubric(ContractModel):
    builtin: BuiltinRubric | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Rubric:
        if (self.builtin is None) == (self.text is None):
            raise ValueError("evaluation.rubric: exactly one of builtin or text is accepted")
        return self


class Judge(ContractModel):
    """The judge endpoint. Its API key is not here: it is a file the operator mounts (JUDGE_API_KEY_PATH,
    or $ADAPTEROPS_JUDGE_API_KEY_FILE), so a Secret's name never reaches the trainer."""

    endpoint: str = Field(description="Base URL of the OpenAI-compatible API, ending in /v1.")
    model: str = Field(min_length=1)


class Evaluation(ContractModel):
    dataset: str = Field(description="URI of the challenge set (JSON Lines).")
    samples: int = Field(ge=1, description="Challenge prompts judged.")
    rubric: Rubric
    judge: Judge


class TrialSpec(ContractModel):
    """Everything a trial needs, resolved by the operator: nothing is defaulted by the trainer."""

    api_version: Literal["adapterops.io/trial-spec/v2"]
    name: str = Field(min_length=1, description="Trial name, also the adapter's directory name.")
    finetune_job: str = Field(description="Owning FineTuneJob (namespace/name).")
    method: Literal["sft", "dpo"]
    backend: Literal["nemo", "hf"] = Field(description="The backend to run (the operator routes DPO to hf).")
    base_model: BaseModelRef
    dataset: Dataset
    lora: Lora
    training: Training
    evaluation: Evaluation | None = Field(default=None, description="None: no judging.")
    output_uri: str = Field(description="Folder this trial writes: <spec.output.uri>/<job>-<uid8>/<trial>.")
    parameters: dict[str, Any] = Field(description="This trial's swept values (informational).")
    gpus: int = Field(ge=1, description="GPUs per node given to the trial.")
    nodes: int = Field(ge=1, description="Nodes given to the trial.")


# --------------------------------------------------------------------------- trainer -> operator


class JudgeSummary(ContractModel):
    status: Literal["ok", "unavailable", "invalid"] = Field(
        description="ok: scores below are real; unavailable: judge unreachable; invalid: judge answered garbage."
    )
    mean: float | None = None
    std: float | None = None
    samples: int = Field(default=0, description="Answers that got a real score (the mean is over these).")
    requested: int = Field(default=0, description="Answers sent to the judge.")
    message: str | None = None


class PairwiseSummary(ContractModel):
    """v2: the baseline Job's pairwise comparison of the champion's answers with the base model's, each pair
    asked in both orders (`adapterops_common.pairwise`); counts from the champion's side."""

    status: Literal["ok", "unavailable", "invalid"] = Field(
        description="ok: the counts below are real; otherwise the judge could not compare (message says why)."
    )
    pairs: int = Field(default=0, description="Prompts compared in both orders.")
    wins: int = 0
    ties: int = 0
    losses: int = 0
    win_rate: float | None = Field(default=None, description="(1 + mean outcome) / 2: ties count half.")
    agreement: float | None = Field(default=None, description="Share of pairs whose two orders agreed.")
    message: str | None = None


class TrialResult(ContractModel):
    """The termination-message document (keep it well under TERMINATION_MESSAGE_LIMIT bytes)."""

    v: Literal[2] = RESULT_VERSION
    status: Literal["succeeded", "failed"]
    reason: str | None = Field(default=None, description="CamelCase failure reason, e.g. DatasetInvalid.")
    message: str | None = Field(default=None, description="Human-readable detail (truncated to fit).")
    backend: str | None = None
    validation_loss: float | None = None
    train_loss: float | None = None
    steps: int | None = None
    judge: JudgeSummary | None = None
    pairwise: PairwiseSummary | None = Field(default=None, description="v2: the baseline's champion comparison.")
    adapter_uri: str | None = None
    metrics_uri: str | None = None
    duration_seconds: float | None = None

    def to_termination_message(self) -> str:
        """Compact JSON within the kubelet's limit, whatever the URIs' length: an over-long message is cut
        first, then the fields the operator can do without are dropped (metricsUri sits next to the
        adapter; the backend and train loss are informative); never the scores or the adapter's URI."""
        doc = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        if not _fits(doc) and doc.get("message"):
            message, lo, hi = doc["message"], 0, len(doc["message"])
            while lo < hi:  # the longest prefix that fits (escaping makes some characters several bytes)
                mid = (lo + hi + 1) // 2
                if _fits({**doc, "message": message[:mid] + "..."}):
                    lo = mid
                else:
                    hi = mid - 1
            doc["message"] = message[:lo] + "..."
            if not lo:
                del doc["message"]
        for expendable in ("metricsUri", "backend", "trainLoss", "durationSeconds", "steps"):
            if _fits(doc):
                break
            doc.pop(expendable, None)
        return _compact(doc)


def _fits(doc: dict[str, Any]) -> bool:
    return len(_compact(doc).encode()) <= TERMINATION_MESSAGE_LIMIT


def _compact(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True)


# --------------------------------------------------------------------------- errors a user reads


def explain(exc: ValidationError, model: type[BaseModel] = TrialSpec) -> str:
    """The problems of a refused document, "; "-separated: each names the field, the bad value and what is
    accepted. An unknown field means the two sides speak different contracts; the message says so."""
    version = _version_of(model)
    problems: list[str] = []
    missing: list[str] = []
    unknown = False
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        where = ".".join(loc) or "document"
        value = _clip(repr(err.get("input")))
        kind = err["type"]
        if kind == "extra_forbidden":
            unknown = True
            known = ", ".join(_fields_at(model, loc[:-1])) or "nothing"
            problems.append(f"{where}: unknown field (value {value}); contract {version} accepts here: {known}")
        elif kind == "missing":
            missing.append(where)
        elif kind == "value_error":  # our own validators' messages name the fields and values
            problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
        elif kind == "json_invalid":
            problems.append(f"{where}: not JSON ({err['msg']})")
        else:
            problems.append(f"{where}: {value} is not accepted: {err['msg']}")
    if missing:
        problems.append(f"missing, required by contract {version}: {', '.join(missing)}")
    if unknown:
        problems.append(
            "the sender speaks another contract than this image: "
            "run operator and trainer images of one AdapterOps release"
        )
    return "; ".join(problems)


def _version_of(model: type[BaseModel]) -> str:
    return TRIAL_SPEC_VERSION if model is TrialSpec else f"v{CONTRACT_VERSION}"


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fields_at(model: type[BaseModel], path: list[str]) -> list[str]:
    """camelCase field names of the model found at `path` (aliases, as on the wire)."""
    current: type[BaseModel] | None = model
    for part in path:
        if current is None:
            return []
        info = next((f for n, f in current.model_fields.items() if part in (n, f.alias)), None)
        if info is None:
            return []
        candidates = (info.annotation, *get_args(info.annotation))  # a model, or Optional[model]
        current = next((a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)), None)
    if current is None:
        return []
    return [f.alias or n for n, f in current.model_fields.items()]


# --------------------------------------------------------------------------- the committed schema


def schema_path(version: int = CONTRACT_VERSION) -> Path:
    return SCHEMA_DIR / f"trial-contract.v{version}.json"


def contract_schema() -> dict[str, Any]:
    """The JSON Schema of both documents: structure only (no titles or descriptions, so prose can change
    without a new version). `$defs.TrialSpec` and `$defs.TrialResult` are the two documents."""
    _, top = models_json_schema([(TrialSpec, "validation"), (TrialResult, "validation")], by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://adapterops.io/schemas/trial-contract/v{CONTRACT_VERSION}.json",
        "x-adapterops-contract-version": CONTRACT_VERSION,
        "$defs": _structure(top["$defs"]),
    }


def _structure(node: Any, *, in_properties: bool = False) -> Any:
    if isinstance(node, dict):
        return {
            k: _structure(v, in_properties=k in ("properties", "$defs") and not in_properties)
            for k, v in node.items()
            if in_properties or k not in ("title", "description")
        }
    if isinstance(node, list):
        return [_structure(v) for v in node]
    return node


def render_schema() -> str:
    return json.dumps(contract_schema(), indent=2, sort_keys=True) + "\n"


def document_schema(document: Literal["TrialSpec", "TrialResult"], version: int = CONTRACT_VERSION) -> dict[str, Any]:
    """The committed schema of one document, ready for a JSON Schema validator."""
    committed = json.loads(schema_path(version).read_text(encoding="utf-8"))
    return {"$schema": committed["$schema"], "$defs": committed["$defs"], "$ref": f"#/$defs/{document}"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m adapterops_common.contract",
        description="Print the trial contract's JSON Schema, or write the snapshot of a new contract version.",
    )
    p.add_argument("--write-schema", action="store_true", help=f"write {schema_path().name} (a new version only)")
    args = p.parse_args(argv)
    text = render_schema()
    if not args.write_schema:
        sys.stdout.write(text)
        return 0
    path = schema_path()
    if path.exists() and path.read_text(encoding="utf-8") != text:
        # Rewriting a released version's snapshot would hide a wire change from the images using it.
        print(
            f"{path.name} exists and differs from the models: contract v{CONTRACT_VERSION} is released. Bump "
            f"CONTRACT_VERSION (and TrialSpec.apiVersion, TrialResult.v) in {Path(__file__).name}, then run this again",
            file=sys.stderr,
        )
        return 1
    path.write_text(text, encoding="utf-8")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
