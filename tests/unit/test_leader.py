"""Leader election on a Lease: one leader at a time, takeover after expiry by the candidate's own clock,
conditional writes, a leader that cannot renew stops before anyone else may lead, and stands again."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import httpx2
import pytest

from adapterops.runtime.leader import LeaderElection


class FakeLeases:
    """The API server's side of a Lease: conditional updates, 409 on a stale resourceVersion."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise httpx2.ConnectError("API server unreachable")

    def _conflict(self) -> httpx2.HTTPStatusError:
        request = httpx2.Request("PUT", "https://api/leases")
        return httpx2.HTTPStatusError("409", request=request, response=httpx2.Response(409, request=request))

    async def get(self, res: Any, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        return copy.deepcopy(self.lease)

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        self._check()
        if self.lease is not None:
            return None
        self.version += 1
        self.lease = {
            **copy.deepcopy(manifest),
            "metadata": {**manifest["metadata"], "resourceVersion": str(self.version)},
        }
        return copy.deepcopy(self.lease)

    async def replace(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self._check()
        assert self.lease is not None
        if manifest["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise self._conflict()
        self.version += 1
        self.lease = {
            **copy.deepcopy(manifest),
            "metadata": {**manifest["metadata"], "resourceVersion": str(self.version)},
        }
        return copy.deepcopy(self.lease)


def candidate(leases: FakeLeases, identity: str) -> LeaderElection:
    return LeaderElection(
        leases,  # type: ignore[arg-type]  # the verbs the election uses
        "adapterops-system",
        identity,
        lease_seconds=0.6,
        renew_deadline_seconds=0.4,
        retry_seconds=0.05,
    )


def holder(leases: FakeLeases) -> str | None:
    return None if leases.lease is None else leases.lease["spec"].get("holderIdentity")


async def test_only_one_of_two_candidates_leads() -> None:
    leases = FakeLeases()
    a, b = candidate(leases, "a"), candidate(leases, "b")
    tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
    await asyncio.wait_for(
        asyncio.wait(
            [asyncio.create_task(a.leading.wait()), asyncio.create_task(b.leading.wait())],
            return_when=asyncio.FIRST_COMPLETED,
        ),
        2,
    )
    await asyncio.sleep(0.3)  # several renewals: the other must still be waiting
    assert a.leading.is_set() != b.leading.is_set()
    assert holder(leases) == ("a" if a.leading.is_set() else "b")
    for task in tasks:
        task.cancel()


async def test_a_standby_takes_over_only_after_the_lease_expired_unrenewed() -> None:
    leases = FakeLeases()
    a = candidate(leases, "a")
    task_a = asyncio.create_task(a.run())
    await asyncio.wait_for(a.leading.wait(), 2)
    task_a.cancel()  # the leader dies: no release, no more renewals
    b = candidate(leases, "b")
    started = asyncio.get_running_loop().time()
    task_b = asyncio.create_task(b.run())
    await asyncio.wait_for(b.leading.wait(), 3)
    waited = asyncio.get_running_loop().time() - started
    assert waited >= 0.6, f"took over after {waited:.2f}s, before the lease ran out"
    assert holder(leases) == "b" and leases.lease is not None and leases.lease["spec"]["leaseTransitions"] == 1
    task_b.cancel()


async def test_a_released_lease_is_taken_at_once() -> None:
    leases = FakeLeases()
    a = candidate(leases, "a")
    task_a = asyncio.create_task(a.run())
    await asyncio.wait_for(a.leading.wait(), 2)
    task_a.cancel()
    await a.release()
    b = candidate(leases, "b")
    started = asyncio.get_running_loop().time()
    task_b = asyncio.create_task(b.run())
    await asyncio.wait_for(b.leading.wait(), 2)
    assert asyncio.get_running_loop().time() - started < 0.3
    task_b.cancel()


async def test_a_leader_that_cannot_renew_stops_before_the_lease_expires() -> None:
    leases = FakeLeases()
    a = candidate(leases, "a")
    task_a = asyncio.create_task(a.run())
    await asyncio.wait_for(a.leading.wait(), 2)
    leases.down = True  # the API server is gone for this replica
    cut_off = asyncio.get_running_loop().time()
    await asyncio.wait_for(a.lost.wait(), 2)
    stopped_after = asyncio.get_running_loop().time() - cut_off
    assert stopped_after < 0.6, "a standby could have taken over while this one still acted"
    assert not a.leading.is_set()
    await task_a


def test_a_renew_deadline_not_shorter_than_the_lease_is_refused() -> None:
    with pytest.raises(ValueError, match="renew deadline"):
        LeaderElection(FakeLeases(), "ns", "a", lease_seconds=10, renew_deadline_seconds=10)  # type: ignore[arg-type]


async def test_a_leader_that_lost_its_lease_leads_again_when_the_api_server_is_back() -> None:
    leases = FakeLeases()
    a = candidate(leases, "a")
    task = asyncio.create_task(a.run())
    await asyncio.wait_for(a.leading.wait(), 2)
    assert leases.lease is not None
    first_term = leases.lease["spec"]["acquireTime"]
    leases.down = True
    await asyncio.wait_for(task, 2)  # the term ends; the process (this event loop) goes on
    assert a.lost.is_set() and not a.leading.is_set()
    leases.down = False
    task = asyncio.create_task(a.run())  # standing again, as the manager does
    await asyncio.wait_for(a.leading.wait(), 2)
    assert not a.lost.is_set() and holder(leases) == "a"
    assert leases.lease["spec"]["acquireTime"] != first_term, "a new term must say when it began"
    task.cancel()
