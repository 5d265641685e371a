"""Watches of the operator's children (trial Jobs and pods, JobSets, PyTorchJobs, serving Deployments
and pods), selected by label on the server and kept as small summaries per owner.

Why not kopf: kopf watches a resource whole and filters by label in the client, so the operator would
receive every pod of the cluster, and it runs its full per-object machinery (a worker per object, a deep
copy of the body for its diff base, handlers in a thread pool) for each event. With hundreds of trial
Jobs starting at once, that per-event work competes with the creates for the operator's one core. An
event here costs a JSON parse, a summary and, when the summary changed, a queue insert. Also, kopf
cannot watch a kind whose CRD may be removed at run time (kopf 1.45 stops the whole operator on the
404): while an optional API group (JobSet, PyTorchJob) is not served, discovery is polled; while it is,
list then watch; a 404 or 410 starts over.

The view has the shape of a kopf index: (namespace, owner name) -> summaries. `synced` is set once every
watched namespace has been listed (or found not served), so the workers never act on an empty view.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from adapterops.runtime.client import ApiException, Kube, resource_path
from adapterops.runtime.workqueue import Key

log = logging.getLogger(__name__)

Summarize = Callable[[dict[str, Any]], dict[str, Any]]

WATCH_SECONDS = 300  # the server closes each watch after this; it is reopened from the last version
RETRY_SECONDS = 5.0


@dataclass
class ChildWatch:
    kube: Kube
    api_version: str
    kind: str
    label: str  # the label naming the owner (FineTuneJob or ModelDeployment): the view's key
    summarize: Summarize
    on_change: Callable[[Key], None]  # told the owner whose child changed (or vanished)
    selector: str = ""  # the server-side label selector; default: objects that carry `label`
    served: Callable[[], Awaitable[bool]] | None = None  # is an optional API group installed (None: always)
    namespaces: tuple[str, ...] = ()  # empty: the whole cluster
    poll_seconds: float = 30.0  # how often an absent API group is looked for
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    # owner key -> uid -> summary, per watched namespace ("" for cluster-wide).
    _objects: dict[str, dict[Key, dict[str, dict[str, Any]]]] = field(default_factory=dict)
    _listed: set[str] = field(default_factory=set)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def poke(self) -> None:
        """Look for an absent API group now (the controller has just created one of this kind)."""
        self._wake.set()

    def items(self, key: Key) -> list[dict[str, Any]]:
        return [summary for by_key in self._objects.values() for summary in by_key.get(key, {}).values()]

    async def run(self) -> None:
        await asyncio.gather(*(self._run_one(ns) for ns in (self.namespaces or ("",))))

    async def _run_one(self, namespace: str) -> None:
        while True:
            try:
                if self.served is not None and not await self.served():
                    self._replace(namespace, [])
                    self._mark_listed(namespace)
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                    continue
                version = await self._list(namespace)
                self._mark_listed(namespace)
                await self._watch(namespace, version)
            except ApiException as exc:
                if exc.status == 404:  # the CRD went away: its objects went with it
                    self._replace(namespace, [])
                if exc.status not in (404, 410):
                    log.warning("%s watch: API error %s %s; retrying", self.kind, exc.status, exc.reason)
                    await asyncio.sleep(RETRY_SECONDS)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("%s watch: %r; retrying", self.kind, exc)
                await asyncio.sleep(RETRY_SECONDS)

    def _mark_listed(self, namespace: str) -> None:
        self._listed.add(namespace)
        if len(self._listed) == len(self.namespaces or ("",)):
            self.synced.set()

    def _path(self, namespace: str) -> str:
        return resource_path(self.api_version, self.kind, namespace or None)

    async def _list(self, namespace: str) -> str:
        out = await self.kube.request(
            "GET", self._path(namespace), query={"labelSelector": self.selector or self.label}
        )
        self._replace(namespace, out.get("items", []))
        return str(out["metadata"]["resourceVersion"])

    async def _watch(self, namespace: str, version: str) -> None:
        query = {
            "labelSelector": self.selector or self.label,
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
        }
        while True:
            async for event in self.kube.watch(self._path(namespace), query, WATCH_SECONDS):
                obj = event["object"]
                if event["type"] == "ERROR":
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                query["resourceVersion"] = obj["metadata"]["resourceVersion"]
                if event["type"] == "DELETED":
                    self._forget(namespace, obj)
                elif event["type"] in ("ADDED", "MODIFIED"):
                    self._remember(namespace, obj)

    def _key(self, obj: dict[str, Any]) -> Key:
        meta = obj["metadata"]
        return (meta.get("namespace"), meta["labels"][self.label])

    def _remember(self, namespace: str, obj: dict[str, Any]) -> None:
        key = self._key(obj)
        by_uid = self._objects.setdefault(namespace, {}).setdefault(key, {})
        summary = self.summarize(obj)
        if by_uid.get(obj["metadata"]["uid"]) != summary:  # most updates touch nothing the reconcile reads
            by_uid[obj["metadata"]["uid"]] = summary
            self.on_change(key)

    def _forget(self, namespace: str, obj: dict[str, Any]) -> None:
        key = self._key(obj)
        by_key = self._objects.get(namespace, {})
        if by_key.get(key, {}).pop(obj["metadata"]["uid"], None) is not None:
            if not by_key[key]:
                del by_key[key]
            self.on_change(key)

    def _replace(self, namespace: str, items: list[dict[str, Any]]) -> None:
        """A fresh listing: objects no longer there are forgotten, and every affected job is told."""
        old = self._objects.pop(namespace, {})
        new: dict[Key, dict[str, dict[str, Any]]] = {}
        for obj in items:
            new.setdefault(self._key(obj), {})[obj["metadata"]["uid"]] = self.summarize(obj)
        self._objects[namespace] = new
        for key in old.keys() | new.keys():
            self.on_change(key)
