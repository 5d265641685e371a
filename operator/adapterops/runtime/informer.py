"""Informers: list then watch one kind (label-selected on the server), keep a small summary per object,
and wake the work queues of the objects it concerns. The same machinery serves our own kinds and their
children (trial Jobs and pods, JobSets, PyTorchJobs, serving Deployments and pods).

An event costs a JSON decode, a summary and, when the summary changed, the subscribers' calls: most
updates of a pod or Job touch nothing a reconcile reads and wake nobody. Items are grouped for lookups
(children by their owner's namespace and UID, so a deleted and re-created owner of the same name never
inherits the old children, and an object of another namespace carrying the owner's labels is never one;
our own objects by namespace and name). Add-on kinds (JobSet, PyTorchJob) may be absent
or removed at run time: while the API server does not serve them the view is empty and the kind is
looked for again every `poll_seconds` or when poked. Any failure (a 410, a dropped or silent
connection, a 403 in one namespace) restarts that namespace's list and watch after a backoff; the
other namespaces carry on. `synced_in(namespace)` says whether a namespace has been listed, so a
reconcile never mistakes a not-yet-listed view for lost children.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx2
from lightkube import ALL_NS
from lightkube.core.resource import NamespacedResource

from adapterops.runtime.client import Client, status_code, type_not_served
from adapterops.runtime.metrics import WATCH_ERRORS
from adapterops.runtime.workqueue import Key

log = logging.getLogger(__name__)

T = TypeVar("T")

WATCH_SECONDS = 300  # the server closes each watch after this; lightkube reopens it from the last version
RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0


# Items are grouped in their namespace, by (namespace, owner's UID) for children and (namespace, name) for
# our own objects: a lookup always names the namespace, so an object in one namespace can never be taken
# for another namespace's child, whatever labels it carries.
Group = tuple[str, str]


@dataclass(frozen=True)
class Item(Generic[T]):
    """One object as the reconcilers see it."""

    uid: str
    group: Group  # what lookups ask for: (namespace, owner's UID) for children, (namespace, name) for our kinds
    key: Key  # the work-queue key this object wakes: its owner's (namespace, name), or its own
    data: T


Summarize = Callable[[Any], "Item[Any] | None"]  # None: not one of ours (a label or owner missing)


@dataclass
class Informer:
    client: Client
    res: type[NamespacedResource]
    summarize: Summarize
    labels: dict[str, Any] | None = None  # server-side label selector (lightkube's form)
    namespaces: tuple[str, ...] = ()  # empty: the whole cluster
    optional: bool = False  # an add-on's kind: absent is normal, looked for again
    poll_seconds: float = 30.0
    subscribers: list[Callable[[Key], None]] = field(default_factory=list)
    served: bool = True
    # namespace ("" for cluster-wide) -> group -> uid -> item
    _items: dict[str, dict[Group, dict[str, Item[Any]]]] = field(default_factory=dict)
    _listed: set[str] = field(default_factory=set)
    listed: asyncio.Event = field(default_factory=asyncio.Event)  # set once every namespace was listed
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    # namespace -> when its list/watch started failing (errors a restart of the process could cure)
    failing_since: dict[str, float] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return str(self.res._api_info.resource.kind)

    def subscribe(self, callback: Callable[[Key], None]) -> None:
        self.subscribers.append(callback)

    def resync(self) -> None:
        """Tell the subscribers every key in the view (new subscribers learn what is already known)."""
        for key in {item.key for item in self.all()}:
            self._tell(key)

    def poke(self) -> None:
        """Look for an absent kind now (the operator has just created one of it)."""
        self._wake.set()

    def items(self, group: Group) -> list[Item[Any]]:
        return [item for by_group in self._items.values() for item in by_group.get(group, {}).values()]

    def data(self, group: Group) -> list[Any]:
        return [item.data for item in self.items(group)]

    def one(self, group: Group) -> Any | None:
        found = self.items(group)
        return found[0].data if found else None

    def all(self) -> list[Item[Any]]:
        return [item for by_group in self._items.values() for g in by_group.values() for item in g.values()]

    def synced_in(self, namespace: str) -> bool:
        return "" in self._listed or namespace in self._listed

    @property
    def synced(self) -> bool:
        return len(self._listed) == len(self.namespaces or ("",))

    async def run(self) -> None:
        await asyncio.gather(*(self._run_one(ns) for ns in (self.namespaces or ("",))))

    async def _run_one(self, namespace: str) -> None:
        failures = 0
        while True:
            try:
                version = await self._list(namespace)
                failures = 0
                self.failing_since.pop(namespace, None)
                if version is None:  # the kind is not served: wait for it
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                    continue
                await self._watch(namespace, version)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # supervised: any failure restarts this namespace after a backoff
                failures += 1
                delay: float = min(RETRY_SECONDS * 2.0 ** (failures - 1), MAX_RETRY_SECONDS)
                status = status_code(exc)
                WATCH_ERRORS.labels(self.kind, namespace or "*", str(status or type(exc).__name__)).inc()
                if status == 410:
                    delay = 0  # the version expired: list again at once
                elif status in (401, 403):
                    # Not allowed here: say so, and let the other namespaces' work go on meanwhile.
                    log.error("%s in %r: %s; retrying in %.0fs", self.kind, namespace, exc, delay)
                    self._mark_listed(namespace)
                else:
                    self.failing_since.setdefault(namespace, time.monotonic())
                    log.warning("%s watch in %r: %r; relisting in %.0fs", self.kind, namespace or "*", exc, delay)
                await asyncio.sleep(delay)

    async def _list(self, namespace: str) -> str | None:
        listing = self.client.api.list(self.res, namespace=namespace or ALL_NS, labels=self.labels)
        try:
            objects = [o async for o in listing]
        except httpx2.HTTPStatusError as exc:
            if self.optional and type_not_served(exc):
                self.served = False
                self._replace(namespace, [])
                return None
            raise
        self.served = True
        self._replace(namespace, objects)
        return str(listing.resourceVersion)

    async def _watch(self, namespace: str, version: str) -> None:
        stream = self.client.api.watch(
            self.res,
            namespace=namespace or ALL_NS,
            labels=self.labels,
            resource_version=version,
            server_timeout=WATCH_SECONDS,
        )
        async for event, obj in stream:
            if event == "DELETED":
                self._forget(namespace, obj)
            elif event in ("ADDED", "MODIFIED"):
                self._remember(namespace, obj)

    def _mark_listed(self, namespace: str) -> None:
        self._listed.add(namespace)
        if self.synced:
            self.listed.set()

    def _tell(self, key: Key) -> None:
        for callback in self.subscribers:
            callback(key)

    def _remember(self, namespace: str, obj: Any) -> None:
        item = self.summarize(obj)
        if item is None:
            return
        by_uid = self._items.setdefault(namespace, {}).setdefault(item.group, {})
        if by_uid.get(item.uid) != item:
            by_uid[item.uid] = item
            self._tell(item.key)

    def _forget(self, namespace: str, obj: Any) -> None:
        item = self.summarize(obj)
        if item is None:
            return
        by_group = self._items.get(namespace, {})
        if by_group.get(item.group, {}).pop(item.uid, None) is not None:
            if not by_group[item.group]:
                del by_group[item.group]
            self._tell(item.key)

    def _replace(self, namespace: str, objects: list[Any]) -> None:
        """A fresh listing: objects no longer there are forgotten, and every affected owner is told."""
        old = self._items.pop(namespace, {})
        new: dict[Group, dict[str, Item[Any]]] = {}
        for obj in objects:
            item = self.summarize(obj)
            if item is not None:
                new.setdefault(item.group, {})[item.uid] = item
        self._items[namespace] = new
        self._mark_listed(namespace)
        keys = {i.key for g in old.values() for i in g.values()} | {i.key for g in new.values() for i in g.values()}
        for key in keys:
            self._tell(key)


def requeue_referrers(
    objects: Informer, add: Callable[[Key], None], refers: Callable[[dict[str, Any], str], bool]
) -> Callable[[Key], None]:
    """A subscriber for another kind's informer: when (namespace, name) changes, queue each of `objects` in that
    namespace whose spec refers to `name` (`refers(spec, name)`); never an object of another namespace."""

    def changed(key: Key) -> None:
        namespace, name = key
        for item in objects.all():
            body = item.data
            if body["metadata"]["namespace"] == namespace and refers(body.get("spec") or {}, name):
                add(item.key)

    return changed
