"""The manager's terms of leadership: workers only while leading; a lost lease stops them and drops the
reconcilers with what they held in memory, and the next term starts from the informers' views, in the
same process."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from adapterops.api.kinds import FINETUNEJOB
from adapterops.config import Config, GpuClass
from adapterops.runtime.context import Context
from adapterops.runtime.manager import Manager
from adapterops.runtime.workqueue import Key


class Recorder:
    """A reconciler that remembers what it was asked, and whether it was closed."""

    kind = FINETUNEJOB
    made: ClassVar[list[Recorder]] = []

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        ctx.informers.of(FINETUNEJOB).subscribe(ctx.queue.add)
        self.reconciled: list[Key] = []
        self.closed = False
        Recorder.made.append(self)

    async def reconcile(self, key: Key) -> None:
        self.reconciled.append(key)

    async def close(self) -> None:
        self.closed = True


class Election:
    """Leads when told to, loses the lease when told to (what the real one does when renewals fail)."""

    def __init__(self) -> None:
        self.leading, self.lost = asyncio.Event(), asyncio.Event()
        self._lead, self._lose = asyncio.Event(), asyncio.Event()

    async def run(self) -> None:
        self.lost.clear()
        await self._lead.wait()
        self._lead.clear()
        self.leading.set()
        await self._lose.wait()
        self._lose.clear()
        self.leading.clear()
        self.lost.set()

    def lead(self) -> None:
        self._lead.set()

    def lose(self) -> None:
        self._lose.set()


def ftj(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ml", "uid": f"uid-{name}"}, "spec": {}}


async def until(predicate: Any, what: str) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def test_a_lost_lease_ends_the_term_and_the_next_one_starts_afresh_in_the_same_process() -> None:
    Recorder.made.clear()
    h100 = GpuClass.model_validate({"nodeSelector": {"gpu": "h100"}, "pricePerHour": 4.5, "memoryGiB": 80})
    config = Config(gpu_classes={"H100": h100})
    manager = Manager(config, client=None, reconcilers=[Recorder])  # type: ignore[arg-type]  # no API calls
    election = Election()
    manager.election = election  # type: ignore[assignment]  # the verbs the manager uses
    informer = manager.informers.of(FINETUNEJOB)
    informer._replace("", [ftj("a")])  # listed: the view the replicas keep warm

    async def watching() -> None:  # the informer's list-and-watch, standing in for the API server's
        await asyncio.Event().wait()

    informer.run = watching  # type: ignore[method-assign]
    task = asyncio.create_task(manager.run())
    await asyncio.sleep(0.05)
    first = Recorder.made[0]
    assert first.reconciled == [], "a standby reconciled"

    election.lead()
    await until(lambda: first.reconciled == [("ml", "a")], "the leader reconciles what its view holds")
    first.ctx.queue.add_after(("ml", "a"), 60)  # a later look the old term had planned
    election.lose()
    await until(lambda: first.closed and len(Recorder.made) == 2, "the term ends: its reconciler is dropped")
    assert not first.ctx.queue._timers, "the old term's planned looks must not outlive it"
    second = Recorder.made[1]
    assert informer.subscribers == [second.ctx.queue.add], "the old term's queue still hears the informer"
    informer._remember("", ftj("b"))  # an event between terms: queued, not acted on
    await asyncio.sleep(0.05)
    assert first.reconciled == [("ml", "a")] and second.reconciled == []

    election.lead()
    await until(lambda: sorted(second.reconciled) == [("ml", "a"), ("ml", "b")], "the next term starts")
    assert not task.done(), "the manager must not stop (no process restart)"
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
