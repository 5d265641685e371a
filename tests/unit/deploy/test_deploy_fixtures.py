"""The fake API and kubelet behave as the real ones do where the reconciler's tests rely on it."""

from __future__ import annotations

from typing import Any

import pytest
from deploy_fixtures import DEPLOYMENT, MD, NAME, NAMESPACE, POD, ROUTE, FakeClient, World, md_spec
from lightkube.core.exceptions import ApiError

from adapterops.api.kinds import MODELDEPLOYMENT
from adapterops.deploy import builders


def md(client: FakeClient) -> dict[str, Any]:
    body = client.get_object(MD, NAME)
    assert body is not None
    return body


async def test_a_status_patch_from_a_stale_version_is_refused_and_a_current_one_merged() -> None:
    client = FakeClient()
    client.put(
        {
            "apiVersion": MODELDEPLOYMENT.api_version,
            "kind": "ModelDeployment",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": {"a": 1},
            "status": {"x": 1, "y": 2},
        }
    )
    version = md(client)["metadata"]["resourceVersion"]
    client.put({**md(client), "metadata": {**md(client)["metadata"], "labels": {"moved": "on"}}})
    status = MODELDEPLOYMENT.resource.Status
    with pytest.raises(ApiError) as refused:
        await client.patch_merge(
            status, NAMESPACE, NAME, {"metadata": {"resourceVersion": version}, "status": {"x": 3}}
        )
    assert refused.value.status.code == 409 and md(client)["status"] == {"x": 1, "y": 2}

    current = md(client)["metadata"]
    patch = {"metadata": {"resourceVersion": current["resourceVersion"]}, "status": {"x": 3, "y": None}}
    await client.patch_merge(status, NAMESPACE, NAME, patch)
    after = md(client)
    assert after["status"] == {"x": 3} and after["spec"] == {"a": 1}
    assert int(after["metadata"]["resourceVersion"]) > int(current["resourceVersion"])
    assert after["metadata"]["generation"] == current["generation"]  # status is not the spec


async def test_applying_the_same_manifest_again_writes_nothing_and_a_new_spec_bumps_the_generation() -> None:
    client = FakeClient()
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": NAMESPACE},
        "spec": {"replicas": 1},
    }
    first = await client.apply(manifest)
    again = await client.apply(manifest)
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    scaled = await client.apply({**manifest, "spec": {"replicas": 2}})
    assert scaled["metadata"]["generation"] == 2 and scaled["metadata"]["uid"] == first["metadata"]["uid"]


async def test_the_route_read_back_carries_the_api_servers_defaults() -> None:
    client = FakeClient()
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": NAMESPACE},
        "spec": {"rules": [{"backendRefs": [{"name": "s", "port": 8000}]}]},
    }
    client.put(route)
    stored = client.get_object(ROUTE, "r")
    assert stored is not None
    assert stored["spec"]["rules"][0]["backendRefs"] == [
        {"name": "s", "port": 8000, "group": "", "kind": "Service", "weight": 1}
    ]


async def test_an_injected_failure_refuses_that_many_calls() -> None:
    client = FakeClient()
    client.fail("apply", DEPLOYMENT, code=503, times=1)
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": NAMESPACE},
        "spec": {},
    }
    with pytest.raises(ApiError):
        await client.apply(manifest)
    await client.apply(manifest)
    assert [c.error for c in client.calls_of("apply")] == [503, None]


async def test_informers_see_the_store_when_synced_and_pods_go_with_their_deployment(world: World) -> None:
    world.create(md_spec())
    await world.reconcile()
    status = world.status()
    assert status is not None and status.stable is not None
    revision = status.stable.revision
    world.run_pods(revision, ready=1)
    meta = md(world.client)["metadata"]
    owner = (meta["namespace"], meta["uid"])  # children are grouped by their owner's namespace and UID
    revisions = world.reconciler.revisions
    assert revisions.data(owner) == []  # applied by that reconcile, not delivered yet: the watch lags
    world.sync()
    assert [(d.revision, d.replicas, d.ready_replicas) for d in revisions.data(owner)] == [(revision, 2, 1)]
    assert sorted((p.ready, p.ip is not None) for p in world.reconciler.pods.data(owner)) == [
        (False, False),
        (True, True),
    ]

    world.client.remove(DEPLOYMENT, builders.revision_name(NAME, revision))
    assert world.client.of_kind(POD) == []
    world.sync()
    assert revisions.data(owner) == [] and world.reconciler.pods.data(owner) == []
