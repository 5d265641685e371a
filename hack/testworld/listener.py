"""An HTTP server that records every request and answers 404 with a secret-looking body: the stand-in
for an address a tenant should not reach through the operator (a metadata endpoint, an admin API).
Tests assert it received nothing, or that what it answered never reached a status. Test double only.

    with Listener() as server:             # 127.0.0.1, ephemeral port
        url = server.url                     # http://127.0.0.1:PORT
        server.paths()                       # request paths so far
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

BODY = "AccessKeyId=ASIA-LISTENER-SECRET; Token=listener-secret-token"


class Listener:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                with outer._lock:
                    outer._paths.append(self.path)
                body = BODY.encode()
                self.send_response(404)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def paths(self) -> list[str]:
        with self._lock:
            return list(self._paths)

    def start(self) -> Listener:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Listener:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
