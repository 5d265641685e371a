"""Operator configuration: one settings model, read once from the environment (the chart sets it).

Every setting is an `ADAPTEROPS_<NAME>` environment variable; the defaults and meanings below are
the only place they are documented (docs and the chart's values.yaml point here).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from adapterops.api.common import Toleration
from adapterops.egress import ANY, Allowlist, check, parse_allowlist
from adapterops.runtime.acceptance import Refusal

log = logging.getLogger(__name__)


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


class ContainerUser(BaseModel):
    """Who the containers of one image role run as. The restricted Pod Security profile needs a non-root
    user; an image whose own USER is root (vLLM's, the NeMo container) runs as the UID set here."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    run_as_user: int = Field(ge=1, description="UID (0, root, is refused by the restricted profile).")
    run_as_group: int = Field(ge=1, description="GID; also the pod's fsGroup (mounted volumes writable).")
    read_only_root_filesystem: bool = Field(description="Only the pod's emptyDirs and volumes are writable.")


# The roles of the images AdapterOps runs (the chart's `images` keys) and who each runs as by default;
# docs/pod-security.md says why. A FineTuneJob's or ModelDeployment's own image keeps its role's user.
CONTAINER_USERS: dict[str, ContainerUser] = {
    # The NeMo container's USER is root; NeMo runs as any UID (as under Slurm/enroot) with HOME=/tmp.
    # Its writes outside /tmp are not inventoried: the root filesystem stays writable.
    "trainerNemo": ContainerUser(run_as_user=1000, run_as_group=1000, read_only_root_filesystem=False),
    "trainerHf": ContainerUser(run_as_user=65532, run_as_group=65532, read_only_root_filesystem=True),
    # NVIDIA's nim-llm chart runs NIM as 1000:1000 with a writable root filesystem.
    "nim": ContainerUser(run_as_user=1000, run_as_group=1000, read_only_root_filesystem=False),
    # vLLM's image runs as root; any UID works with HOME on an emptyDir (caches, compile artefacts).
    "vllm": ContainerUser(run_as_user=1000, run_as_group=1000, read_only_root_filesystem=False),
    "fetcher": ContainerUser(run_as_user=65532, run_as_group=65532, read_only_root_filesystem=True),
}
# The profile table shipped for the default NIM image (the chart's nimProfiles; a test keeps the two equal):
# only what the research could back, each entry's evidence in docs/engines.md. No LoRA (feat_lora) profile
# ID of this image was found: a NIM ModelDeployment serving adapters on it is refused until the admin adds
# one from `list-model-profiles` (the refusal says which key).
DEFAULT_NIM_IMAGE = "nvcr.io/nim/nvidia/llama-3.1-nemotron-nano-8b-v1:1.8"
DEFAULT_NIM_PROFILES: dict[str, dict[str, str]] = {
    DEFAULT_NIM_IMAGE: {
        # vLLM bf16 TP1 of 1.8.4, as a public deployment pinned it (third-party); that it is generic (no GPU
        # tag, so valid on H100 and B200) and the same in every 1.8 build is not verified.
        "H100/tp1/bf16": "4f904d571fe60ff24695b5ee2aa42da58cb460787a968f1e8a09f5a7e862728d",
        "B200/tp1/bf16": "4f904d571fe60ff24695b5ee2aa42da58cb460787a968f1e8a09f5a7e862728d",
    }
}
# The NIM profile table's keys and values (see Config.nim_profiles, docs/engines.md).
PROFILE_KEY = re.compile(
    r"^(?P<gpu>[^/\s]+)/tp(?P<tp>1|2|4|8)/(?P<precision>bf16|fp16|fp8|nvfp4|mxfp4)(?P<lora>/lora)?$"
)
PROFILE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")


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


def _json_object(value: Any, what: str) -> Any:
    """An environment variable's JSON object, parsed (values from code pass through)."""
    if isinstance(value, str):
        try:
            value = json.loads(value or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"must be a JSON object of {what}, got {value!r}") from exc
    return value


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
    nim_image: str = Field(default=DEFAULT_NIM_IMAGE, description="Default NIM image.")
    vllm_image: str = Field(default="vllm/vllm-openai:v0.11.0", description="Default vLLM image.")
    fetcher_image: str = Field(
        default="ghcr.io/adapterops/adapter-fetcher:0.1.0", description="Init container that fetches adapters."
    )
    prometheus_url: str = Field(
        default="http://prometheus-operated.monitoring:9090", description="Prometheus for canary metrics."
    )
    prometheus_scrape_seconds: float = Field(
        default=15.0,
        gt=0,
        le=300,
        description=(
            "How often Prometheus scrapes the serving pods. The relative latency test takes a snapshot every two "
            "scrape intervals, each once a scrape interval and 5 s have passed (so that it never changes later)."
        ),
    )
    # What a tenant may make AdapterOps call (adapterops.egress): URL prefixes, comma-separated, compared
    # parsed (scheme, host, port, then whole path segments); `*` allows any http(s) URL.
    allowed_prometheus_urls: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description=(
            "URL prefixes spec.canary.analysis.latency.prometheusUrl may name (the operator queries it); "
            "prometheus_url itself is always allowed. Empty: no override."
        ),
    )
    allowed_judge_endpoints: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description=(
            "URL prefixes a judge endpoint may name (FineTuneJob spec.evaluation.judge.endpoint: trial pods call "
            "it; ModelDeployment spec.canary.analysis.judge.judge.endpoint: the operator calls it). "
            "Empty: no judge may be used."
        ),
    )
    allowed_s3_endpoints: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description=(
            "S3 endpoints (AWS_ENDPOINT_URL[_S3] in a ModelDeployment's storageSecretRef) the operator may read "
            "s3:// judge datasets from. Without an endpoint in the Secret, AWS S3 itself is used."
        ),
    )
    judge_dataset_max_bytes: int = Field(
        default=16 << 20, ge=1, description="Largest s3:// judge dataset the operator reads (it holds it in memory)."
    )
    pod_labels: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="JSON object of labels added to every pod AdapterOps creates."
    )
    container_users: Annotated[dict[str, ContainerUser], NoDecode] = Field(
        default_factory=lambda: dict(CONTAINER_USERS),
        description="JSON object: image role (" + ", ".join(CONTAINER_USERS) + ") -> {runAsUser, runAsGroup, "
        "readOnlyRootFilesystem}; roles and fields left out keep their defaults (CONTAINER_USERS).",
    )
    trial_scratch_size: str = Field(
        default="100Gi", description="sizeLimit of a trial's /tmp (s3:// downloads, checkpoints, NeMo's import)."
    )
    engine_cache_size: str = Field(
        default="200Gi", description="sizeLimit of a serving engine's cache (NIM downloads and builds models there)."
    )
    adapters_size: str = Field(default="10Gi", description="sizeLimit of a serving pod's fetched adapters.")
    default_queues: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description=(
            "JSON object namespace -> Kueue LocalQueue: the queue of a FineTuneJob in that namespace that names "
            "none (the chart's tenantPolicy.defaultQueues; its admission policy consults the same map)."
        ),
    )
    nim_profiles: Annotated[dict[str, dict[str, str]], NoDecode] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_NIM_PROFILES.items()},
        description=(
            'JSON object: NIM image prefix -> {"<gpuType>/tp<N>/<precision>[/lora]": profile ID or name}, the '
            "NIM_MODEL_PROFILE a ModelDeployment on that image runs (the longest matching prefix wins; `/lora` "
            "entries are feat_lora profiles, used when adapters are served). A NIM ModelDeployment whose key is "
            "missing is refused (Accepted=False, NimProfileMissing). IDs: `list-model-profiles` of the image."
        ),
    )
    bind_address: str = Field(default="0.0.0.0", description="Address of the health and metrics servers.")
    health_port: int = Field(default=8080, description="/healthz (liveness) and /readyz.")
    metrics_port: int = Field(default=9090, description="Prometheus metrics (/metrics).")
    reconcile_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Periodic look at every object besides the events (a safety net; refused objects: 30 s).",
    )
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

    def check_prometheus_url(self, url: str, field: str) -> None:
        """A Refusal unless the operator may query `url` (the spec field `field`) for canary metrics."""
        if url == self.prometheus_url:
            return
        allowed = Allowlist(self.allowed_prometheus_urls)
        problem = check(url, allowed)
        if problem is not None:
            known = ", ".join([self.prometheus_url, *allowed.entries]) if not allowed.allows_any else "any"
            raise Refusal(
                "PrometheusUrlNotAllowed",
                f"{field}: {url!r} {problem}; this cluster allows Prometheus under: {known} "
                "(set by the cluster admin: ADAPTEROPS_ALLOWED_PROMETHEUS_URLS); omit the field to use the "
                "cluster's Prometheus",
            )

    def check_judge_endpoint(self, url: str, field: str) -> None:
        """A Refusal unless a judge at `url` (the spec field `field`) may be called."""
        allowed = Allowlist(self.allowed_judge_endpoints)
        problem = check(url, allowed)
        if problem is not None:
            raise Refusal(
                "JudgeEndpointNotAllowed",
                f"{field}: {url!r} {problem}; this cluster allows judge endpoints under: {allowed.describe()} "
                "(set by the cluster admin: ADAPTEROPS_ALLOWED_JUDGE_ENDPOINTS)",
            )

    def s3_endpoint_problem(self, url: str) -> str | None:
        """None when the operator may read from the S3 endpoint `url`; otherwise why not, with what is allowed."""
        allowed = Allowlist(self.allowed_s3_endpoints)
        problem = check(url, allowed)
        if problem is None:
            return None
        return (
            f"{url!r} {problem}; this cluster allows S3 endpoints under: {allowed.describe()} "
            "(set by the cluster admin: ADAPTEROPS_ALLOWED_S3_ENDPOINTS; without an endpoint, AWS S3 is used)"
        )

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(n.strip() for n in value.split(",") if n.strip())
        return value

    @field_validator("allowed_prometheus_urls", "allowed_judge_endpoints", "allowed_s3_endpoints", mode="before")
    @classmethod
    def _url_prefixes(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(n.strip() for n in value.split(",") if n.strip())
        return parse_allowlist(tuple(value)) if isinstance(value, tuple | list) else value

    @field_validator("pod_labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        return _json_object(value, "label -> value")

    @field_validator("default_queues", mode="before")
    @classmethod
    def _queues(cls, value: Any) -> Any:
        return _json_object(value, "namespace -> queue name")

    @field_validator("container_users", mode="before")
    @classmethod
    def _users(cls, value: Any) -> Any:
        value = _json_object(value, "image role -> user")
        if not isinstance(value, dict):
            raise ValueError(f"must be a JSON object of image role -> user, got {value!r}")
        users = dict(CONTAINER_USERS)
        for role, given in value.items():
            if role not in CONTAINER_USERS:
                raise ValueError(f"unknown image role {role!r}; the roles are: {', '.join(CONTAINER_USERS)}")
            if isinstance(given, ContainerUser):
                users[role] = given
                continue
            if not isinstance(given, dict):
                raise ValueError(f"{role}: must be an object of runAsUser, runAsGroup, readOnlyRootFilesystem")
            try:  # a role's fields left out keep their defaults
                users[role] = ContainerUser.model_validate({**users[role].model_dump(by_alias=True), **given})
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in (role, *err["loc"]))
                why = "; 0 is root, which the restricted Pod Security profile refuses" if err.get("input") == 0 else ""
                raise ValueError(f"{where}: {err['msg']} (got {err.get('input')!r}{why})") from exc
        return users

    @field_validator("nim_profiles", mode="before")
    @classmethod
    def _profiles(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value or "{}")
            except json.JSONDecodeError as exc:
                raise ValueError(f"must be a JSON object of image prefix -> profile table, got {value!r}") from exc
        if not isinstance(value, dict):
            raise ValueError(f"must be a JSON object of image prefix -> profile table, got {value!r}")
        for image, table in value.items():
            if not isinstance(table, dict):
                raise ValueError(f"{image}: must be an object of <gpuType>/tp<N>/<precision>[/lora] -> profile")
            for key, profile in table.items():
                if not PROFILE_KEY.match(str(key)):
                    raise ValueError(
                        f"{image}: key {key!r} is not <gpuType>/tp<N>/<precision>[/lora] (N 1, 2, 4 or 8; precision "
                        "bf16, fp16, fp8, nvfp4 or mxfp4), e.g. H100/tp1/bf16/lora"
                    )
                if not isinstance(profile, str) or not PROFILE_ID.match(profile):
                    raise ValueError(f"{image}: {key}: {profile!r} is not a profile ID or name")
        return value

    def nim_profile_table(self, image: str) -> tuple[str, dict[str, str]] | None:
        """The profile table of `image` (longest matching prefix) and that prefix, or None."""
        prefixes = [p for p in self.nim_profiles if image.startswith(p)]
        if not prefixes:
            return None
        best = max(prefixes, key=len)
        return best, self.nim_profiles[best]

    @field_validator("trial_scratch_size", "engine_cache_size", "adapters_size")
    @classmethod
    def _quantity(cls, value: str) -> str:
        if not QUANTITY.match(value):
            raise ValueError(f"must be a Kubernetes quantity such as 100Gi or 500Mi, got {value!r}")
        return value

    @model_validator(mode="after")
    def _load_gpu_classes(self) -> Config:
        if not self.gpu_classes:
            object.__setattr__(self, "gpu_classes", load_gpu_classes(self.gpu_classes_file))
        return self

    @model_validator(mode="after")
    def _warn_unknown_profile_gpus(self) -> Config:
        for image, table in self.nim_profiles.items():
            unknown = sorted({k.split("/", 1)[0] for k in table} - set(self.gpu_classes))
            if unknown:  # a removed GPU class leaves its entries unused: not worth refusing to start
                log.warning("ADAPTEROPS_NIM_PROFILES %s: no GPU class %s; those entries are never used", image, unknown)
        return self

    @model_validator(mode="after")
    def _warn_allow_any(self) -> Config:
        for name in ("allowed_prometheus_urls", "allowed_judge_endpoints", "allowed_s3_endpoints"):
            if ANY in getattr(self, name):
                log.warning(
                    "ADAPTEROPS_%s allows any URL: tenants can make AdapterOps call any address it can reach "
                    "(fine on a single-tenant cluster only)",
                    name.upper(),
                )
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
