"""What a ModelDeployment's engine is, known before any pod starts: its version (which metrics the canary
reads) and, for NIM, the model profile it must run (NIM_MODEL_PROFILE), from the spec and the operator's
profile table (Config.nim_profiles). A spec whose version or profile cannot be known, or whose pinned
profile is the table's entry for other hardware, is refused naming the field: NIM would otherwise find out
at start-up ("Could not match a profile in manifest") or run a profile that ignores the adapters.

Why pinned: NIM picks a profile by itself from the GPUs it sees, and a LoRA-capable (`feat_lora`) profile
only when told; the operator knows the GPU type, TP, precision and whether adapters are served, so it
names the profile, and the table says which one that is for each image (docs/engines.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from adapterops.api.modeldeployment import ModelDeploymentSpec
from adapterops.config import Config
from adapterops.engines import EngineVersion, EngineVersionProblem, resolve
from adapterops.runtime.acceptance import Refusal

PROFILE_ENV = "NIM_MODEL_PROFILE"
DEFAULT_PRECISION = "bf16"


@dataclass(frozen=True)
class Profile:
    value: str  # NIM_MODEL_PROFILE: an ID (or a name) of the image's manifest
    key: str  # the table key it answers: H100/tp1/bf16/lora
    source: Literal["table", "spec"]  # the operator's table, or the spec's own runtime.env (unchecked)

    def describe(self) -> str:
        where = f"profile table {self.key}" if self.source == "table" else f"spec.runtime.env {PROFILE_ENV}"
        return f"{self.value} ({where})"


def image_of(spec: ModelDeploymentSpec, config: Config) -> str:
    return spec.runtime.image or (config.nim_image if spec.runtime.engine == "nim" else config.vllm_image)


def profile_key(spec: ModelDeploymentSpec) -> str:
    r = spec.runtime
    lora = "/lora" if spec.adapters else ""
    return f"{r.gpu_type}/tp{r.tensor_parallel_size}/{r.precision or DEFAULT_PRECISION}{lora}"


def version_of(spec: ModelDeploymentSpec, config: Config) -> EngineVersion:
    """The engine version, or a Refusal naming spec.runtime.engineVersion or spec.runtime.image."""
    try:
        return resolve(spec.runtime.engine, image_of(spec, config), spec.runtime.engine_version)
    except EngineVersionProblem as exc:
        raise Refusal(exc.reason, exc.message) from exc


def nim_profile(spec: ModelDeploymentSpec, config: Config) -> Profile | None:
    """The NIM profile this spec runs (None for vLLM), or a Refusal naming the field that is wrong."""
    r = spec.runtime
    if r.engine != "nim":
        if r.precision is not None:
            raise Refusal(
                "InvalidSpec",
                "spec.runtime.precision: picks a NIM profile; for vLLM set --dtype or --quantization in "
                "spec.runtime.args",
            )
        return None
    image, key = image_of(spec, config), profile_key(spec)
    found = config.nim_profile_table(image)
    prefix, table = found if found else (None, {})
    pinned = next(((i, e) for i, e in enumerate(r.env) if e.name == PROFILE_ENV), None)
    if pinned is not None:
        index, env = pinned
        if env.value is None:  # from a Secret: the operator cannot read it, NIM checks it at start-up
            return Profile("(from a Secret)", key, "spec")
        expected = table.get(key)
        other = sorted(k for k, v in table.items() if v == env.value and k != key)
        if expected != env.value and other:
            raise Refusal(
                "NimProfileMismatch",
                f"spec.runtime.env[{index}] {PROFILE_ENV}: {env.value} is the profile for {', '.join(other)} of "
                f"{image} (profile table {prefix!r}), but this ModelDeployment runs {key} (spec.runtime.gpuType, "
                f"tensorParallelSize, precision{', adapters' if spec.adapters else ''}); remove the variable to run "
                f"{expected or 'the table entry (none yet)'}, or change the runtime to match",
            )
        return Profile(env.value, key, "table" if expected == env.value else "spec")
    if key in table:
        return Profile(table[key], key, "table")
    if prefix is not None:
        what = f"the profile table for {prefix!r} has {', '.join(sorted(table)) or 'no entries'}"
    else:
        known = ", ".join(sorted(config.nim_profiles)) or "none"
        what = f"the profile table has no entry for this image (it has: {known})"
    lora = " with LoRA adapters (a feat_lora profile)" if spec.adapters else ""
    raise Refusal(
        "NimProfileMissing",
        f"spec.runtime: no NIM profile known for {image} on {r.gpu_type} with tensorParallelSize "
        f"{r.tensor_parallel_size}, precision {r.precision or DEFAULT_PRECISION}{lora} (profile table key {key}); "
        f"{what}. The cluster admin adds it (chart value nimProfiles; the ID from `list-model-profiles` of the "
        f"image), or pin one with spec.runtime.env {PROFILE_ENV}",
    )


def profile_or_none(spec: ModelDeploymentSpec, config: Config) -> Profile | None:
    """The profile for builders and status: an accepted spec has one; anything else gets none."""
    try:
        return nim_profile(spec, config)
    except Refusal:
        return None


def version_or_none(spec: ModelDeploymentSpec, config: Config) -> EngineVersion | None:
    try:
        return version_of(spec, config)
    except Refusal:
        return None
