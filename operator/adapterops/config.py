"""Operator configuration: one settings model, read once from the environment (the chart sets it).

Every setting is an `ADAPTEROPS_<NAME>` environment variable; the defaults and meanings below are
the only place they are documented (docs and the chart's values.yaml point here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from adapterops.api.common import Toleration
from adapterops.runtime.acceptance import Refusal


class GpuClass(BaseModel):
    """One GPU class: where its nodes are, what they cost."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    node_selector: dict[str, str] = Field(description="Labels of the nodes carrying this GPU.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Taints of those nodes.")
    price_per_hour: float = Field(ge=0, description="US dollars per GPU hour.")
    memory_gib: int = Field(alias="memoryGiB", ge=1, description="Memory per GPU, GiB.")
    gpus_per_node: int = Field(default=8, ge=1, description="GPUs on each node of this class.")
    resource_name: str = Field(default="nvidia.com/gpu", description="Extended resource requested.")


class ConfigError(ValueError):
    """The operator's own configuration is unusable."""


def load_gpu_classes(path: Path) -> dict[str, GpuClass]:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"GPU class table {path} does not exist (ADAPTEROPS_GPU_CLASSES_FILE)") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"GPU class table {path} must be a mapping of class name -> class")
    try:
        return {str(name): GpuClass.model_validate(spec) for name, spec in raw.items()}
    except ValidationError as exc:
        raise ConfigError(f"GPU class table {path}: {exc}") from exc


class Config(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ADAPTEROPS_", frozen=True, extra="ignore")

    namespaces: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Comma-separated namespaces to watch; empty watches the whole cluster."
    )
    gpu_classes_file: Path = Field(
        default=Path("/etc/adapterops/gpu-classes.yaml"), description="GPU class table (the chart's ConfigMap)."
    )
    gpu_classes: dict[str, GpuClass] = Field(default_factory=dict, description="Loaded from gpu_classes_file.")
    trainer_image_nemo: str = Field(default="ghcr.io/adapterops/trainer-nemo:0.1.0", description="backend nemo.")
    trainer_image_hf: str = Field(default="ghcr.io/adapterops/trainer-hf:0.1.0", description="backend hf.")
    nim_image: str = Field(
        default="nvcr.io/nim/nvidia/llama-3.1-nemotron-nano-8b-v1:1.8", description="Default NIM image."
    )
    vllm_image: str = Field(default="vllm/vllm-openai:v0.11.0", description="Default vLLM image.")
    fetcher_image: str = Field(
        default="ghcr.io/adapterops/adapter-fetcher:0.1.0", description="Init container that fetches adapters."
    )
    prometheus_url: str = Field(
        default="http://prometheus-operated.monitoring:9090", description="Prometheus for canary metrics."
    )
    pod_labels: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="JSON object of labels added to every pod AdapterOps creates."
    )
    default_queues: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description=(
            "JSON object namespace -> Kueue LocalQueue: the queue of a FineTuneJob in that namespace that names "
            "none (the chart's tenantPolicy.defaultQueues; its admission policy consults the same map)."
        ),
    )
    bind_address: str = Field(default="0.0.0.0", description="Address of the health and metrics servers.")
    health_port: int = Field(default=8080, description="/healthz (liveness) and /readyz.")
    metrics_port: int = Field(default=9090, description="Prometheus metrics (/metrics).")
    reconcile_seconds: float = Field(default=30.0, gt=0, description="Periodic resync of every object.")
    status_write_seconds: float = Field(
        default=5.0, ge=0, description="Minor status changes of one object are written at most this often."
    )
    api_timeout_seconds: float = Field(default=30.0, gt=0, description="Timeout of every API call.")
    leader_election: bool = Field(default=True, description="Run the workers only on the Lease holder.")
    leader_election_namespace: str = Field(
        default="adapterops-system", description="Namespace of the Lease (the chart sets the operator's own)."
    )
    leader_election_name: str = Field(default="adapterops", description="Name of the Lease.")
    lease_seconds: float = Field(default=15.0, gt=0, description="How long a Lease holds without renewal.")
    renew_deadline_seconds: float = Field(default=10.0, gt=0, description="The leader gives up after this.")
    retry_seconds: float = Field(default=2.0, gt=0, description="How often the Lease is tried or renewed.")
    pod_name: str = Field(default="", description="This replica's pod name (the Lease holder identity's prefix).")

    def gpu_class(self, name: str, field: str) -> GpuClass:
        """The GPU class `name` (from the spec field `field`), or a Refusal listing the known ones."""
        found = self.gpu_classes.get(name)
        if found is None:
            known = ", ".join(sorted(self.gpu_classes)) or "none configured"
            raise Refusal("UnknownGpuClass", f"{field}: unknown GPU class {name!r}; this cluster has: {known}")
        return found

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(n.strip() for n in value.split(",") if n.strip())
        return value

    @field_validator("pod_labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value or "{}")
            except json.JSONDecodeError as exc:
                raise ValueError(f"must be a JSON object of label -> value, got {value!r}") from exc
        return value

    @field_validator("default_queues", mode="before")
    @classmethod
    def _queues(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value or "{}")
            except json.JSONDecodeError as exc:
                raise ValueError(f"must be a JSON object of namespace -> queue name, got {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _load_gpu_classes(self) -> Config:
        if not self.gpu_classes:
            object.__setattr__(self, "gpu_classes", load_gpu_classes(self.gpu_classes_file))
        return self

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Config:
        """The configuration from `env` (default: the process environment); ConfigError names what is wrong."""
        try:
            if env is None:
                return cls()
            prefixed = {k.removeprefix("ADAPTEROPS_").lower(): v for k, v in env.items() if k.startswith("ADAPTEROPS_")}
            return cls.model_validate(prefixed)
        except ValidationError as exc:
            err = exc.errors()[0]
            message = err["msg"].removeprefix("Value error, ")
            if err["loc"]:
                message = "ADAPTEROPS_" + "_".join(str(p) for p in err["loc"]).upper() + " " + message
            raise ConfigError(message) from exc
