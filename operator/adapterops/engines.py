"""Watches of the optional distributed engines' trials (JobSet, Kubeflow PyTorchJob).

These kinds come and go with their add-ons, and kopf cannot watch such a kind safely: when its CRD is
removed while the operator runs, kopf re-opens the watch, gets 404 before its CRD observer stops the
watcher, and stops the whole operator (kopf 1.45). So they are watched here: while the API group is
not served, discovery is polled; while it is, list then watch; a 404 or 410 starts over. The view has
the shape of a kopf index: (namespace, FineTuneJob name) -> trial summaries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from adapterops.kube import ApiException, Kube, resource_path
from adapterops.workqueue import Key

log = logging.getLogger(__name__)

WATCH_SECONDS = 300  # the server closes each watch after this; it is reopened from the last version
RETRY_SECONDS = 5.0


@dataclass
class EngineWatch:
    kube: Kube
    api_version: str
    kind: str
    label: str  # the label naming the FineTuneJob; only labelled objects are watched
    summarize: Callable[[dict[str, Any]], dict[str, Any]]
    on_change: Callable[[Key], None]  # told the FineTuneJob whose trial changed (or vanished)
    served: Callable[[], Awaitable[bool]]  # is the engine's API group installed
    namespaces: tuple[str, ...] = ()  # empty: the whole cluster
    poll_seconds: float = 30.0  # how often an absent engine's API group is looked for
    # FineTuneJob key -> uid -> summary, per watched namespace ("" for cluster-wide).
    _objects: dict[str, dict[Key, dict[str, dict[str, Any]]]] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def poke(self) -> None:
        """Look for the API group now (the controller has just created one of this kind)."""
        self._wake.set()

    def items(self, key: Key) -> list[dict[str, Any]]:
        return [summary for by_key in self._objects.values() for summary in by_key.get(key, {}).values()]

    async def run(self) -> None:
        await asyncio.gather(*(self._run_one(ns) for ns in (self.namespaces or ("",))))

    async def _run_one(self, namespace: str) -> None:
        while True:
            try:
                if not await self.served():
                    self._replace(namespace, [])
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                    continue
                version = await self._list(namespace)
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

    def _path(self, namespace: str) -> str:
        return resource_path(self.api_version, self.kind, namespace or None)

    async def _list(self, namespace: str) -> str:
        out = await self.kube.request("GET", self._path(namespace), query={"labelSelector": self.label})
        self._replace(namespace, out.get("items", []))
        return str(out["metadata"]["resourceVersion"])

    async def _watch(self, namespace: str, version: str) -> None:
        query = {"labelSelector": self.label, "resourceVersion": version, "allowWatchBookmarks": "true"}
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
        self._objects.setdefault(namespace, {}).setdefault(key, {})[obj["metadata"]["uid"]] = self.summarize(obj)
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
