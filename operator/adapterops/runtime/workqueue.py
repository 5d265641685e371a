"""A deduplicating work queue, as controller-runtime has: level-based reconciliation.

Watch events only say "this object (or one of its children) changed". The key goes into the queue
once however many events arrive; a key is never reconciled by two workers at once; a key that changes
while it is being reconciled is queued again afterwards; `add_after` schedules a later look (canary
intervals, resyncs). No finalizers are needed, so deleting an object never waits for the operator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Key = tuple[str, str]  # (namespace, name) of the object to reconcile


class WorkQueue:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._active: set[Key] = set()
        self._dirty: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}

    def add(self, key: Key) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: Key, seconds: float) -> None:
        """Look at `key` again in `seconds` (an earlier pending wake-up wins)."""
        loop = asyncio.get_running_loop()
        existing = self._timers.get(key)
        if existing is not None and existing.when() <= loop.time() + seconds:
            return
        if existing is not None:
            existing.cancel()
        self._timers[key] = loop.call_later(seconds, self._fire, key)

    def forget(self, key: Key) -> None:
        """Drop a pending later look at `key` (its object is gone)."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def close(self) -> None:
        """Drop every pending later look (the queue's term is over: nothing reads it any more)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def __len__(self) -> int:
        return len(self._queued)

    async def run_worker(self, reconcile: Callable[[Key], Awaitable[None]]) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._active.add(key)
            try:
                await reconcile(key)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)
