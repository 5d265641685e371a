"""The in-place adapter canary (`canary.adapterRollout: InPlace`), reconcile by reconcile, against the in-memory
API (deploy_fixtures): the base revision's pods load the canary's adapters on c of R replicas (no new
Deployment, no new pods), promotion asks every pod for them, rollback restores the stable ones, a restarted
operator keeps the canary on the same pods, and an agent's failure is a condition and a Warning Event. The
agents are FakeAgents (they load what their pod's annotation asks for by the next look); the statistics are
scripted."""

from __future__ import annotations

import json
from typing import Any

import pytest
from deploy_fixtures import DEPLOYMENT, POD, Reconciled, World, md_spec

from adapterops.analysis.providers.prometheus import QUERIES, PrometheusError, render, revision_selector
from adapterops.deploy import builders
from adapterops.deploy.inplace import versions

V1, V2, V3 = (f"pvc://work/adapters/{v}" for v in ("v1", "v2", "v3"))
ABORT = "adapterops.io/abort"


def in_place_spec(replicas: int = 4, steps: tuple[int, ...] = (25, 50, 100), **runtime: Any) -> dict[str, Any]:
    spec = md_spec(V1, steps=steps, replicas=replicas)
    spec["runtime"] = {"engine": "vllm", "gpuType": "H100", "replicas": replicas, **runtime}
    spec["canary"]["adapterRollout"] = "InPlace"
    return spec


def pods(world: World) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in world.client.of_kind(POD)}


def asked(world: World) -> dict[str, dict[str, str] | None]:
    """pod -> the adapters its annotation asks for."""
    out: dict[str, dict[str, str] | None] = {}
    for name, pod in pods(world).items():
        value = (pod["metadata"].get("annotations") or {}).get(builders.ANNOTATION_ADAPTERS)
        out[name] = json.loads(value) if value is not None else None
    return out


async def serving_in_place(world: World, spec: dict[str, Any] | None = None) -> Reconciled:
    world.create(spec or in_place_spec())
    first = await world.reconcile()
    world.run_pods(first.stable.base or "")
    await world.reconcile()  # the pods are asked for the stable adapters
    ready = await world.reconcile()  # and have loaded them
    assert ready.condition("Ready").status == "True", ready.status.conditions
    return ready


async def start(world: World, adapter: str = V2) -> Reconciled:
    world.edit({"adapters": [{"name": "commerce", "uri": adapter}]})
    await world.reconcile()  # the canary's pods are asked for the new adapter
    return await world.reconcile()  # they have loaded it: the step begins


async def test_the_first_in_place_revision_is_one_deployment_whose_pods_load_the_adapters_they_are_asked_for(
    world: World,
) -> None:
    world.create(in_place_spec())
    first = await world.reconcile()
    base = first.stable.base
    assert base is not None and world.deployments() == {base: 4}
    template = world.client.get_object(DEPLOYMENT, builders.revision_name("agent", base))
    assert template is not None
    pod_spec = template["spec"]["template"]["spec"]
    engine, agent = pod_spec["containers"]
    assert agent["name"] == builders.AGENT and pod_spec["initContainers"] == []
    assert "--lora-modules" not in engine["args"]  # the agent loads them, at run time
    assert {"name": builders.VLLM_RUNTIME_LORA, "value": "True"} in engine["env"]
    assert agent["readinessProbe"]["httpGet"]["path"] == "/ready"  # Ready means "loaded on this pod"
    wanted = next(v for v in pod_spec["volumes"] if v["name"] == "wanted")
    assert builders.ANNOTATION_ADAPTERS in wanted["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"]

    world.run_pods(base)
    asking = await world.reconcile()
    assert all(v == {"commerce": V1} for v in asked(world).values())
    assert asking.condition("Ready").status == "False" and asking.condition("Ready").reason == "LoadingAdapters"
    assert asking.condition("Degraded").status == "False"
    loaded = await world.reconcile()
    assert loaded.condition("Ready").status == "True" and loaded.condition("AdaptersLoaded").status == "True"
    assert [(r.pod, r.revision, r.ready) for r in loaded.status.replicas] == [
        (f"agent-{base}-{i}", loaded.stable.revision, True) for i in range(4)
    ]
    assert loaded.status.replicas[0].loaded == versions({"commerce": V1})


