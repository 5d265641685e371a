"""`runtime.fromProfile`: a ModelDeployment serves on the configuration a ServingProfile of its own namespace
chose; before the profile has chosen (or when no candidate met its SLO) nothing new is served and
ProfileResolved says why; a new choice is a new revision, rolled out through the usual canary."""

from __future__ import annotations

from typing import Any

import pytest
from deploy_fixtures import CONFIG, DEPLOYMENT, NAMESPACE, World, kind_name, md_spec

from adapterops.api.kinds import SERVINGPROFILE
from adapterops.config import GpuClass

PROFILE = kind_name(SERVINGPROFILE)
WITH_B200 = CONFIG.model_copy(
    update={
        "gpu_classes": {
            **CONFIG.gpu_classes,
            "B200": GpuClass.model_validate(
                {"nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-B200"}, "pricePerHour": 7.8, "memoryGiB": 180}
            ),
        }
    }
)


@pytest.fixture
async def world(monkeypatch: pytest.MonkeyPatch) -> Any:
    w = World(monkeypatch, WITH_B200)
    yield w
    await w.close()


def spec() -> dict[str, Any]:
    doc = md_spec()
    doc["runtime"]["fromProfile"] = "tp-gpu"
    return doc


def profile(world: World, state: str, choice: tuple[int, str] | None = None, namespace: str = NAMESPACE) -> None:
    status: dict[str, Any] = {"state": state, "progress": "2/4"}
    if state == "Failed":
        status["conditions"] = [
            {
                "type": "Succeeded",
                "status": "False",
                "reason": "NoCandidateMeetsSLO",
                "message": "nim-tp1-h100: misses the SLO: p95 2.4s > 2s",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ]
    if choice is not None:
        tp, gpu = choice
        status["choice"] = {
            "candidate": f"nim-tp{tp}-{gpu.lower()}",
            "engine": "nim",
            "tensorParallelSize": tp,
            "gpuType": gpu,
            "costPerHour": 7.8 * tp,
            "reason": "cheapest meeting the SLO",
        }
    body = world.client.get_object(PROFILE, "tp-gpu", namespace) or {
        "apiVersion": SERVINGPROFILE.api_version,
        "kind": "ServingProfile",
        "metadata": {"name": "tp-gpu", "namespace": namespace},
        "spec": {},
    }
    world.client.put({**body, "status": status})


def placement(world: World) -> list[tuple[str, str]]:
    out = []
    for d in world.client.of_kind(DEPLOYMENT):
        pod = d["spec"]["template"]["spec"]
        out.append(
            (
                pod["nodeSelector"]["nvidia.com/gpu.product"],
                pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"],
            )
        )
    return sorted(out)


async def test_nothing_is_served_before_the_profile_has_chosen_and_the_condition_says_why(world: World) -> None:
    world.create(spec())
    done = await world.reconcile()
    assert done.condition("ProfileResolved").reason == "ProfileNotFound"
    assert done.condition("Ready").reason == "WaitingForProfile"
    assert "spec.runtime.fromProfile: ServingProfile 'tp-gpu' does not exist" in done.condition("Ready").message
    assert world.client.of_kind(DEPLOYMENT) == []
    profile(world, "Running")
    done = await world.reconcile()
    assert done.condition("ProfileResolved").reason == "ProfileNotFinished"
    assert "has not chosen yet (Running, 2/4 candidates measured)" in done.condition("ProfileResolved").message
    assert world.client.of_kind(DEPLOYMENT) == []


async def test_a_profile_in_another_namespace_is_never_used(world: World) -> None:
    profile(world, "Succeeded", (2, "B200"), namespace="other-team")
    world.create(spec())
    done = await world.reconcile()
    assert done.condition("ProfileResolved").reason == "ProfileNotFound" and world.client.of_kind(DEPLOYMENT) == []


async def test_the_choice_is_served_and_a_new_choice_is_canaried(world: World) -> None:
    profile(world, "Succeeded", (2, "B200"))
    world.create(spec())
    first = await world.reconcile()
    assert first.condition("ProfileResolved").reason == "ProfileChosen"
    assert (first.stable.tensor_parallel_size, first.stable.gpu_type) == (2, "B200")
    assert placement(world) == [("NVIDIA-B200", "2")]
    world.run_pods(first.stable.revision)
    await world.reconcile()
    # The profile is run again and chooses H100 at TP 1: a new revision, canaried against the B200 one.
    profile(world, "Succeeded", (1, "H100"))
    again = await world.reconcile()
    assert again.status.canary is not None and again.canary.revision != first.stable.revision
    assert (again.canary.tensor_parallel_size, again.canary.gpu_type) == (1, "H100")
    assert again.stable.revision == first.stable.revision
    assert sorted(placement(world)) == [("NVIDIA-B200", "2"), ("NVIDIA-H100-80GB-HBM3", "1")]


async def test_a_profile_without_a_candidate_meeting_its_slo_leaves_the_stable_revision_serving(world: World) -> None:
    profile(world, "Succeeded", (1, "H100"))
    world.create(spec())
    first = await world.reconcile()
    world.run_pods(first.stable.revision)
    profile(world, "Failed")
    done = await world.reconcile()
    resolved = done.condition("ProfileResolved")
    assert resolved.status == "False" and resolved.reason == "NoCandidateMeetsSLO"
    assert "p95 2.4s > 2s" in resolved.message
    assert done.stable.revision == first.stable.revision and done.status.canary is None
    assert placement(world) == [("NVIDIA-H100-80GB-HBM3", "1")]
