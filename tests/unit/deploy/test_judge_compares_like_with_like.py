"""The paired judge compares like with like: an adapter only the canary serves is judged against the
adapter it declares it replaces (`adapters[].replaces`) or the base model, never against a name the
stable revision does not serve (a request that must 404 is no evidence)."""

from __future__ import annotations

from typing import Any

import pytest
from deploy_fixtures import KEY, NAMESPACE, World, md_spec

from adapterops.api.modeldeployment import ModelDeploymentSpec
from adapterops.deploy.judging import Comparison, comparison

V1, V2 = "pvc://work/adapters/v1", "pvc://work/adapters/v2"
BASE = "tiny-llama"


def spec_with(adapters: list[dict[str, Any]]) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({**md_spec(), "adapters": adapters})


@pytest.mark.parametrize(
    ("stable", "adapters", "expected"),
    [
        # A new version of an adapter stable serves: the same name on both sides.
        ({"commerce": V1}, [{"name": "commerce", "uri": V2}], Comparison("commerce", "commerce")),
        # A renamed adapter that declares what it replaces: that adapter on stable.
        (
            {"commerce": V1},
            [{"name": "commerce-v2", "uri": V2, "replaces": "commerce"}],
            Comparison("commerce", "commerce-v2"),
        ),
        # A new adapter that declares nothing: the base model on stable.
        (
            {"commerce": V1},
            [{"name": "commerce", "uri": V1}, {"name": "search", "uri": V2}],
            Comparison(BASE, "search"),
        ),
        # Only a removal: an adapter both serve.
        ({"commerce": V1, "search": V2}, [{"name": "search", "uri": V2}], Comparison("search", "search")),
        # No adapters at all: the base model on both.
        ({"commerce": V1}, [], Comparison(BASE, BASE)),
    ],
    ids=["same-name", "replaces", "new-adapter-vs-base", "removal", "base-only"],
)
def test_each_side_is_asked_for_a_model_it_serves(
    stable: dict[str, str], adapters: list[dict[str, Any]], expected: Comparison
) -> None:
    canary = {a["name"]: a["uri"] for a in adapters}
    found = comparison(spec_with(adapters), stable, canary)
    assert found == expected
    assert found.stable_model in {*stable, BASE} and found.canary_model in {*canary, BASE}


def test_a_declared_replacement_the_stable_revision_does_not_serve_is_named_not_asked_for() -> None:
    adapters = [{"name": "commerce-v2", "uri": V2, "replaces": "shop"}]
    found = comparison(spec_with(adapters), {"commerce": V1}, {"commerce-v2": V2})
    assert found.problem is not None
    assert found.problem.startswith("spec.adapters[commerce-v2].replaces: the stable revision serves no adapter 'shop'")
    assert "(it serves: commerce)" in found.problem and f"the base model {BASE}" in found.problem


def judged(world: World, adapters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    world.client.put(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "prompts", "namespace": NAMESPACE},
            "data": {"prompts.jsonl": '{"prompt": "find red shoes"}\n'},
        }
    )
    spec = md_spec()
    if adapters is not None:
        spec["adapters"] = adapters
    spec["canary"]["analysis"]["judge"] = {
        "dataset": "configmap://prompts/prompts.jsonl",
        "judge": {"endpoint": "http://judge.invalid/v1", "model": "judge"},
    }
    return spec


async def canary_with(world: World, adapters: list[dict[str, Any]]) -> None:
    world.create(judged(world))
    first = await world.reconcile()
    world.run_pods(first.stable.revision)
    await world.reconcile()
    world.edit({"adapters": adapters})
    started = await world.reconcile()
    world.run_pods(started.canary.revision)
    await world.reconcile()


async def test_a_renamed_adapter_is_judged_against_the_one_it_replaces(world: World) -> None:
    await canary_with(world, [{"name": "commerce-v2", "uri": V2, "replaces": "commerce"}])
    judge = world.judges[-1]
    assert judge.started and {s[2:] for s in judge.started} == {("commerce", "commerce-v2")}
    assert judge.compared == "commerce-v2 on the canary vs commerce on stable"


async def test_a_new_adapter_without_a_declared_predecessor_is_judged_against_the_base_model(world: World) -> None:
    await canary_with(world, [{"name": "commerce", "uri": V1}, {"name": "search", "uri": V2}])
    judge = world.judges[-1]
    assert judge.started and {s[2:] for s in judge.started} == {("tiny-llama", "search")}


async def test_a_replacement_stable_does_not_serve_holds_the_judge_and_says_which_field(world: World) -> None:
    await canary_with(world, [{"name": "commerce-v2", "uri": V2, "replaces": "shop"}])
    judge = world.judges[-1]
    assert not judge.started  # no request is sent that must 404
    assert judge.problem is not None and "spec.adapters[commerce-v2].replaces" in judge.problem
    warnings = world.events("PairedJudgingNotStarted")
    assert len(warnings) == 1 and warnings[0].type == "Warning" and "'shop'" in warnings[0].message
    assert KEY in world.reconciler.judges.failures  # read again after a while, the spec may be fixed


async def test_dropping_a_replacement_stable_does_not_serve_judges_against_the_base_model_at_once(
    world: World,
) -> None:
    await canary_with(world, [{"name": "commerce-v2", "uri": V2, "replaces": "shop"}])
    world.edit({"adapters": [{"name": "commerce-v2", "uri": V2, "replaces": None}]})
    await world.reconcile()
    judge = world.judges[-1]
    assert judge.problem is None and {s[2:] for s in judge.started} == {("tiny-llama", "commerce-v2")}