async def test_a_new_adapter_is_canaried_on_c_of_r_pods_without_new_pods(world: World) -> None:
    before = await serving_in_place(world)
    base, stable = before.stable.base, before.stable.revision
    uids = {n: p["metadata"]["uid"] for n, p in pods(world).items()}

    world.edit({"adapters": [{"name": "commerce", "uri": V2}]})
    started = await world.reconcile()
    canary = started.canary.revision
    assert canary != stable and started.canary.base == base and started.reasons() == ["CanaryStarted"]
    assert world.deployments() == {base: 4}  # no new Deployment, no new pods
    assert {n: p["metadata"]["uid"] for n, p in pods(world).items()} == uids
    wanted = asked(world)
    assert sorted(n for n, a in wanted.items() if a == {"commerce": V2}) == [f"agent-{base}-0"]  # 25% of 4: one
    assert started.canary.weight == 0 and started.condition("Progressing").reason == "CanaryNotReady"

    live = await world.reconcile()
    assert live.canary.weight == 25 and live.stable.weight == 75
    assert live.canary.pods == [f"agent-{base}-0"] and len(live.stable.pods) == 3
    assert (live.canary.replicas, live.stable.replicas) == (1, 3)
    call = world.analysis.calls[-1]
    assert (call.canary.revision, call.canary.pods) == (canary, [f"agent-{base}-0"])  # the metrics select its pod
    assert call.stable.revision == stable and len(call.stable.pods) == 3
    # No extra GPU: the canary's GPUs are the stable revision's.
    cost = live.status.estimated_monthly_cost
    assert cost is not None and cost.canary is not None and cost.stable is not None
    assert cost.canary.gpus + cost.stable.gpus == 4
    by_pod = {r.pod: r for r in live.status.replicas}
    assert by_pod[f"agent-{base}-0"].revision == canary and by_pod[f"agent-{base}-1"].revision == stable


async def test_passing_the_steps_below_100_promotes_and_every_pod_loads_the_new_adapter(world: World) -> None:
    before = await serving_in_place(world)
    base = before.stable.base
    live = await start(world)
    canary = live.canary.revision
    world.analysis.script(latency="Pass", errorRate="Pass")
    advanced = await world.reconcile()
    assert advanced.analysis.step == 1 and advanced.reasons() == ["CanaryStepPassed"]
    assert sum(a == {"commerce": V2} for a in asked(world).values()) == 2  # 50% of 4, asked at once
    promoted = None
    for _ in range(3):
        look = await world.reconcile()
        if look.status.canary is None:
            promoted = look
            break
    assert promoted is not None and promoted.stable.revision == canary and "Promoted" in promoted.reasons()
    # The 100% step: every pod, a quarter of them (here one) at a time, each out of the Service while it swaps.
    assert sum(a == {"commerce": V2} for a in asked(world).values()) == 3
    assert promoted.condition("Degraded").status == "False"  # loading adapters is no lost replica
    for _ in range(3):
        if all(a == {"commerce": V2} for a in asked(world).values()):
            break
        await world.reconcile()
    assert all(a == {"commerce": V2} for a in asked(world).values())
    settled = await world.reconcile()
    assert settled.condition("Ready").status == "True" and settled.stable.ready_replicas == 4
    assert {r.revision for r in settled.status.replicas} == {canary}
    assert world.deployments() == {base: 4}
    assert [h.outcome for h in settled.status.history][:2] == ["Promoted", "Initial"]


async def test_a_failed_in_place_canary_rolls_back_to_the_stable_adapter_on_its_pods(world: World) -> None:
    before = await serving_in_place(world)
    stable = before.stable.revision
    live = await start(world)
    bad = live.canary.revision
    world.analysis.script(latency="Fail")
    failed = await world.reconcile()
    assert failed.status.canary is None and failed.condition("RolledBack").status == "True"
    assert all(a == {"commerce": V1} for a in asked(world).values())
    restored = await world.reconcile()
    assert {r.revision for r in restored.status.replicas} == {stable}
    assert restored.condition("Ready").status == "True" and restored.status.canary is None
    world.analysis.calls.clear()
    again = await world.reconcile()  # not retried until the spec changes
    assert again.status.canary is None and world.analysis.calls == [] and again.events == []
    assert bad in {h.revision for h in again.status.history if h.outcome == "RolledBack"}


async def test_the_abort_annotation_restores_the_stable_adapter_on_every_canary_pod_at_once(world: World) -> None:
    await serving_in_place(world, in_place_spec(replicas=4, steps=(50, 100)))
    live = await start(world)
    assert len(live.canary.pods) == 2
    world.annotate({ABORT: live.canary.revision})
    aborted = await world.reconcile()
    assert aborted.status.canary is None and aborted.reasons() == ["RolledBack"]
    assert all(a == {"commerce": V1} for a in asked(world).values())  # both, not a quarter at a time


async def test_a_restarted_operator_keeps_the_canary_on_the_same_pods(world: World) -> None:
    before = await serving_in_place(world)
    base = before.stable.base
    live = await start(world)
    world.analysis.script(latency="Pass", errorRate="Pass")
    advanced = await world.reconcile()
    assert advanced.analysis.step == 1
    world.analysis.script()
    canary_pods = sorted(n for n, a in asked(world).items() if a == {"commerce": V2})
    await world.restart()
    resumed = await world.reconcile()
    assert resumed.canary.revision == live.canary.revision and resumed.analysis.step == 1
    assert "CanaryStarted" not in resumed.reasons()
    assert sorted(n for n, a in asked(world).items() if a == {"commerce": V2}) == canary_pods
    assert world.deployments() == {base: 4}


