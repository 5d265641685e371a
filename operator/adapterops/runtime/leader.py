"""Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does it.

Every replica runs the informers (a standby's views are warm, so taking over costs no relisting); only
the leader runs the workers. A candidate takes the Lease when it is free or when its record (holder and
renew time) has not changed for `lease_seconds` by the candidate's own clock — observed time, not the
holder's timestamps, so clock skew between nodes cannot shorten a lease. Writes are conditional on the
resourceVersion, so two candidates never both win. The leader renews every `retry_seconds`; if it cannot
renew for `renew_deadline_seconds` it stops leading, which is before any other replica may take over;
`run` then returns and may be called again: the manager ends the term and stands as a candidate anew
(no process restart, unlike client-go's operators, which exit). Taking the lease is announced by an
Event on the Lease ("<identity> became leader", as client-go's resource locks record it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx2
from lightkube.resources.coordination_v1 import Lease

from adapterops.runtime.client import Client
from adapterops.runtime.events import EventRecorder
from adapterops.runtime.metrics import LEADER

log = logging.getLogger(__name__)


def _micro_time() -> str:
    """metav1.MicroTime: RFC 3339 with microseconds, UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LeaderElection:
    client: Client
    namespace: str
    identity: str
    name: str = "adapterops"
    lease_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_seconds: float = 2.0
    events: EventRecorder | None = None
    leading: asyncio.Event = field(default_factory=asyncio.Event)
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    # The last record seen of another holder, and when this process saw it change.
    _observed: tuple[Any, ...] | None = None
    _observed_at: float = 0.0
    _lease: dict[str, Any] | None = None  # as last written by this replica

    def __post_init__(self) -> None:
        if not self.renew_deadline_seconds < self.lease_seconds:
            raise ValueError("the renew deadline must be shorter than the lease, or two replicas could lead at once")
        LEADER.labels(self.identity).set(0)

    async def run(self) -> None:
        """Acquire, then renew until the lease is lost (then `lost` is set and this returns)."""
        self.lost.clear()
        while True:  # polling, as client-go does: the Lease has no event to wait on between expiries
            if await self._try():
                break
            await asyncio.sleep(self.retry_seconds)
        log.info("leading as %s (lease %s/%s)", self.identity, self.namespace, self.name)
        LEADER.labels(self.identity).set(1)
        self.leading.set()
        await self._announce()
        last_renewal = time.monotonic()
        while True:
            await asyncio.sleep(self.retry_seconds)
            if await self._try():
                last_renewal = time.monotonic()
            elif time.monotonic() - last_renewal > self.renew_deadline_seconds:
                log.error(
                    "lost the lease %s/%s: not renewed for %.0fs",
                    self.namespace,
                    self.name,
                    self.renew_deadline_seconds,
                )
                LEADER.labels(self.identity).set(0)
                self.leading.clear()
                self.lost.set()
                return

    async def release(self) -> None:
        """On a clean stop: give the lease up so a standby takes over at once instead of after it expires."""
        if not self.leading.is_set():
            return
        try:
            lease = await self.client.get(Lease, self.namespace, self.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"] = {**lease["spec"], "holderIdentity": None, "leaseDurationSeconds": 1}
                await self.client.replace(lease)
        except (httpx2.HTTPError, OSError) as exc:
            log.warning("could not release the lease: %s", exc)
        LEADER.labels(self.identity).set(0)

    async def _announce(self) -> None:
        """An Event on the Lease: who leads from now on (best effort, as every Event)."""
        if self.events is None or self._lease is None:
            return
        body = {**self._lease, "apiVersion": "coordination.k8s.io/v1", "kind": "Lease"}
        try:
            await self.events.emit(body, "LeaderElection", f"{self.identity} became leader")
        except (httpx2.HTTPError, OSError) as exc:
            log.warning("could not post the LeaderElection event: %s", exc)

    async def _try(self) -> bool:
        """One attempt to acquire or renew; True when this replica holds the lease now."""
        try:
            lease = await self.client.get(Lease, self.namespace, self.name)
            now = _micro_time()
            if lease is None:
                self._lease = await self.client.create(self._record(None, now, now, 0))
                return self._lease is not None
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity")
            if holder and holder != self.identity and not self._expired(spec):
                return False
            transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
            # Renewing keeps the term's start; a record of this replica's own lost term starts a new one.
            renewing = holder == self.identity and self.leading.is_set()
            acquired = spec.get("acquireTime") if renewing else now
            self._lease = await self.client.replace(self._record(lease, acquired, now, transitions))
            return True
        except (httpx2.HTTPError, OSError) as exc:  # a 409 (another candidate won the race) included
            log.info("lease %s/%s: %s", self.namespace, self.name, exc)
            return False

    def _expired(self, spec: dict[str, Any]) -> bool:
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        duration = float(spec.get("leaseDurationSeconds") or self.lease_seconds)
        return time.monotonic() - self._observed_at > duration

    def _record(
        self, current: dict[str, Any] | None, acquired: str | None, renewed: str, transitions: int
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if current is not None:
            metadata["resourceVersion"] = current["metadata"]["resourceVersion"]
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.lease_seconds),
                "acquireTime": acquired,
                "renewTime": renewed,
                "leaseTransitions": transitions,
            },
        }
