"""Operator configuration: one object, read once from the environment (the chart sets it).

| variable | default | meaning |
|---|---|---|
| ADAPTEROPS_NAMESPACES | (all) | comma-separated namespaces to watch; empty watches the whole cluster |
| ADAPTEROPS_GPU_CLASSES_FILE | /etc/adapterops/gpu-classes.yaml | GPU class table (the chart's ConfigMap) |
| ADAPTEROPS_TRAINER_IMAGE_NEMO | ghcr.io/adapterops/trainer-nemo:0.1.0 | trial image for backend nemo |
| ADAPTEROPS_TRAINER_IMAGE_HF | ghcr.io/adapterops/trainer-hf:0.1.0 | trial image for backend hf |
| ADAPTEROPS_NIM_IMAGE | nvcr.io/nim/nvidia/llama-3.1-nemotron-nano-8b-v1:1.8 | default NIM image |
| ADAPTEROPS_VLLM_IMAGE | vllm/vllm-openai:v0.11.0 | default vLLM image |
| ADAPTEROPS_FETCHER_IMAGE | ghcr.io/adapterops/adapter-fetcher:0.1.0 | init container that fetches adapters |
| ADAPTEROPS_PROMETHEUS_URL | http://prometheus-operated.monitoring:9090 | Prometheus for canary latency |
| ADAPTEROPS_POD_LABELS | {} | JSON object of labels added to every pod AdapterOps creates |
| ADAPTEROPS_BIND_ADDRESS | 0.0.0.0 | address of the health and metrics servers |
| ADAPTEROPS_HEALTH_PORT | 8080 | liveness endpoint (/healthz) |
| ADAPTEROPS_METRICS_PORT | 9090 | Prometheus metrics (/metrics) |
| ADAPTEROPS_RECONCILE_SECONDS | 30 | periodic resync of every object, on top of watch events |
| ADAPTEROPS_STATUS_WRITE_SECONDS | 5 | minor status changes of one object are written at most this often |
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from adapterops.api.common import Toleration


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


def _labels(raw: str) -> dict[str, str]:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise ConfigError(f"ADAPTEROPS_POD_LABELS must be a JSON object, got {raw!r}") from exc
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"ADAPTEROPS_POD_LABELS must map label names to strings, got {raw!r}")
    return value


@dataclass(frozen=True)
class Config:
    namespaces: tuple[str, ...] = ()
    gpu_classes: dict[str, GpuClass] = field(default_factory=dict)
    trainer_image_nemo: str = "ghcr.io/adapterops/trainer-nemo:0.1.0"
    trainer_image_hf: str = "ghcr.io/adapterops/trainer-hf:0.1.0"
    nim_image: str = "nvcr.io/nim/nvidia/llama-3.1-nemotron-nano-8b-v1:1.8"
    vllm_image: str = "vllm/vllm-openai:v0.11.0"
    fetcher_image: str = "ghcr.io/adapterops/adapter-fetcher:0.1.0"
    prometheus_url: str = "http://prometheus-operated.monitoring:9090"
    pod_labels: dict[str, str] = field(default_factory=dict)
    bind_address: str = "0.0.0.0"
    health_port: int = 8080
    metrics_port: int = 9090
    reconcile_seconds: float = 30.0
    status_write_seconds: float = 5.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Config:
        e: Any = os.environ if env is None else env
        d = cls()
        gpu_file = Path(e.get("ADAPTEROPS_GPU_CLASSES_FILE", "/etc/adapterops/gpu-classes.yaml"))
        return cls(
            namespaces=tuple(n.strip() for n in e.get("ADAPTEROPS_NAMESPACES", "").split(",") if n.strip()),
            gpu_classes=load_gpu_classes(gpu_file),
            trainer_image_nemo=e.get("ADAPTEROPS_TRAINER_IMAGE_NEMO", d.trainer_image_nemo),
            trainer_image_hf=e.get("ADAPTEROPS_TRAINER_IMAGE_HF", d.trainer_image_hf),
            nim_image=e.get("ADAPTEROPS_NIM_IMAGE", d.nim_image),
            vllm_image=e.get("ADAPTEROPS_VLLM_IMAGE", d.vllm_image),
            fetcher_image=e.get("ADAPTEROPS_FETCHER_IMAGE", d.fetcher_image),
            prometheus_url=e.get("ADAPTEROPS_PROMETHEUS_URL", d.prometheus_url),
            pod_labels=_labels(e.get("ADAPTEROPS_POD_LABELS", "")),
            bind_address=e.get("ADAPTEROPS_BIND_ADDRESS", d.bind_address),
            health_port=int(e.get("ADAPTEROPS_HEALTH_PORT", d.health_port)),
            metrics_port=int(e.get("ADAPTEROPS_METRICS_PORT", d.metrics_port)),
            reconcile_seconds=float(e.get("ADAPTEROPS_RECONCILE_SECONDS", d.reconcile_seconds)),
            status_write_seconds=float(e.get("ADAPTEROPS_STATUS_WRITE_SECONDS", d.status_write_seconds)),
        )