async def test_an_agent_that_cannot_load_the_canary_adapter_is_a_condition_and_a_warning(world: World) -> None:
    before = await serving_in_place(world)
    base = before.stable.base
    pod = f"agent-{base}-0"
    error = "/v1/load_lora_adapter commerce: HTTP 400 LoRA rank 64 is greater than max_lora_rank 32."
    world.agents.fail(pod, error)
    world.edit({"adapters": [{"name": "commerce", "uri": V2}]})
    await world.reconcile()
    failing = await world.reconcile()
    loaded = failing.condition("AdaptersLoaded")
    assert (loaded.status, loaded.reason) == ("False", "AdapterLoadFailed") and pod in loaded.message
    assert error in loaded.message
    assert failing.canary.weight == 0 and failing.condition("Progressing").reason == "CanaryNotReady"
    assert [(e.reason, e.type) for e in world.events("AdapterLoadFailed")] == [("AdapterLoadFailed", "Warning")]
    by_pod = {r.pod: r for r in failing.status.replicas}
    assert by_pod[pod].message == error and by_pod[pod].revision == before.stable.revision  # the old one stays
    again = await world.reconcile()
    assert again.events == []  # announced once
    world.agents.release()
    recovered = await world.reconcile()
    assert recovered.canary.weight == 25 and recovered.condition("AdaptersLoaded").status == "True"


async def test_a_change_of_the_image_in_place_mode_is_a_revision_canary_with_new_pods(world: World) -> None:
    before = await serving_in_place(world)
    old_base = before.stable.base
    world.edit({"runtime": {"args": ["--max-num-seqs", "128"]}})
    started = await world.reconcile()
    new_base = started.canary.base
    assert new_base is not None and new_base != old_base and set(world.deployments()) == {old_base, new_base}
    world.run_pods(new_base)
    await world.reconcile()  # its pods are asked for the adapters
    assert all(a == {"commerce": V1} for a in asked(world).values())
    world.analysis.script(latency="Pass", errorRate="Pass")
    for _ in range(6):  # 50% then 100% (the revision canary's own steps, new pods), then promoted
        look = await world.reconcile()
        world.run_pods(new_base)
        if look.status.canary is None:
            break
    assert look.stable.base == new_base and look.stable.revision == started.canary.revision
    settled = await world.reconcile()
    assert world.deployments() == {new_base: 4} and settled.condition("Ready").status == "True"
    # The next adapter change is in place again, on the new base's pods.
    world.edit({"adapters": [{"name": "commerce", "uri": V2}]})
    in_place = await world.reconcile()
    assert in_place.canary.base == new_base and world.deployments() == {new_base: 4}


async def test_switching_a_revision_deployment_to_in_place_is_a_revision_canary(world: World) -> None:
    spec = in_place_spec()
    spec["canary"]["adapterRollout"] = "Revision"
    world.create(spec)
    first = await world.reconcile()
    world.run_pods(first.stable.revision)
    await world.reconcile()
    world.edit({"canary": {"adapterRollout": "InPlace"}})
    switched = await world.reconcile()
    base = switched.canary.base
    assert base is not None and set(world.deployments()) == {first.stable.revision, base}
    assert switched.stable.base is None  # the old pods: a revision of their own


async def test_in_place_is_refused_for_nim_naming_the_field_the_value_and_what_is_accepted(world: World) -> None:
    spec = in_place_spec()
    spec["runtime"]["engine"] = "nim"
    world.create(spec)
    refused = await world.reconcile()
    accepted = refused.condition("Accepted")
    assert (accepted.status, accepted.reason) == ("False", "InPlaceNotSupported")
    assert "spec.canary.adapterRollout" in accepted.message and "'nim'" in accepted.message
    assert "accepted for nim: Revision" in accepted.message
    assert world.deployments() == {}


async def test_in_place_needs_two_replicas_and_a_step_below_100(world: World) -> None:
    world.create(in_place_spec(replicas=1))
    one = await world.reconcile()
    assert (
        one.condition("Accepted").reason == "InPlaceNotSupported"
        and "replicas is 1" in one.condition("Accepted").message
    )
    world.edit({"runtime": {"replicas": 2}, "canary": {"steps": [100]}})
    only_100 = await world.reconcile()
    assert "at least one step below 100" in only_100.condition("Accepted").message


def test_each_side_of_an_in_place_canary_is_read_from_its_own_pods() -> None:
    q = QUERIES["vllm"]
    both = render(q.latency, "ml", revision_selector("1ac4a5b176", ["agent-1ac4a5b176-x2", "agent-1ac4a5b176-a1"]), 30)
    assert 'namespace="ml",adapterops_io_revision="1ac4a5b176",pod=~"agent-1ac4a5b176-a1|agent-1ac4a5b176-x2"' in both
    # A revision of its own (no pods named): its Deployment's series, as before.
    errors = render(q.errors, "ml", revision_selector("1ac4a5b176"), 30)
    assert 'adapterops_io_revision="1ac4a5b176",handler' in errors and "pod=" not in errors
    with pytest.raises(PrometheusError):  # never a name that could break out of the matcher
        revision_selector("1ac4a5b176", ['x",namespace=~".*'])
