"""Pieces both kinds share: the camelCase model base, CEL helpers, references, tolerations, conditions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from adapterops.api.names import SecretKey, SecretName, TaintKey, Uri

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


def cel_list(values: tuple[Any, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" if isinstance(v, str) else str(v) for v in values) + "]"


class ApiModel(BaseModel):
    """Base for API models: camelCase on the wire, unknown fields refused (the CRD prunes them)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


# --------------------------------------------------------------------------- shared pieces


def storage_uri(field: str) -> Uri:
    """A URI the pods read from: s3://, pvc://claim/path or a path mounted into the pod."""
    return Uri(("s3://", "pvc://", "/"), f"{field} must start with s3://, pvc:// or / (a path mounted into the pod)")


class SecretKeyRef(ApiModel):
    """A key of a Secret in the object's namespace."""

    name: SecretName = Field(description="Name of the Secret.")
    key: SecretKey = Field(description="Key inside the Secret's data.")


class SecretReference(ApiModel):
    name: SecretName = Field(description="Name of the Secret, in the object's namespace.")


# The name this reference had when it took any object's name (code written against it references Secrets).
LocalObjectReference = SecretReference


class Toleration(ApiModel):
    """A Kubernetes toleration, added to the pods' GPU-class tolerations."""

    key: TaintKey | None = Field(default=None, description="Taint key the toleration applies to (a label key).")
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
    uri: Annotated[str, storage_uri("baseModel.uri")] | None = Field(
        default=None,
        description=(
            "Where the base checkpoint is read from: s3://bucket/prefix, pvc://claim/path or an absolute "
            "path mounted into the pod. Nothing is downloaded from a model hub at run time."
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


TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # metav1.Time on the wire: RFC 3339, UTC, whole seconds


def parse_time(value: object) -> datetime | None:
    """A metav1.Time string as a UTC datetime; None when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def get_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: list[Condition], type_: str) -> bool:
    found = get_condition(conditions, type_)
    return found is not None and found.status == "True"


def conditions_of(obj: dict[str, Any]) -> list[Condition]:
    """The typed conditions of an object as the API returns it (a malformed entry is skipped)."""
    out = []
    for raw in (obj.get("status") or {}).get("conditions") or []:
        try:
            out.append(Condition.model_validate(raw))
        except ValueError:
            continue
    return out


Conditions = Annotated[
    list[Condition],
    Field(
        default_factory=list,
        description="Current state, one entry per condition type.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]
