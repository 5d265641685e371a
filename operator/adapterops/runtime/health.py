"""Health endpoints, served from a thread so that a stuck event loop is seen, not hidden:

- `/healthz` (liveness) fails when the event loop has not ticked for `loop_stall_seconds`, or when an
  informer has been failing for longer than `watch_dead_seconds` (a restart may cure it; RBAC refusals
  do not count, a restart would not cure them);
- `/readyz` (readiness) is true once this replica leads and every informer has listed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, str]]


class HealthServer:
    def __init__(self, address: str, port: int, live: Check, ready: Check) -> None:
        checks = {"/healthz": live, "/readyz": ready}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                check = checks.get(self.path.split("?")[0])
                if check is None:
                    self.send_error(404)
                    return
                ok, message = check()
                body = (message or ("ok" if ok else "failing")).encode() + b"\n"
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # probes every few seconds: no log
                return

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="health", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class LoopHeartbeat:
    """A task that records that the event loop runs; read from the health thread."""

    def __init__(self, every: float = 2.0) -> None:
        self.every = every
        self.last = time.monotonic()

    async def run(self) -> None:
        while True:
            self.last = time.monotonic()
            await asyncio.sleep(self.every)

    def age(self) -> float:
        return time.monotonic() - self.last
