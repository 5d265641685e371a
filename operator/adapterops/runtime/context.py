"""What the manager hands each reconciler: a narrow context, and the protocol a reconciler keeps.

Reconcilers are peers: each gets its own work queue and status writer, the shared client, config
and event recorder, and asks the informer registry for the views it reads (shared between reconcilers
when they read the same kind). Neither imports the other.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Protocol

from lightkube.core.resource import NamespacedResource

from adapterops.api.kinds import Kind
from adapterops.config import Config
from adapterops.runtime.client import Client
from adapterops.runtime.events import EventRecorder
from adapterops.runtime.informer import Informer, Item, Summarize
from adapterops.runtime.status import StatusWriter
from adapterops.runtime.workqueue import Key, WorkQueue

# What a reconcile asks for: look again after this many seconds, or None when the object is gone
# (nothing keyed by it remains, and it is not looked at again until an event brings it back).
Result = float | None


def object_item(kind: Kind, body: dict[str, Any]) -> Item[dict[str, Any]]:
    """One of our own objects, keyed by namespace and name: whole but for the field-manager bookkeeping (list
    items may lack kind and apiVersion)."""
    meta = {k: v for k, v in body["metadata"].items() if k != "managedFields"}  # often the largest part
    key = (meta["namespace"], meta["name"])
    return Item(meta["uid"], key, key, {**body, "metadata": meta, "apiVersion": kind.api_version, "kind": kind.kind})


@dataclass
class Informers:
    """The operator's informers, created on first request and shared by name."""

    client: Client
    namespaces: tuple[str, ...]
    by_name: dict[str, Informer] = field(default_factory=dict)

    def get(
        self,
        name: str,
        res: type[NamespacedResource],
        summarize: Summarize,
        labels: dict[str, Any] | None = None,
        optional: bool = False,
    ) -> Informer:
        if name not in self.by_name:
            self.by_name[name] = Informer(
                self.client, res, summarize, labels=labels, namespaces=self.namespaces, optional=optional
            )
        return self.by_name[name]

    def of(self, kind: Kind) -> Informer:
        """The informer of one of our kinds (whole objects by (namespace, name))."""
        return self.get(kind.plural, kind.resource, functools.partial(object_item, kind))

    def synced_in(self, namespace: str) -> bool:
        return all(i.synced_in(namespace) for i in self.by_name.values())


@dataclass
class Context:
    client: Client
    config: Config
    queue: WorkQueue
    status: StatusWriter
    events: EventRecorder
    informers: Informers


class Reconciler(Protocol):
    kind: Kind

    def __init__(self, ctx: Context) -> None: ...

    async def reconcile(self, key: Key) -> Result: ...
