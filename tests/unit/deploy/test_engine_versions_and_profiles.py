"""The engine version and NIM profile a ModelDeployment runs are known before any pod starts: from the
image tag or spec.runtime.engineVersion, and from the operator's profile table; what cannot be known, or
is the table's profile for other hardware, is refused naming the field. The profile is pinned on the pod,
shown in status and part of the revision; each revision's metrics are read with its own version's queries."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from deploy_fixtures import CONFIG, DEPLOYMENT, World, md_spec

from adapterops.analysis.run import THROUGHPUT_MIN_SECONDS, analyse, output_throughput
from adapterops.api.modeldeployment import ModelDeploymentSpec, RevisionStatus
from adapterops.config import DEFAULT_NIM_IMAGE, Config
from adapterops.deploy import builders
from adapterops.engines import EngineVersionProblem, resolve
from testworld.engines import NIM1_IMAGE, NIM2_IMAGE, VLLM_011_IMAGE, nim_profiles

TABLE = nim_profiles()


def spec(**runtime: Any) -> dict[str, Any]:
    doc = md_spec()
    doc["runtime"].update(runtime)
    return doc


def engine_env(world: World) -> dict[str, str]:
    (deployment,) = world.client.of_kind(DEPLOYMENT)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container["env"]}


@pytest.mark.parametrize(
    ("engine", "image", "explicit", "version", "line"),
    [
        ("nim", "nvcr.io/nim/nvidia/llama-3.1-nemotron-nano-8b-v1:1.8", None, "1.8", "nim-1"),
        ("nim", "registry.local:5000/mirror/nim:2.0.6-rtx", None, "2.0.6-rtx", "nim-2"),
        ("vllm", "vllm/vllm-openai:v0.11.0", None, "0.11.0", "vllm"),
        ("vllm", "vllm/vllm-openai:v0.34.0@sha256:" + "0" * 64, None, "0.34.0", "vllm"),
        ("vllm", "vllm/vllm-openai:latest", "0.12.0", "0.12.0", "vllm"),
        ("nim", "nvcr.io/nim/meta/llama-3.1-8b-instruct@sha256:" + "0" * 64, "1.10", "1.10", "nim-1"),
    ],
)
def test_the_version_comes_from_the_field_or_the_image_tag(
    engine: str, image: str, explicit: str | None, version: str, line: str
) -> None:
    found = resolve(engine, image, explicit)
    assert (found.version, found.line) == (version, line)
    assert found.source == ("spec.runtime.engineVersion" if explicit else "image tag")


@pytest.mark.parametrize(
    ("engine", "image", "explicit", "reason", "says"),
    [
        ("vllm", "vllm/vllm-openai:latest", None, "EngineVersionUnknown", "set spec.runtime.engineVersion"),
        ("vllm", "vllm/vllm-openai", None, "EngineVersionUnknown", "'no tag'"),
        ("vllm", "vllm/vllm-openai:v0.10.2", None, "EngineVersionUnsupported", "supported: vllm 0.11 or later"),
        ("nim", "nvcr.io/nim/x:3.0.0", None, "EngineVersionUnsupported", "supported: nim 1.x and 2.x"),
        ("nim", "nvcr.io/nim/x:1.8", "2.0.6", "EngineVersionConflict", "contradicts the image tag '1.8'"),
        ("nim", "nvcr.io/nim/x:latest", "4.0", "EngineVersionUnsupported", "spec.runtime.engineVersion: nim '4.0'"),
    ],
)
def test_an_unknown_or_unsupported_version_is_a_problem_naming_the_field(
    engine: str, image: str, explicit: str | None, reason: str, says: str
) -> None:
    with pytest.raises(EngineVersionProblem) as exc:
        resolve(engine, image, explicit)
    assert exc.value.reason == reason and says in exc.value.message
    assert "spec.runtime." in exc.value.message


async def test_the_table_profile_is_pinned_on_the_pod_and_shown_in_status(world: World) -> None:
    world.create(spec(tensorParallelSize=2))
    first = await world.reconcile()
    assert first.condition("Accepted").status == "True"
    expected = TABLE[DEFAULT_NIM_IMAGE]["H100/tp2/bf16/lora"]
    env = engine_env(world)
    assert env["NIM_MODEL_PROFILE"] == expected
    assert "NIM_TENSOR_PARALLEL_SIZE" not in env  # TP comes with the profile
    assert first.stable.profile == f"{expected} (profile table H100/tp2/bf16/lora)"
    assert first.stable.engine_version == "1.8"


async def test_a_missing_profile_is_refused_before_any_pod_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    only_base = {DEFAULT_NIM_IMAGE: {"H100/tp1/bf16": "a" * 64}}
    world = World(monkeypatch, CONFIG.model_copy(update={"nim_profiles": only_base}))
    try:
        world.create(md_spec())
        refused = await world.reconcile()
        accepted = refused.condition("Accepted")
        assert accepted.status == "False" and accepted.reason == "NimProfileMissing"
        assert accepted.message.startswith(
            f"spec.runtime: no NIM profile known for {DEFAULT_NIM_IMAGE} on H100 with tensorParallelSize 1, "
            "precision bf16 with LoRA adapters (a feat_lora profile) (profile table key H100/tp1/bf16/lora); "
            f"the profile table for '{DEFAULT_NIM_IMAGE}' has H100/tp1/bf16."
        )
        assert "chart value nimProfiles" in accepted.message and "list-model-profiles" in accepted.message
        assert world.client.of_kind(DEPLOYMENT) == []
        assert [(e.reason, e.type) for e in refused.events] == [("NimProfileMissing", "Warning")]
    finally:
        await world.close()


async def test_an_image_without_a_table_is_refused_and_a_spec_pin_is_accepted_unchecked(world: World) -> None:
    world.create(spec(image="nvcr.io/nim/meta/llama-3.1-8b-instruct:1.8"))
    refused = (await world.reconcile()).condition("Accepted")
    assert refused.reason == "NimProfileMissing" and "the profile table has no entry for this image" in refused.message
    pinned = [{"name": "NIM_MODEL_PROFILE", "value": "vllm-bf16-tp1-pp1-lora"}]
    world.edit({"runtime": {"env": pinned}})
    accepted = await world.reconcile()
    assert accepted.condition("Accepted").status == "True"
    assert engine_env(world)["NIM_MODEL_PROFILE"] == "vllm-bf16-tp1-pp1-lora"
    assert accepted.stable.profile == "vllm-bf16-tp1-pp1-lora (spec.runtime.env NIM_MODEL_PROFILE)"


async def test_pinning_the_profile_of_other_hardware_is_refused_naming_the_env_entry(world: World) -> None:
    other = TABLE[DEFAULT_NIM_IMAGE]["H100/tp4/bf16/lora"]
    env = [{"name": "STANDIN_QUALITY", "value": "0.9"}, {"name": "NIM_MODEL_PROFILE", "value": other}]
    world.create(spec(env=env))
    refused = (await world.reconcile()).condition("Accepted")
    assert refused.status == "False" and refused.reason == "NimProfileMismatch"
    assert refused.message.startswith(
        f"spec.runtime.env[1] NIM_MODEL_PROFILE: {other} is the profile for H100/tp4/bf16/lora of {DEFAULT_NIM_IMAGE}"
    )
    assert "this ModelDeployment runs H100/tp1/bf16/lora" in refused.message
    assert world.client.of_kind(DEPLOYMENT) == []


async def test_an_image_tag_without_a_version_needs_the_field(world: World) -> None:
    world.create(spec(engine="vllm", image="vllm/vllm-openai:latest"))
    refused = (await world.reconcile()).condition("Accepted")
    assert refused.reason == "EngineVersionUnknown" and refused.message.startswith("spec.runtime.engineVersion:")
    world.edit({"runtime": {"engineVersion": "0.11.0"}})
    accepted = await world.reconcile()
    assert accepted.condition("Accepted").status == "True" and accepted.stable.engine_version == "0.11.0"
    assert accepted.stable.profile is None  # vLLM has no profiles


async def test_precision_is_for_nim_profiles_only(world: World) -> None:
    world.create(spec(engine="vllm", precision="fp8"))
    refused = (await world.reconcile()).condition("Accepted")
    assert refused.reason == "InvalidSpec" and refused.message.startswith("spec.runtime.precision:")


def test_a_changed_table_entry_is_a_new_revision_and_vllm_revisions_are_unchanged() -> None:
    md = ModelDeploymentSpec.model_validate(md_spec())
    adapters = {"commerce": "pvc://work/adapters/v1"}
    before = builders.revision_of(md, adapters, CONFIG)
    table = copy.deepcopy(CONFIG.nim_profiles)
    table[DEFAULT_NIM_IMAGE]["H100/tp1/bf16/lora"] = "b" * 64
    assert builders.revision_of(md, adapters, CONFIG.model_copy(update={"nim_profiles": table})) != before
    vllm = ModelDeploymentSpec.model_validate(spec(engine="vllm"))
    assert builders.revision_of(vllm, adapters, CONFIG) == builders.revision_of(
        vllm, adapters, CONFIG.model_copy(update={"nim_profiles": table})
    )


def test_the_profile_table_setting_refuses_malformed_keys_and_values() -> None:
    table = '{"nvcr.io/nim/a:1": {"H100/tp2/fp8": "x"}}'
    ok = Config.from_env({"ADAPTEROPS_GPU_CLASSES_FILE": "/dev/null", "ADAPTEROPS_NIM_PROFILES": table})
    assert ok.nim_profiles == {"nvcr.io/nim/a:1": {"H100/tp2/fp8": "x"}}
    assert ok.nim_profile_table("nvcr.io/nim/a:1.8") == ("nvcr.io/nim/a:1", {"H100/tp2/fp8": "x"})
    for raw, says in (
        ('{"img": {"H100/tp3/bf16": "x"}}', "key 'H100/tp3/bf16' is not <gpuType>/tp<N>/<precision>[/lora]"),
        ('{"img": {"H100/tp1/bf16/lora": "a b"}}', "'a b' is not a profile ID or name"),
        ('{"img": ["x"]}', "img: must be an object"),
        ("not json", "must be a JSON object of image prefix -> profile table"),
    ):
        with pytest.raises(ValueError, match="ADAPTEROPS_NIM_PROFILES") as exc:
            Config.from_env({"ADAPTEROPS_GPU_CLASSES_FILE": "/dev/null", "ADAPTEROPS_NIM_PROFILES": raw})
        assert says in str(exc.value)


def revision(revision: str, image: str, engine: str = "nim", version: str | None = None) -> RevisionStatus:
    return RevisionStatus(
        revision=revision, engine=engine, image=image, engine_version=version, tensor_parallel_size=1, gpu_type="H100"
    )


def prometheus(answers: dict[str, str]) -> tuple[httpx.AsyncClient, list[str]]:
    """A Prometheus that answers a query by the first metric name it contains; records every query."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        seen.append(query)
        value = next((v for name, v in answers.items() if name in query), None)
        result = [] if value is None else [{"metric": {}, "value": [0, value]}]
        if value is not None and "_bucket" in query:
            result = [{"metric": {"le": le}, "value": [0, value]} for le in ("1.0", "+Inf")]
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": result}})

    return httpx.AsyncClient(transport=httpx.MockTransport(answer)), seen


