"""Kubernetes Events on our objects (core/v1, the kind `kubectl describe` and `kubectl events` show)."""

from __future__ import annotations

import logging
from typing import Any, Literal

from lightkube.core.exceptions import ApiError

from adapterops.runtime.client import Client
from adapterops.runtime.clock import now_iso

log = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]
MESSAGE_LIMIT = 1024


class EventRecorder:
    def __init__(self, client: Client, component: str = "adapterops") -> None:
        self.client = client
        self.component = component

    async def emit(self, obj: dict[str, Any], reason: str, message: str, type_: EventType = "Normal") -> None:
        """Post an Event; a failure to post is logged, never fatal to the reconcile."""
        meta = obj["metadata"]
        now = now_iso()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj["apiVersion"],
                "kind": obj["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:MESSAGE_LIMIT],
            "type": type_,
            "source": {"component": self.component},
            "reportingComponent": f"adapterops.io/{self.component}",
            "reportingInstance": self.component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.client.create(event)
        except ApiError as exc:
            log.warning("could not post event %s on %s: %s", reason, meta["name"], exc)
