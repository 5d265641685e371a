"""The ModelDeployment state machine, reconcile by reconcile, against an in-memory API (deploy_fixtures):
first revision, canary steps, hold, promotion, rollback, annotations, pause, champions, restarts,
refusals and races. The statistics are scripted: these tests drive the decisions, not the tests."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from deploy_fixtures import (
    CONFIG,
    CONFIGMAP,
    DEPLOYMENT,
    EVENT,
    KEY,
    MD,
    NAME,
    NAMESPACE,
    ROUTE,
    SERVICE,
    World,
    md_spec,
)
from lightkube.core.exceptions import ApiError
from prometheus_client import REGISTRY

from adapterops.analysis.verdict import Verdict
from adapterops.runtime.acceptance import REFUSED_RETRY_SECONDS
from adapterops.runtime.failures import Reported

V1, V2, V3 = (f"pvc://work/adapters/{v}" for v in ("v1", "v2", "v3"))
ABORT, PROMOTE = "adapterops.io/abort", "adapterops.io/promote"


async def serving(world: World, spec: dict[str, Any] | None = None) -> str:
    """A ModelDeployment whose first revision is Ready; its revision."""
    world.create(spec or md_spec())
    first = await world.reconcile()
    world.run_pods(first.stable.revision)
    ready = await world.reconcile()
    assert ready.condition("Ready").status == "True"
    return first.stable.revision


async def start_canary(world: World, adapter: str = V2, ready: bool = True) -> str:
    """Change the adapter; with `ready`, the canary's pods come up and it takes its first step's traffic."""
    world.edit({"adapters": [{"name": "commerce", "uri": adapter}]})
    started = await world.reconcile()
    canary = started.canary.revision
    if ready:
        world.run_pods(canary)
        live = await world.reconcile()
        assert live.canary.weight > 0
    return canary


def counted(metric: str) -> float:
    """adapterops_{metric}_total of this ModelDeployment (the registry is process-wide: compare deltas)."""
    labels = {"namespace": NAMESPACE, "modeldeployment": NAME}
    return REGISTRY.get_sample_value(f"adapterops_{metric}_total", labels) or 0.0


# ---------------------------------------------------------------------------------------------- serving


async def test_the_first_revision_is_applied_and_ready_once_its_pods_are(world: World) -> None:
    world.create(md_spec())
    first = await world.reconcile()
    revision = first.stable.revision
    applied = {(c.kind, c.name) for c in first.calls if c.verb == "apply"}
    assert applied == {(SERVICE, NAME), (DEPLOYMENT, f"{NAME}-{revision}"), (SERVICE, f"{NAME}-{revision}")}
    assert world.deployments() == {revision: 2}
    assert first.condition("Ready").status == "False" and first.condition("Ready").reason == "StableNotReady"
    assert [(h.revision, h.outcome) for h in first.status.history] == [(revision, "Initial")]
    assert first.stable.adapters == {"commerce": V1} and first.stable.weight == 100
    assert first.reasons() == ["Accepted", "RevisionCreated"]
    # Not ready yet: the pods' readiness comes as an informer event, no polling needed.
    assert first.result == CONFIG.reconcile_seconds and world.queue_subscribed_to_pods()

    world.run_pods(revision, ready=1)
    half = await world.reconcile()
    assert half.condition("Ready").status == "False" and half.stable.ready_replicas == 1

    world.run_pods(revision)
    ready = await world.reconcile()
    assert ready.condition("Ready").status == "True" and ready.condition("Ready").reason == "Serving"
    assert ready.stable.ready_replicas == 2 and ready.status.canary is None
    assert [h.outcome for h in ready.status.history] == ["Initial"]
    assert ready.events == [] and ready.result == CONFIG.reconcile_seconds
    assert len(world.events("RevisionCreated")) == 1


# ---------------------------------------------------------------------------------------------- canary steps


async def test_a_new_revision_starts_a_canary_at_the_first_step_without_traffic_until_it_is_ready(
    world: World,
) -> None:
    # Replica mode, 3 stable replicas, first step 25%: one canary replica next to three is 25%.
    stable = await serving(world, md_spec(steps=(25, 100), replicas=3))
    world.edit({"adapters": [{"name": "commerce", "uri": V2}]})
    started = await world.reconcile()
    canary = started.canary.revision
    assert canary != stable and started.stable.revision == stable
    assert started.analysis.step == 0 and started.analysis.step_started_at is None
    assert started.canary.weight == 0 and started.status.canary_weight == 0 and started.stable.weight == 100
    assert started.condition("Progressing").reason == "CanaryNotReady"
    assert world.deployments() == {stable: 3, canary: 1}
    assert started.reasons() == ["CanaryStarted"]

    again = await world.reconcile()  # still not ready: nothing moves, the canary is not started twice
    assert again.canary.weight == 0 and again.events == [] and world.analysis.calls == []

    world.run_pods(canary)
    live = await world.reconcile()
    assert live.canary.weight == 25 and live.status.canary_weight == 25 and live.stable.weight == 75
    assert live.analysis.step_started_at == world.clock.now()
    assert live.reasons() == ["CanaryStep"]
    assert world.deployments() == {stable: 3, canary: 1}  # the stable revision is not scaled down
    assert len(world.analysis.calls) == 1


async def test_with_an_httproute_the_backend_weights_follow_the_canary(world: World) -> None:
    world.route("agent")
    stable = await serving(world, md_spec(route="agent"))
    old = f"{NAME}-{stable}"
    assert world.backends() == [(old, 100)]

    world.edit({"adapters": [{"name": "commerce", "uri": V2}]})
    started = await world.reconcile()
    new = f"{NAME}-{started.canary.revision}"
    assert world.backends() == [(old, 100), (new, 0)] and started.canary.weight == 0
    assert world.deployments()[started.canary.revision] == 1  # capacity for its 50% share of 2 replicas

    world.run_pods(started.canary.revision)
    live = await world.reconcile()
    assert world.backends() == [(old, 50), (new, 50)] and live.canary.weight == 50 and live.stable.weight == 50

    # The last step: 100% on the route; promoted; then the route names only the new stable revision, and
    # the old revision's Deployment goes once no route sends it traffic.
    world.analysis.script(latency="Pass", errorRate="Pass")
    await world.reconcile()
    scaling = await world.reconcile()
    assert scaling.analysis.step == 1 and world.deployments()[live.canary.revision] == 2  # the last step's share
    world.run_pods(live.canary.revision)
    promoted = await world.reconcile()
    assert promoted.stable.revision == live.canary.revision and promoted.status.canary is None
    assert world.backends() == [(old, 0), (new, 100)] and stable in world.deployments()  # still routed: kept
    settled = await world.reconcile()
    assert world.backends() == [(new, 100)]
    assert settled.status.canary is None and world.deployments() == {live.canary.revision: 2}
    assert world.services() == sorted([NAME, new])


async def test_at_the_routes_100_percent_step_stable_gets_no_traffic_and_inconclusive_passes_after_an_interval(
    world: World,
) -> None:
    world.route("agent")
    await serving(world, md_spec(route="agent"))
    canary = await start_canary(world)
    world.analysis.script(latency="Pass", errorRate="Pass")
    await world.reconcile()  # step 1 (50%) passes
    await world.reconcile()  # the last step's capacity
    world.run_pods(canary)
    world.analysis.script(latency="Inconclusive", errorRate="Pass")
    looked = await world.reconcile()
    assert (looked.canary.weight, looked.stable.weight) == (100, 0) and looked.status.canary is not None
    world.clock.advance(29)
    assert (await world.reconcile()).status.canary is not None  # within the interval: still analysing
    world.clock.advance(2)
    promoted = await world.reconcile()
    assert promoted.stable.revision == canary and promoted.status.canary is None
    assert "passed at the earlier steps, no stable traffic to compare with" in promoted.status.history[0].reason


async def test_a_canary_whose_only_step_is_100_percent_is_not_passed_without_a_comparison(world: World) -> None:
    world.route("agent")
    await serving(world, md_spec(route="agent", steps=(100,)))
    canary = await start_canary(world)
    world.analysis.script(latency="Inconclusive", errorRate="Pass")
    world.clock.advance(3600)
    held = await world.reconcile()
    assert held.status.canary is not None and held.canary.revision == canary
    assert held.condition("Suspended").reason == "AnalysisInconclusive"


async def test_the_route_is_written_only_when_the_split_changes(world: World) -> None:
    world.route("agent")
    await serving(world, md_spec(route="agent"))
    assert len(world.client.calls_of("replace", ROUTE)) == 1  # the stable revision at 100%
    for _ in range(3):
        await world.reconcile()
    # The API server fills in backendRefs' defaults (group, kind, weight): read back, the same split is
    # not a change to write again.
    assert len(world.client.calls_of("replace", ROUTE)) == 1


async def test_steps_advance_only_when_every_metric_passes(world: World) -> None:
    await serving(world)
    await start_canary(world)
    looks: list[dict[str, Verdict]] = [{}, {"latency": "Pass"}, {"latency": "Pass", "errorRate": "Inconclusive"}]
    for verdicts in looks:
        world.analysis.script(**verdicts)
        world.clock.advance(5)
        look = await world.reconcile()
        assert look.analysis.step == 0 and look.condition("Progressing").reason == "Analysing"
        assert look.condition("Suspended").status == "False" and look.events == []
    world.analysis.script(latency="Pass", errorRate="Pass")
    passed = await world.reconcile()
    assert passed.analysis.step == 1 and passed.analysis.step_started_at is None
    assert passed.reasons() == ["CanaryStepPassed"]
    assert passed.condition("Progressing").reason == "CanaryProgressing"


async def test_missing_data_past_the_interval_holds_the_canary_and_never_promotes(world: World) -> None:
    stable = await serving(world, md_spec(progressDeadlineSeconds=7 * 24 * 3600))
    canary = await start_canary(world)
    world.clock.advance(29)
    early = await world.reconcile()
    assert early.condition("Suspended").status == "False" and early.events == []

    world.clock.advance(1)  # the step's 30s interval is over, and there is still no verdict
    held = await world.reconcile()
    suspended = held.condition("Suspended")
    assert suspended.status == "True" and suspended.reason == "AnalysisInconclusive"
    assert "latency: scripted Inconclusive" in suspended.message
    assert held.analysis.holding and held.analysis.inconclusive_steps == 1
    assert [(e.reason, e.type) for e in held.events] == [("CanaryHolding", "Warning")]

    for _ in range(5):  # hours later: still holding, announced once, nothing promoted
        world.clock.advance(3600)
        later = await world.reconcile()
        assert later.condition("Suspended").reason == "AnalysisInconclusive" and later.events == []
        assert later.stable.revision == stable and later.canary.revision == canary and later.analysis.step == 0
    assert len(world.events("CanaryHolding")) == 1 and not world.events("Promoted")
    assert [h.outcome for h in later.status.history] == ["Initial"]

    world.analysis.script(latency="Pass", errorRate="Pass")  # the data comes: the hold ends
    moved = await world.reconcile()
    assert moved.analysis.step == 1 and not moved.analysis.holding
    assert moved.condition("Suspended").status == "False"


async def test_the_last_step_passing_promotes_the_canary_and_deletes_the_old_revision(world: World) -> None:
    stable = await serving(world)
    canary = await start_canary(world)
    world.analysis.script(latency="Pass", errorRate="Pass")
    first = await world.reconcile()
    assert first.analysis.step == 1 and first.status.canary is not None
    promoted = await world.reconcile()
    assert promoted.stable.revision == canary and promoted.stable.adapters == {"commerce": V2}
    assert promoted.status.canary is None and promoted.status.analysis is None
    assert promoted.status.canary_weight == 0 and promoted.stable.weight == 100
    rolled_back = promoted.condition("RolledBack")
    assert (rolled_back.status, rolled_back.reason) == ("False", "Promoted")
    assert [(h.revision, h.outcome) for h in promoted.status.history] == [(canary, "Promoted"), (stable, "Initial")]
    assert promoted.reasons() == ["CanaryStep", "Promoted"]
    assert world.deployments() == {canary: 2}
    deleted = {(c.kind, c.name) for c in promoted.calls if c.verb == "delete"}
    assert deleted == {(DEPLOYMENT, f"{NAME}-{stable}"), (SERVICE, f"{NAME}-{stable}")}

    steady = await world.reconcile()
    assert steady.condition("Ready").status == "True" and steady.events == []
    assert steady.result == CONFIG.reconcile_seconds


async def test_at_rest_unchanged_children_are_not_applied_again_and_a_deleted_one_comes_back(world: World) -> None:
    revision = await serving(world)
    resting = await world.reconcile()
    assert [c for c in resting.calls if c.verb == "apply"] == []  # nothing changed: no request
    world.client.remove(SERVICE, NAME)  # someone deletes the endpoint Service
    restored = await world.reconcile()
    assert {(c.kind, c.name) for c in restored.calls if c.verb == "apply"} == {(SERVICE, NAME)}
    assert world.client.get_object(SERVICE, NAME) is not None
    world.client.remove(DEPLOYMENT, f"{NAME}-{revision}")
    again = await world.reconcile()
    assert (DEPLOYMENT, f"{NAME}-{revision}") in {(c.kind, c.name) for c in again.calls if c.verb == "apply"}


async def test_without_auto_promote_a_canary_that_passed_waits_for_the_promote_annotation(world: World) -> None:
    await serving(world, md_spec(autoPromote=False))
    canary = await start_canary(world)
    world.analysis.script(latency="Pass", errorRate="Pass")
    await world.reconcile()
    waiting = await world.reconcile()
    assert waiting.canary.revision == canary
    assert waiting.condition("Suspended").reason == "AwaitingPromotion"
    world.annotate({PROMOTE: canary})
    promoted = await world.reconcile()
    assert promoted.stable.revision == canary and promoted.status.canary is None


# ---------------------------------------------------------------------------------------------- rollback


async def test_a_failed_step_rolls_back_at_the_failure_limit(world: World) -> None:
    stable = await serving(world)
    canary = await start_canary(world)
    world.analysis.script(latency="Fail", errorRate="Pass")
    rollbacks = counted("rollbacks")
    failed = await world.reconcile()
    assert counted("rollbacks") == rollbacks + 1
    assert failed.stable.revision == stable and failed.stable.weight == 100
    assert failed.status.canary is None and failed.status.analysis is None
    assert (failed.condition("RolledBack").status, failed.condition("RolledBack").reason) == ("True", "AnalysisFailed")
    assert (failed.condition("Degraded").status, failed.condition("Degraded").reason) == ("True", "RolledBack")
    entry = failed.status.history[0]
    assert (entry.revision, entry.outcome) == (canary, "RolledBack") and entry.reason.startswith("latency")
    assert [(e.reason, e.type) for e in failed.events] == [("RolledBack", "Warning")]
    assert world.deployments() == {stable: 2}


async def test_a_failed_step_under_the_failure_limit_is_retried_with_a_fresh_window(world: World) -> None:
    await serving(world, md_spec(failure_limit=2))
    canary = await start_canary(world)
    world.clock.advance(20)
    world.analysis.script(latency="Fail")
    failed = await world.reconcile()
    assert failed.canary.revision == canary and failed.analysis.step == 0
    assert failed.analysis.failed_steps == 1 and failed.condition("Progressing").reason == "StepFailed"
    assert failed.analysis.started_at == failed.analysis.step_started_at == world.clock.now()
    assert [(e.reason, e.type) for e in failed.events] == [("CanaryStepFailed", "Warning")]
    assert "(1/2)" in failed.events[0].message and failed.condition("RolledBack").status == "False"

    world.clock.advance(5)
    world.analysis.script()
    retry = await world.reconcile()
    assert world.analysis.calls[-1].window_seconds == 5  # the retried step's test starts over
    assert retry.analysis.failed_steps == 1 and retry.events == []

    world.analysis.script(latency="Fail")
    rolled = await world.reconcile()
    assert rolled.status.canary is None and rolled.condition("RolledBack").status == "True"
    assert rolled.reasons() == ["RolledBack"]


async def test_a_rolled_back_revision_is_not_retried_until_the_spec_changes(world: World) -> None:
    stable = await serving(world)
    bad = await start_canary(world)
    world.analysis.script(latency="Fail")
    await world.reconcile()
    world.analysis.calls.clear()
    for _ in range(3):
        world.clock.advance(60)
        look = await world.reconcile()
        assert look.status.canary is None and look.stable.revision == stable and look.events == []
        assert look.condition("RolledBack").status == "True" and look.condition("Degraded").status == "True"
        assert all(c.name != f"{NAME}-{bad}" for c in look.calls if c.verb == "apply")
    assert bad not in world.deployments() and world.analysis.calls == []

    world.edit({"adapters": [{"name": "commerce", "uri": V3}]})
    fresh = await world.reconcile()
    assert fresh.canary.revision not in (stable, bad) and fresh.reasons() == ["CanaryStarted"]
    assert (fresh.condition("RolledBack").status, fresh.condition("RolledBack").reason) == ("False", "NewCanary")


# ---------------------------------------------------------------------------------------------- annotations


async def test_the_abort_annotation_naming_the_canary_rolls_it_back(world: World) -> None:
    stable = await serving(world)
    canary = await start_canary(world)
    world.analysis.calls.clear()
    world.annotate({ABORT: canary})
    aborted = await world.reconcile()
    assert aborted.stable.revision == stable and aborted.status.canary is None
    assert aborted.condition("RolledBack").status == "True"
    assert aborted.status.history[0].reason == "aborted by the adapterops.io/abort annotation"
    assert aborted.reasons() == ["RolledBack"] and world.analysis.calls == []
    assert world.deployments() == {stable: 2}


async def test_an_abort_applies_at_once_even_to_a_canary_that_is_not_ready(world: World) -> None:
    stable = await serving(world)
    canary = await start_canary(world, ready=False)
    world.annotate({ABORT: canary})
    aborted = await world.reconcile()
    assert aborted.status.canary is None and aborted.condition("RolledBack").status == "True"
    assert world.deployments() == {stable: 2}


async def test_a_promote_annotation_on_a_canary_that_is_not_ready_waits_until_it_is(world: World) -> None:
    # A promotion moves every request to the canary: it is kept, and applied once the canary is Ready.
    await serving(world)
    canary = await start_canary(world, ready=False)
    world.annotate({PROMOTE: canary})
    waiting = await world.reconcile()
    assert waiting.canary.revision == canary and waiting.condition("Progressing").reason == "CanaryNotReady"
    world.run_pods(canary)
    promoted = await world.reconcile()
    assert promoted.stable.revision == canary and promoted.status.canary is None


async def test_the_promote_annotation_naming_the_canary_promotes_it(world: World) -> None:
    stable = await serving(world)
    canary = await start_canary(world)
    world.analysis.calls.clear()
    world.annotate({PROMOTE: canary})
    promoted = await world.reconcile()
    assert promoted.stable.revision == canary and promoted.status.canary is None
    entry = promoted.status.history[0]
    assert (entry.outcome, entry.reason) == ("Promoted", "the adapterops.io/promote annotation")
    assert promoted.condition("RolledBack").reason == "Promoted" and world.analysis.calls == []
    assert stable not in world.deployments()


async def test_annotations_naming_another_revision_are_ignored(world: World) -> None:
    stable = await serving(world)
    canary = await start_canary(world)
    world.analysis.calls.clear()
    world.annotate({ABORT: stable, PROMOTE: "0123456789"})  # e.g. left over from an earlier canary
    look = await world.reconcile()
    assert look.canary.revision == canary and look.stable.revision == stable
    assert look.condition("Progressing").reason == "Analysing" and len(world.analysis.calls) == 1
    assert look.condition("RolledBack").status == "False"


async def test_a_paused_canary_holds_its_step_without_analysis(world: World) -> None:
    await serving(world)
    canary = await start_canary(world)
    world.analysis.calls.clear()
    world.analysis.script(latency="Pass", errorRate="Pass")
    world.edit({"canary": {"paused": True}})
    for _ in range(3):
        world.clock.advance(3600)
        paused = await world.reconcile()
        suspended = paused.condition("Suspended")
        assert (suspended.status, suspended.reason) == ("True", "Paused") and "step 1 (50%)" in suspended.message
        assert paused.canary.revision == canary and paused.analysis.step == 0 and paused.events == []
    assert world.analysis.calls == []

    world.edit({"canary": {"paused": False}})
    resumed = await world.reconcile()
    assert resumed.analysis.step == 1 and resumed.condition("Suspended").status == "False"


# ---------------------------------------------------------------------------------------------- the spec moves


async def test_a_new_champion_mid_canary_supersedes_the_canary_and_starts_another(world: World) -> None:
    world.finetunejob("nightly", "s3://adapters/nightly/t03")
    spec = md_spec()
    spec["adapters"] = [{"name": "commerce", "fineTuneJobRef": {"name": "nightly"}}]
    stable = await serving(world, spec)

    world.sync()  # our own status write, delivered: it wakes the ModelDeployment too
    world.queue.added.clear()
    world.finetunejob("nightly", "s3://adapters/nightly/t07")
    world.sync()
    assert KEY in world.queue.added  # the FineTuneJob's change wakes the ModelDeployment following it
    started = await world.reconcile()
    first = started.canary.revision
    assert started.canary.adapters == {"commerce": "s3://adapters/nightly/t07"}
    world.run_pods(first)
    await world.reconcile()

    world.clock.advance(10)
    world.finetunejob("nightly", "s3://adapters/nightly/t09")
    moved = await world.reconcile()
    second = moved.canary.revision
    assert second not in (stable, first) and moved.canary.adapters == {"commerce": "s3://adapters/nightly/t09"}
    assert moved.reasons() == ["CanarySuperseded", "CanaryStarted"]
    entry = moved.status.history[0]
    assert (entry.revision, entry.outcome, entry.reason) == (first, "Superseded", f"replaced by revision {second}")
    assert moved.analysis.step == 0 and moved.analysis.started_at == world.clock.now()
    assert moved.canary.weight == 0 and moved.stable.revision == stable
    assert world.deployments() == {stable: 2, second: 2}


async def test_a_canary_whose_finetunejob_runs_again_is_superseded_and_says_why(world: World) -> None:
    world.finetunejob("nightly", "s3://adapters/nightly/t03")
    spec = md_spec()
    spec["adapters"] = [{"name": "commerce", "fineTuneJobRef": {"name": "nightly"}}]
    stable = await serving(world, spec)
    world.finetunejob("nightly", "s3://adapters/nightly/t07")
    canary = (await world.reconcile()).canary.revision
    world.finetunejob("nightly", None, state="Running")  # the sweep runs again: no champion until it ends
    waiting = await world.reconcile()
    assert waiting.status.canary is None and waiting.stable.revision == stable and waiting.stable.weight == 100
    assert waiting.condition("Progressing").reason == "WaitingForAdapters"
    entry = waiting.status.history[0]
    assert (entry.revision, entry.outcome) == (canary, "Superseded")
    assert "FineTuneJob 'nightly' has no champion yet" in entry.reason
    assert waiting.reasons() == ["CanarySuperseded"] and "no champion yet" in waiting.events[0].message


async def test_the_spec_going_back_to_the_stable_revision_supersedes_the_canary(world: World) -> None:
    stable = await serving(world)
    canary = await start_canary(world)
    world.edit({"adapters": [{"name": "commerce", "uri": V1}]})
    back = await world.reconcile()
    assert back.status.canary is None and back.stable.revision == stable and back.stable.weight == 100
    entry = back.status.history[0]
    assert (entry.revision, entry.outcome) == (canary, "Superseded") and "stable revision again" in entry.reason
    assert back.reasons() == ["CanarySuperseded"] and back.condition("RolledBack").status == "False"
    assert world.deployments() == {stable: 2}


async def test_an_operator_restart_mid_canary_carries_on_at_the_same_step(world: World) -> None:
    await serving(world)
    canary = await start_canary(world)
    world.analysis.script(latency="Pass", errorRate="Pass")
    await world.reconcile()  # step 1 passed: at the last step now
    world.analysis.script()
    world.run_pods(canary)
    world.clock.advance(10)
    before = await world.reconcile()
    assert before.analysis.step == 1 and before.analysis.step_started_at is not None
    posted = len(world.events())
    canary_version = world.client.get_object(DEPLOYMENT, f"{NAME}-{canary}")

    await world.restart()
    world.clock.advance(5)
    after = await world.reconcile()
    assert after.canary.revision == canary and after.analysis.step == 1
    assert after.analysis.started_at == before.analysis.started_at
    assert after.analysis.step_started_at == before.analysis.step_started_at
    assert after.events == [] and len(world.events()) == posted
    assert world.client.get_object(DEPLOYMENT, f"{NAME}-{canary}") == canary_version  # re-applied: unchanged
    assert before.analysis.started_at is not None
    assert world.analysis.calls[-1].window_seconds == (world.clock.now() - before.analysis.started_at).seconds


async def test_a_refused_spec_keeps_the_stable_revision_serving(world: World) -> None:
    stable = await serving(world)
    world.edit({"runtime": {"gpuType": "Z999"}})
    refused = await world.reconcile()
    accepted = refused.condition("Accepted")
    assert (accepted.status, accepted.reason) == ("False", "UnknownGpuClass")
    assert "spec.runtime.gpuType" in accepted.message and "Z999" in accepted.message
    assert refused.condition("Ready").status == "True" and refused.stable.revision == stable
    assert refused.status.observed_generation == world.body()["metadata"]["generation"]
    assert [(e.reason, e.type) for e in refused.events] == [("UnknownGpuClass", "Warning")]
    assert {(c.verb, c.kind) for c in refused.calls} == {("patch_merge", MD), ("create", EVENT)}
    assert world.deployments() == {stable: 2} and refused.result == REFUSED_RETRY_SECONDS

    again = await world.reconcile()
    assert again.events == [] and not again.wrote_status

    world.edit({"runtime": {"gpuType": "H100"}})
    fixed = await world.reconcile()
    assert fixed.condition("Accepted").status == "True" and fixed.reasons() == ["Accepted"]


# ---------------------------------------------------------------------------------------------- API behaviour


async def test_a_status_write_that_loses_a_resource_version_race_is_not_announced_twice(world: World) -> None:
    world.create(md_spec())
    world.sync()
    world.annotate({"team": "search"})  # written after the informer's view: the reconcile's version is stale
    lost = await world.reconcile(sync=False)
    assert [c.error for c in lost.calls if c.subresource == "status"] == [409]
    assert world.status() is None and lost.events == []
    assert (KEY, 0.5) in world.queue.later  # looked at again soon, from the fresh object
    won = await world.reconcile()
    assert won.wrote_status and won.reasons() == ["Accepted", "RevisionCreated"]

    # The same for a transition mid-rollout: the canary's start is announced by the write that records it.
    stable = won.stable.revision
    world.run_pods(stable)
    await world.reconcile()
    world.edit({"adapters": [{"name": "commerce", "uri": V2}]})
    world.sync()
    world.annotate({"team": "search", "owner": "ml-platform"})
    lost = await world.reconcile(sync=False)
    assert lost.events == [] and not lost.wrote_status
    started = await world.reconcile()
    assert started.reasons() == ["CanaryStarted"] and started.canary.revision != stable
    assert [e.reason for e in world.events()] == ["Accepted", "RevisionCreated", "CanaryStarted"]


async def test_a_promotion_whose_status_write_loses_a_race_is_counted_once(world: World) -> None:
    await serving(world)
    canary = await start_canary(world)
    world.analysis.script(latency="Pass", errorRate="Pass")
    await world.reconcile()  # step 1 passed: the next look promotes
    before = counted("promotions")
    world.sync()
    world.annotate({"team": "search"})
    lost = await world.reconcile(sync=False)
    assert not lost.wrote_status and lost.canary.revision == canary and counted("promotions") == before
    won = await world.reconcile()
    assert won.stable.revision == canary and len(world.events("Promoted")) == 1
    assert counted("promotions") == before + 1


async def test_a_failed_apply_writes_no_status_and_posts_no_event(world: World) -> None:
    await serving(world)
    world.edit({"adapters": [{"name": "commerce", "uri": V2}]})
    world.client.fail("apply", DEPLOYMENT, code=500)
    posted = len(world.events())
    with pytest.raises(ApiError) as refused:
        await world.reconcile()
    assert refused.value.status.code == 500  # the manager retries it with backoff
    status = world.status()
    assert status is not None and status.canary is None and len(world.events()) == posted

    retried = await world.reconcile()
    assert retried.canary.revision and retried.reasons() == ["CanaryStarted"]


async def test_an_apply_the_api_server_refuses_shows_in_status_and_one_warning_then_clears(world: World) -> None:
    await serving(world)
    world.edit({"adapters": [{"name": "commerce", "uri": V2}]})
    world.client.fail("apply", DEPLOYMENT, code=422, times=2)
    for _ in range(2):  # the manager retries it with backoff; the same refusal is announced once
        with pytest.raises(Reported):
            await world.reconcile()
    status = world.status()
    assert status is not None and status.canary is None
    failure = next(c for c in status.conditions if c.type == "ChildFailure")
    assert failure.status == "True" and failure.reason == "ApplyFailed" and "Deployment" in failure.message
    assert "HTTP 422" in failure.message
    warnings = [e for e in world.events() if e.reason == "ApplyFailed"]
    assert len(warnings) == 1 and warnings[0].type == "Warning"

    retried = await world.reconcile()
    assert retried.canary.revision and "CanaryStarted" in retried.reasons()
    cleared = next(c for c in retried.status.conditions if c.type == "ChildFailure")
    assert cleared.status == "False"


async def test_a_canary_without_progress_past_its_deadline_is_rolled_back(world: World) -> None:
    stable = await serving(world, md_spec(progressDeadlineSeconds=600))
    canary = await start_canary(world)
    world.clock.advance(599)
    assert (await world.reconcile()).canary.revision == canary
    world.clock.advance(2)
    stuck = await world.reconcile()
    assert stuck.status.canary is None and stuck.status.stable is not None and stuck.status.stable.revision == stable
    rolled = stuck.condition("RolledBack")
    assert rolled.status == "True" and rolled.reason == "ProgressDeadlineExceeded"
    assert "no progress for 601s (canary.progressDeadlineSeconds is 600)" in rolled.message
    assert stuck.reasons() == ["RolledBack"]


async def test_a_canary_that_never_gets_ready_is_rolled_back_at_its_deadline(world: World) -> None:
    await serving(world, md_spec(progressDeadlineSeconds=600))
    await start_canary(world, ready=False)
    world.clock.advance(601)
    stuck = await world.reconcile()
    assert stuck.status.canary is None and stuck.condition("RolledBack").reason == "ProgressDeadlineExceeded"


async def test_a_stuck_canary_is_held_degraded_and_announced_once_when_abort_is_off(world: World) -> None:
    await serving(world, md_spec(progressDeadlineSeconds=600, progressDeadlineAbort=False))
    canary = await start_canary(world)
    world.clock.advance(601)
    held = await world.reconcile()
    assert held.canary.revision == canary and held.analysis.stuck
    assert (
        held.condition("Degraded").status == "True" and held.condition("Degraded").reason == "ProgressDeadlineExceeded"
    )
    assert held.condition("Suspended").reason == "ProgressDeadlineExceeded"
    assert [(e.reason, e.type) for e in held.events] == [("CanaryStuck", "Warning")]
    world.clock.advance(3600)
    again = await world.reconcile()
    assert again.canary.revision == canary and again.events == []  # announced once, never promoted


async def test_a_step_without_a_verdict_for_more_intervals_than_allowed_rolls_the_canary_back(world: World) -> None:
    spec = md_spec(progressDeadlineSeconds=7 * 24 * 3600)  # the count decides, not the deadline
    spec["canary"]["analysis"]["maxInconclusiveSteps"] = 1
    await serving(world, spec)
    await start_canary(world)
    world.clock.advance(59)  # two 30s intervals: the first and one more without a verdict, allowed
    assert (await world.reconcile()).canary.revision
    world.clock.advance(2)
    stuck = await world.reconcile()
    assert stuck.status.canary is None
    rolled = stuck.condition("RolledBack")
    assert rolled.reason == "ProgressDeadlineExceeded" and "maxInconclusiveSteps is 1" in rolled.message


async def test_an_event_the_api_refuses_does_not_fail_the_reconcile(world: World) -> None:
    world.create(md_spec())
    world.client.fail("create", EVENT, code=500, times=-1)
    first = await world.reconcile()
    assert first.wrote_status and first.status.stable is not None and world.events() == []


async def test_a_modeldeployment_that_is_gone_is_forgotten(world: World) -> None:
    world.client.put(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "prompts", "namespace": NAMESPACE},
            "data": {"prompts.jsonl": '{"prompt": "find red shoes"}\n'},
        }
    )
    spec = md_spec()
    spec["canary"]["analysis"]["judge"] = {
        "dataset": "configmap://prompts/prompts.jsonl",
        "judge": {"endpoint": "http://judge.invalid/v1", "model": "judge"},
    }
    stable = await serving(world, spec)
    canary = await start_canary(world)
    assert world.client.get_object(CONFIGMAP, "prompts") is not None
    assert KEY in world.reconciler.judges and KEY in world.reconciler.ctx.status._last_write
    judge = world.judges[-1]
    assert judge.started and judge.started[-1][2:] == ("commerce", "commerce") and not judge.stopped
    assert stable != canary

    world.client.remove(MD, NAME)
    gone = await world.reconcile()
    assert gone.result is None and gone.written_status is None and gone.calls == []
    assert KEY not in world.reconciler.judges and judge.stopped
    assert KEY not in world.reconciler.ctx.status._last_write


def judged_spec(world: World) -> dict[str, Any]:
    world.client.put(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "prompts", "namespace": NAMESPACE},
            "data": {"prompts.jsonl": '{"prompt": "find red shoes"}\n'},
        }
    )
    spec = md_spec(progressDeadlineSeconds=7 * 24 * 3600)
    spec["canary"]["analysis"]["judge"] = {
        "dataset": "configmap://prompts/prompts.jsonl",
        "judge": {"endpoint": "http://judge.invalid/v1", "model": "judge"},
    }
    return spec


async def test_judge_evidence_survives_an_operator_restart_and_only_for_the_same_test(world: World) -> None:
    await serving(world, judged_spec(world))
    await start_canary(world)
    world.judges[-1].pairs.extend([(4.0, 4.5), (3.0, None), (5.0, 5.0)])
    world.clock.advance(11)  # evidence is recorded at most every 10 s
    await world.reconcile()
    recorded = world.client.get_object(CONFIGMAP, f"{NAME}-judge-evidence")
    assert recorded is not None and json.loads(recorded["data"]["pairs.json"]) == [[4.0, 4.5], [3.0, None], [5.0, 5.0]]
    assert recorded["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"

    await world.restart()  # a new operator process: nothing in memory
    await world.reconcile()
    assert world.judges[-1].pairs == [(4.0, 4.5), (3.0, None), (5.0, 5.0)]  # the test carries on

    # A failed step starts a fresh test: the recorded pairs are not its evidence.
    world.analysis.script(latency="Fail")
    world.edit({"canary": {"analysis": {"failureLimit": 2}}})
    await world.reconcile()
    world.analysis.script()
    await world.reconcile()
    assert world.judges[-1].pairs == []


async def test_children_it_owns_under_names_it_no_longer_gives_are_deleted(world: World) -> None:
    """E.g. a revision Deployment named by an older operator: matched by the owner's UID, not by name."""
    revision = await serving(world)
    current = world.client.get_object(DEPLOYMENT, f"{NAME}-{revision}")
    assert current is not None
    old = copy.deepcopy(current)
    old["metadata"] = {**old["metadata"], "name": f"{NAME}-old-{revision}", "uid": "uid-of-the-old-name"}
    old["metadata"].pop("resourceVersion", None)
    world.client.put(old)
    cleaned = await world.reconcile()
    deleted = {(c.kind, c.name) for c in cleaned.calls if c.verb == "delete"}
    assert deleted == {(DEPLOYMENT, f"{NAME}-old-{revision}")}
    assert world.client.get_object(DEPLOYMENT, f"{NAME}-{revision}") is not None