async def test_each_revision_is_read_with_its_own_versions_series_and_nim_1_errors_are_engine_failures() -> None:
    md = ModelDeploymentSpec.model_validate(md_spec())
    http, seen = prometheus({") + sum(": "100", "request_failure_total{": "2", "http_requests": "50"})
    stable, canary = revision("s1", NIM2_IMAGE), revision("c1", NIM1_IMAGE, version="1.8")
    async with http:
        verdicts = await analyse(http, md, "http://prom", "ml", stable, canary, 60, None)
    stable_queries = [q for q in seen if 'adapterops_io_revision="s1"' in q]
    canary_queries = [q for q in seen if 'adapterops_io_revision="c1"' in q]
    assert all("vllm:e2e_request_latency_seconds_bucket" in q or "http_requests_total" in q for q in stable_queries)
    assert not any("http_requests_total" in q for q in canary_queries)
    assert any(q.startswith("sum by (le) (increase(e2e_request_latency_seconds_bucket{") for q in canary_queries)
    error = next(v for v in verdicts if v.name == "errorRate")
    assert error.canary_value == pytest.approx(0.02) and error.samples == 100
    assert "engine failures" in error.threshold and "no HTTP status counter" in error.threshold


async def test_an_engine_without_the_error_series_says_which_series_is_missing() -> None:
    md = ModelDeploymentSpec.model_validate(md_spec())
    http, _ = prometheus({})
    async with http:
        verdicts = await analyse(
            http, md, "http://prom", "ml", revision("s1", VLLM_011_IMAGE, "vllm"), revision("c1", NIM2_IMAGE), 60, None
        )
    error = next(v for v in verdicts if v.name == "errorRate")
    assert error.verdict == "Inconclusive"
    assert "Prometheus has no http_requests_total (vLLM's, assumed on NIM 2.x) of the canary revision c1" in (
        error.message
    )


