"""The work queue coalesces events, never runs one key twice at once, and re-queues changed keys."""

from __future__ import annotations

import asyncio

from adapterops.runtime.workqueue import WorkQueue


async def test_events_for_one_key_coalesce_and_never_overlap() -> None:
    queue = WorkQueue()
    running: set[str] = set()
    overlaps = 0
    calls: list[str] = []
    release = asyncio.Event()

    async def reconcile(key: object) -> None:
        nonlocal overlaps
        assert isinstance(key, str)
        if key in running:
            overlaps += 1
        running.add(key)
        calls.append(key)
        await release.wait()
        running.discard(key)

    workers = [asyncio.create_task(queue.run_worker(reconcile)) for _ in range(3)]
    for _ in range(5):
        queue.add("a")
    await asyncio.sleep(0)  # let a worker pick "a" up
    queue.add("a")  # changed while being reconciled: must run once more afterwards
    queue.add("a")
    release.set()
    await asyncio.wait_for(_until(lambda: len(calls) == 2 and not running), 2)
    assert calls == ["a", "a"] and overlaps == 0
    for w in workers:
        w.cancel()


async def test_add_after_fires_once_at_the_earliest_time() -> None:
    queue = WorkQueue()
    seen: list[object] = []

    async def reconcile(key: object) -> None:
        seen.append(key)

    worker = asyncio.create_task(queue.run_worker(reconcile))
    queue.add_after("k", 0.05)
    queue.add_after("k", 5)  # a later wake-up does not postpone the earlier one
    await asyncio.wait_for(_until(lambda: seen == ["k"]), 2)
    worker.cancel()


async def _until(predicate: object) -> None:
    assert callable(predicate)
    while not predicate():  # noqa: ASYNC110 (polls plain state the workers mutate)
        await asyncio.sleep(0.01)
