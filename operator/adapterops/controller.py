"""The reconcile loop: work queues fed by kopf's watch events, workers that converge each object.

kopf does the watching and keeps indices (in-memory views of our objects and their children, filled
before any handler runs); the workers read those views, so a reconcile costs API calls only for
what it changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from adapterops import deploy, events, finetune
from adapterops.api import API_VERSION
from adapterops.conditions import get_condition
from adapterops.config import Config
from adapterops.kube import ApiException, Kube
from adapterops.metrics import API_ERRORS, RECONCILE_ERRORS, RECONCILE_SECONDS
from adapterops.workqueue import Key, WorkQueue

log = logging.getLogger(__name__)

WORKERS_PER_KIND = 4
RETRY_SECONDS = 5.0


@dataclass
class Controller:
    config: Config
    kube: Kube
    queues: dict[str, WorkQueue] = field(default_factory=dict)
    # Live kopf indices, captured from the first handler call (kopf passes them to every handler).
    indices: Mapping[str, Any] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def bind_indices(self, kwargs: Mapping[str, Any]) -> None:
        if not self.indices:
            self.indices = {k: v for k, v in kwargs.items() if k.endswith("_index")}

    def one(self, index: str, key: Key) -> dict[str, Any] | None:
        """The single object an index holds under `key` (our own objects are indexed by (ns, name))."""
        store = self.indices.get(index, {}).get(key)
        return next(iter(store), None) if store else None

    def many(self, index: str, key: Key) -> list[dict[str, Any]]:
        store = self.indices.get(index, {}).get(key)
        return list(store) if store else []

    def start(self) -> None:
        reconcilers: dict[str, Callable[[Key], Awaitable[None]]] = {
            "FineTuneJob": self.reconcile_finetunejob,
            "ModelDeployment": self.reconcile_modeldeployment,
        }
        for kind, fn in reconcilers.items():
            queue = self.queues.setdefault(kind, WorkQueue())
            for _ in range(WORKERS_PER_KIND):
                self._tasks.append(asyncio.create_task(queue.run_worker(self._guarded(kind, fn))))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def enqueue(self, kind: str, key: Key) -> None:
        self.queues.setdefault(kind, WorkQueue()).add(key)

    def _guarded(self, kind: str, fn: Callable[[Key], Awaitable[None]]) -> Callable[[Key], Awaitable[None]]:
        async def run(key: Key) -> None:
            start = time.monotonic()
            try:
                await fn(key)
            except ApiException as exc:
                API_ERRORS.labels(kind, str(exc.status)).inc()
                RECONCILE_ERRORS.labels(kind).inc()
                log.warning("%s %s: API error %s %s; retrying", kind, key, exc.status, exc.reason)
                self.queues[kind].add_after(key, RETRY_SECONDS)
            except Exception:
                RECONCILE_ERRORS.labels(kind).inc()
                log.exception("%s %s: reconcile failed; retrying", kind, key)
                self.queues[kind].add_after(key, RETRY_SECONDS)
            finally:
                RECONCILE_SECONDS.labels(kind).observe(time.monotonic() - start)

        return run

    async def write_status(self, body: dict[str, Any], status: dict[str, Any]) -> bool:
        """Patch status only when it differs from what the object carries (no write churn)."""
        if status == body.get("status"):
            return False
        meta = body["metadata"]
        await self.kube.patch_merge(
            API_VERSION,
            body["kind"],
            meta["namespace"],
            meta["name"],
            {"status": status},
            subresource="status",
        )
        return True

    async def announce_acceptance(self, body: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> None:
        before = get_condition(old.get("conditions"), "Accepted")
        after = get_condition(new.get("conditions"), "Accepted")
        if after is None or (before and (before["status"], before["message"]) == (after["status"], after["message"])):
            return
        if after["status"] == "True":
            await events.emit(self.kube, body, "Accepted", after["message"])
        else:
            await events.emit(self.kube, body, after["reason"], after["message"], "Warning")

    async def reconcile_finetunejob(self, key: Key) -> None:
        body = self.one("finetunejob_index", key)
        if body is None:
            return
        meta = body["metadata"]
        acceptance = finetune.accept(meta["name"], body.get("spec") or {}, self.config)
        old = body.get("status") or {}
        new = finetune.acceptance_status(old, acceptance, meta.get("generation"))
        if await self.write_status(body, new):
            await self.announce_acceptance(body, old, new)

    async def reconcile_modeldeployment(self, key: Key) -> None:
        body = self.one("modeldeployment_index", key)
        if body is None:
            return
        meta = body["metadata"]
        acceptance = deploy.accept(body.get("spec") or {}, self.config)
        old = body.get("status") or {}
        new = deploy.acceptance_status(old, acceptance, meta.get("generation"))
        if await self.write_status(body, new):
            await self.announce_acceptance(body, old, new)
