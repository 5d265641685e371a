"""The manager: one client, the informers, a work queue and workers per reconciler, health and metrics.

Workers start once every informer has listed every watched namespace (an empty view would look like
lost children); a key whose namespace some informer has not listed yet waits. A key is reconciled by one
worker at a time; failures back off per object (1 s doubling to 5 min, however many events arrive
meanwhile); every object is looked at again when its reconcile asks (level-based resync), and an object
that is gone is dropped from every per-object table.

With leader election, only the leader's workers run. A leader that cannot renew its lease (the API
server down or out of reach) stops its workers, drops its reconcilers with everything they held in
memory (another replica may have led meanwhile), and stands again as a candidate with fresh ones: the
process and its informers' views carry on, so an API server outage costs no restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx2
from prometheus_client import start_http_server

from adapterops.config import Config
from adapterops.runtime.client import Client, status_code
from adapterops.runtime.context import Context, Informers, Reconciler
from adapterops.runtime.events import EventRecorder
from adapterops.runtime.failures import Reported
from adapterops.runtime.health import HealthServer, LoopHeartbeat
from adapterops.runtime.leader import LeaderElection
from adapterops.runtime.metrics import API_ERRORS, RECONCILE_ERRORS, RECONCILE_SECONDS
from adapterops.runtime.status import StatusWriter
from adapterops.runtime.workqueue import Key, WorkQueue

log = logging.getLogger(__name__)

WORKERS_PER_KIND = 4
RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 300.0
NOT_SYNCED_RETRY_SECONDS = 1.0
LOOP_STALL_SECONDS = 60.0
WATCH_DEAD_SECONDS = 300.0


@dataclass
class Backoff:
    """Per-key retry delays that watch events cannot bypass."""

    failures: dict[Key, int] = field(default_factory=dict)
    until: dict[Key, float] = field(default_factory=dict)

    def wait(self, key: Key) -> float:
        return self.until.get(key, 0.0) - time.monotonic()

    def failed(self, key: Key) -> float:
        failures = self.failures[key] = self.failures.get(key, 0) + 1
        delay: float = min(RETRY_SECONDS * 2.0 ** (failures - 1), MAX_RETRY_SECONDS)
        self.until[key] = time.monotonic() + delay
        return delay

    def forget(self, key: Key) -> None:
        self.failures.pop(key, None)
        self.until.pop(key, None)


@dataclass
class Controller:
    """One reconciler with its queue, backoff and workers."""

    reconciler: Reconciler
    queue: WorkQueue
    backoff: Backoff = field(default_factory=Backoff)

    @property
    def kind(self) -> str:
        return self.reconciler.kind.kind


class Manager:
    def __init__(self, config: Config, client: Client, reconcilers: Sequence[type[Reconciler]]) -> None:
        self.config = config
        self.client = client
        self.events = EventRecorder(client)
        self.election = (
            LeaderElection(
                client,
                config.leader_election_namespace,
                identity=f"{config.pod_name or socket.gethostname()}_{uuid.uuid4().hex[:8]}",
                name=config.leader_election_name,
                lease_seconds=config.lease_seconds,
                renew_deadline_seconds=config.renew_deadline_seconds,
                retry_seconds=config.retry_seconds,
                events=self.events,
            )
            if config.leader_election
            else None
        )
        self.informers = Informers(client, config.namespaces)
        self.reconcilers = reconcilers
        self.controllers = self._controllers()
        self.heartbeat = LoopHeartbeat()
        self._tasks: list[asyncio.Task[None]] = []

    def _controllers(self) -> list[Controller]:
        """A reconciler per kind, each with a new queue and status writer (they subscribe to the informers)."""
        controllers = []
        for reconciler in self.reconcilers:
            queue = WorkQueue()
            status = StatusWriter(self.client, reconciler.kind, queue, self.config.status_write_seconds)
            ctx = Context(self.client, self.config, queue, status, self.events, self.informers)
            controllers.append(Controller(reconciler(ctx), queue))
        return controllers

    # ------------------------------------------------------------------ health

    def live(self) -> tuple[bool, str]:
        if self.heartbeat.age() > LOOP_STALL_SECONDS:
            return False, f"event loop stalled for {self.heartbeat.age():.0f}s"
        now = time.monotonic()
        for name, informer in self.informers.by_name.items():
            for namespace, since in informer.failing_since.items():
                if now - since > WATCH_DEAD_SECONDS:
                    return False, f"{name} informer failing in {namespace or 'all namespaces'} for {now - since:.0f}s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        """Ready once every informer has listed: the leader, and a standby able to take over at once."""
        pending = [name for name, i in self.informers.by_name.items() if not i.synced]
        if pending:
            return False, f"not listed yet: {', '.join(pending)}"
        role = "standby" if self.election is not None and not self.election.leading.is_set() else "leader"
        return True, role

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Until cancelled: informers on every replica, workers on the leader once every informer has
        listed; a lost lease ends the term (see the module's docstring), not the process."""
        self._tasks.append(asyncio.create_task(self.heartbeat.run()))
        for informer in self.informers.by_name.values():
            self._tasks.append(asyncio.create_task(informer.run()))
        elect = self.election
        election = asyncio.create_task(elect.run()) if elect is not None else None
        workers: list[asyncio.Task[None]] = []
        try:
            await asyncio.gather(*(i.listed.wait() for i in self.informers.by_name.values()))
            log.info("informers listed: %s", ", ".join(self.informers.by_name))
            if elect is None or election is None:
                workers = self._start_workers()
                await asyncio.gather(*self._tasks, *workers)
                return
            while True:
                leading = asyncio.create_task(elect.leading.wait())
                await asyncio.wait({election, leading}, return_when=asyncio.FIRST_COMPLETED)
                leading.cancel()
                if not elect.leading.is_set():
                    election.result()  # the election task ended without leading: raise what stopped it
                    raise RuntimeError("leader election ended without leading")
                workers = self._start_workers()
                await election  # returns once the lease could not be renewed
                await self._end_term(workers)
                workers = []
                election = asyncio.create_task(elect.run())
        finally:
            tasks = [*self._tasks, *workers, *([election] if election is not None else [])]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _start_workers(self) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(controller.queue.run_worker(self._guarded(controller)))
            for controller in self.controllers
            for _ in range(WORKERS_PER_KIND)
        ]

    async def _end_term(self, workers: list[asyncio.Task[None]]) -> None:
        """Stop acting at once (another replica may lead within the lease), then start the next term
        from the informers' views alone, as a new process would: fresh reconcilers, queues and backoffs,
        every known object queued."""
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for controller in self.controllers:
            controller.queue.close()
            close = getattr(controller.reconciler, "close", None)
            if close is not None:
                await close()
        for informer in self.informers.by_name.values():
            informer.subscribers.clear()
        self.controllers = self._controllers()
        for informer in self.informers.by_name.values():
            informer.resync()
        log.warning("stopped leading: workers stopped; standing again as a candidate")

    def _guarded(self, c: Controller) -> Callable[[Key], Awaitable[None]]:
        async def run(key: Key) -> None:
            start = time.monotonic()
            wait = c.backoff.wait(key)
            if wait > 0:  # a key that keeps failing waits out its backoff, however many events arrive
                c.queue.add_after(key, wait)
                return
            if not self.informers.synced_in(key[0]):
                c.queue.add_after(key, NOT_SYNCED_RETRY_SECONDS)
                return
            try:
                again = await c.reconciler.reconcile(key)
                c.backoff.forget(key)
                if again is None:
                    c.queue.forget(key)
                else:
                    c.queue.add_after(key, again)
            except Reported as exc:
                self._retry(c, key, f"reported in status: {exc}")
            except httpx2.HTTPStatusError as exc:  # lightkube's ApiError included
                code = status_code(exc)
                API_ERRORS.labels(c.kind, str(code)).inc()
                self._retry(c, key, f"API error {code}: {exc}")
            except Exception:
                log.exception("%s %s: reconcile failed", c.kind, key)
                self._retry(c, key, "unexpected error")
            finally:
                RECONCILE_SECONDS.labels(c.kind).observe(time.monotonic() - start)

        return run

    def _retry(self, c: Controller, key: Key, why: str) -> None:
        RECONCILE_ERRORS.labels(c.kind).inc()
        delay = c.backoff.failed(key)
        log.warning("%s %s: %s; retry %d in %.0fs", c.kind, key, why, c.backoff.failures[key], delay)
        c.queue.add_after(key, delay)


def serve(config: Config, reconcilers: Sequence[type[Reconciler]]) -> int:
    """Run the operator until SIGTERM or SIGINT: metrics and health servers, then the manager."""
    start_http_server(config.metrics_port, addr=config.bind_address)

    async def main() -> None:
        client = Client.connect(config.api_timeout_seconds)
        manager = Manager(config, client, reconcilers)
        health = HealthServer(config.bind_address, config.health_port, manager.live, manager.ready)
        health.start()
        task = asyncio.create_task(manager.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            if manager.election is not None:
                await manager.election.release()
            health.stop()
            for controller in manager.controllers:
                close = getattr(controller.reconciler, "close", None)
                if close is not None:
                    await close()
            await client.close()

    asyncio.run(main())
    return 0
