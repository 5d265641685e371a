"""Kubernetes Events on our objects (core/v1, the kind `kubectl describe` and `kubectl events` show)."""

from __future__ import annotations

import logging
from typing import Any, Literal

from adapterops.runtime.client import ApiException, Kube
from adapterops.runtime.conditions import now_iso

log = logging.getLogger(__name__)


async def emit(
    kube: Kube, obj: dict[str, Any], reason: str, message: str, type_: Literal["Normal", "Warning"] = "Normal"
) -> None:
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
        "message": message[:1024],
        "type": type_,
        "source": {"component": "adapterops"},
        "reportingComponent": "adapterops.io/operator",
        "reportingInstance": "adapterops",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        await kube.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=event)
    except ApiException as exc:
        log.warning("could not post event %s on %s: %s", reason, meta["name"], exc.reason)
