"""Status writes: conditional on the resourceVersion they were computed from, and coalesced.

A merge patch keeps keys it does not name, so fields that went away are sent as null. The
resourceVersion makes the write conditional: computed from a stale view of the object (the informer
lags our own last write), it is refused and the next reconcile sees the fresh object, so a transition
is written, and announced, once. Minor changes (a trial started, a metric moved) are written at most
once per `interval` per object; a condition flip, a new state or champion, or a new stable revision
is written at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from lightkube.core.exceptions import ApiError

from adapterops.api.kinds import Kind
from adapterops.runtime.client import Client
from adapterops.runtime.workqueue import Key, WorkQueue

# Status fields whose change is written at once (besides conditions).
SUMMARY_FIELDS = ("state", "canaryWeight", "champion", "observedGeneration")


@dataclass
class StatusWriter:
    client: Client
    kind: Kind
    queue: WorkQueue
    interval: float
    _last_write: dict[Key, float] = field(default_factory=dict)

    def forget(self, key: Key) -> None:
        self._last_write.pop(key, None)

    async def write(self, body: dict[str, Any], status: dict[str, Any]) -> bool:
        """Patch status when it differs from what the object carries; True when written."""
        old = body.get("status") or {}
        if status == old:
            return False
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        since = time.monotonic() - self._last_write.get(key, 0.0)
        if since < self.interval and not significant(old, status):
            self.queue.add_after(key, self.interval - since)
            return False
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": merge_patch(old, status)}
        try:
            await self.client.patch_merge(self.kind.resource.Status, meta["namespace"], meta["name"], patch)
        except ApiError as exc:
            if exc.status.code != 409:
                raise
            self.queue.add_after(key, 0.5)
            return False
        self._last_write[key] = time.monotonic()
        return True


def significant(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """A change worth writing at once: a condition flips or changes reason, or the summary moves."""

    def conditions(status: dict[str, Any]) -> set[tuple[str, str, str]]:
        return {(c["type"], c["status"], c["reason"]) for c in status.get("conditions") or []}

    return (
        conditions(old) != conditions(new)
        or any(old.get(k) != new.get(k) for k in SUMMARY_FIELDS)
        or ((old.get("stable") or {}).get("revision") != (new.get("stable") or {}).get("revision"))
    )


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch turning `old` into `new`: removed keys, at any depth, become null."""
    patch: dict[str, Any] = {k: None for k in old if k not in new}
    for k, v in new.items():
        before = old.get(k)
        if isinstance(v, dict) and isinstance(before, dict):
            if sub := merge_patch(before, v):
                patch[k] = sub
        elif v != before or k not in old:
            patch[k] = v
    return patch