async def test_a_revision_whose_version_is_unknown_is_inconclusive_saying_so() -> None:
    md = ModelDeploymentSpec.model_validate(md_spec())
    http, _ = prometheus({})
    async with http:
        verdicts = await analyse(
            http, md, "http://prom", "ml", revision("s1", "nvcr.io/nim/x:latest"), revision("c1", NIM1_IMAGE), 60, None
        )
    assert all(v.verdict == "Inconclusive" for v in verdicts)
    assert "the stable revision s1 runs nim nvcr.io/nim/x:latest, whose metrics this operator does not know" in (
        verdicts[0].message
    )


async def test_each_sides_output_throughput_is_read_from_its_own_versions_token_counter() -> None:
    md = ModelDeploymentSpec.model_validate(md_spec())
    http, seen = prometheus({"vllm:generation_tokens_total": "6000"})
    stable, canary = revision("s1", NIM1_IMAGE, version="1.8"), revision("c1", NIM2_IMAGE)
    sides = SimpleNamespace(namespace="ml", stable=stable, canary=canary)
    async with http:
        tps = await output_throughput(http, md, "http://prom", sides, 60)
    # NIM 1.x names the counter without vLLM's prefix: this fake Prometheus has none of it, so no figure.
    assert tps == {("stable", "s1"): None, ("canary", "c1"): 100.0}
    assert seen == [
        'sum(increase(generation_tokens_total{namespace="ml",adapterops_io_revision="s1"}[60s]))',
        'sum(increase(vllm:generation_tokens_total{namespace="ml",adapterops_io_revision="c1"}[60s]))',
    ]
    # A step younger than THROUGHPUT_MIN_SECONDS is not read: its rate would be the switch-over's.
    http, asked = prometheus({"vllm:generation_tokens_total": "6000"})
    async with http:
        young = await output_throughput(http, md, "http://prom", sides, THROUGHPUT_MIN_SECONDS - 1)
    assert young == {("stable", "s1"): None, ("canary", "c1"): None} and asked == []
