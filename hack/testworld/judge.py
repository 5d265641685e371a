"""Stand-in LLM judge: a small OpenAI-compatible chat-completions server that scores deterministically.

It reads the <reference> and <answer> sections of the judge prompt that `adapterops_common.judge`
builds and answers `{"score": 5 x token-F1(answer, reference) rounded half up, "reason": ...}`. A pairwise
prompt (`adapterops_common.pairwise`: <answer_a> and <answer_b>) gets `{"better": "A" | "B" | "tie"}`: the
answer whose score would be higher, a tie when both would score the same, so the verdict depends on the
answers' content only, never on their position. Tests can make it misbehave as real OpenAI-compatible
servers do, for every request (`mode`) or per judge model (`modes`):

    score          the deterministic verdict (default)
    garbage        prose instead of the JSON verdict
    bad-json       a 200 whose body is not a chat completion (an HTML proxy error page)
    out-of-range   a well-formed verdict with a score outside 0-5 (a judge that lies)
    error          503, overloaded
    server-error   500, an internal error
    hang           takes the request and answers nothing for as long as the mode lasts, then drops the
                   connection (a wedged server or proxy: the client's timeout is what ends it)
    prefer-first   a position-biased pairwise judge that always prefers answer A

and require an API key, to check that clients report trouble as unavailable/invalid instead of a score.
Test double only: not product code.

    python -m testworld.judge --port 8089 [--api-key KEY] [--mode score]

    with StandInJudge() as judge:          # in-process, ephemeral port
        url = judge.url                    # http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

MODES = ("score", "garbage", "bad-json", "out-of-range", "error", "server-error", "hang", "prefer-first")
_TOKEN = re.compile(r"[a-z0-9$]+(?:[.-][a-z0-9]+)*")
_SECTION = r"<{0}>\n(.*?)\n</{0}>"


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def token_f1(answer: str, reference: str) -> float:
    a, r = Counter(tokens(answer)), Counter(tokens(reference))
    common = sum((a & r).values())
    if not common:
        return 0.0
    precision, recall = common / sum(a.values()), common / sum(r.values())
    return 2 * precision * recall / (precision + recall)


def score_prompt(user_message: str) -> dict[str, Any]:
    """The deterministic verdict for one judge prompt."""
    answer = re.search(_SECTION.format("answer"), user_message, re.DOTALL)
    reference = re.search(_SECTION.format("reference"), user_message, re.DOTALL)
    if not answer:
        return {"score": 0, "reason": "no <answer> section"}
    if not reference:
        return {"score": 0, "reason": "no reference to compare with"}
    f1 = token_f1(answer.group(1), reference.group(1))
    # Half-up rounding (Python's round() would send 2.5 to 2).
    return {"score": int(5 * f1 + 0.5), "reason": f"token F1 {f1:.2f} against the reference"}


def prefer_prompt(user_message: str) -> dict[str, Any]:
    """The deterministic pairwise verdict: the better-scoring answer (rubric points), else a tie."""
    a = re.search(_SECTION.format("answer_a"), user_message, re.DOTALL)
    b = re.search(_SECTION.format("answer_b"), user_message, re.DOTALL)
    reference = re.search(_SECTION.format("reference"), user_message, re.DOTALL)
    if not a or not b or not reference:
        return {"better": "tie", "reason": "two answers and a reference are needed to prefer one"}
    points = [int(5 * token_f1(x.group(1), reference.group(1)) + 0.5) for x in (a, b)]
    better = "A" if points[0] > points[1] else "B" if points[1] > points[0] else "tie"
    return {"better": better, "reason": f"rubric points {points[0]} (A) vs {points[1]} (B)"}


def is_pairwise(user_message: str) -> bool:
    return "<answer_a>" in user_message and "<answer_b>" in user_message


class StandInJudge:
    """The server; attributes may be changed while it runs (tests flip `mode`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None, mode: str = "score") -> None:
        self.mode = mode
        self.modes: dict[str, str] = {}  # judge model -> mode, over `mode`
        self.api_key = api_key
        self.delay_s = 0.0  # seconds each judgement takes (a hosted judge: ~1-3 s); benchmarks set it
        self.requests = 0
        self.by_model: Counter[tuple[str, str]] = Counter()  # (model, mode) -> requests answered that way
        self.hanging = 0  # requests held open right now (mode hang)
        self.auth_headers: list[str | None] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> str:
        self._thread = threading.Thread(target=self._server.serve_forever, name="stand-in-judge", daemon=True)
        self._thread.start()
        return self.url

    def mode_for(self, model: str) -> str:
        return self.modes.get(model, self.mode)

    def stop(self) -> None:
        self._closing.set()  # hung requests let go
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=10)

    def __enter__(self) -> StandInJudge:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _hang(self, model: str) -> None:
        """Hold the request while the mode is hang (the caller then drops the connection, unanswered)."""
        with self._lock:
            self.requests += 1
            self.by_model[(model, "hang")] += 1
            self.hanging += 1
        try:
            while self.mode_for(model) == "hang" and not self._closing.wait(0.1):
                pass
        finally:
            with self._lock:
                self.hanging -= 1

    def _reply(self, body: dict[str, Any]) -> tuple[int, bytes, str]:
        model = str(body.get("model", ""))
        mode = self.mode_for(model)
        with self._lock:
            self.requests += 1
            self.by_model[(model, mode)] += 1
        if mode == "error":
            return 503, b'{"error": {"message": "judge overloaded"}}', "application/json"
        if mode == "server-error":
            return 500, b'{"error": {"message": "internal error", "type": "server_error"}}', "application/json"
        if mode == "bad-json":
            return 200, b"<html>upstream proxy error</html>", "text/html"
        messages = body.get("messages") or [{}]
        if mode == "garbage":
            content = "This answer looks quite good to me, maybe a four or so."
        elif mode == "out-of-range":
            content = json.dumps({"score": 9, "reason": "outstanding"})
        else:
            user = str(messages[-1].get("content", ""))
            if is_pairwise(user):
                verdict = {"better": "A", "reason": "first"} if mode == "prefer-first" else prefer_prompt(user)
                content = json.dumps(verdict)
            else:
                content = json.dumps(score_prompt(user))
        completion = {
            "id": f"chatcmpl-standin-{self.requests}",
            "object": "chat.completion",
            "model": body.get("model", "stand-in-judge"),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }
        return 200, json.dumps(completion).encode(), "application/json"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                return

            def _send(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                if self.path in ("/health", "/v1/health/ready"):
                    self._send(200, b'{"status": "ok"}')
                elif self.path == "/v1/models":
                    self._send(200, b'{"object": "list", "data": [{"id": "stand-in-judge", "object": "model"}]}')
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                auth = self.headers.get("Authorization")
                with judge._lock:
                    judge.auth_headers.append(auth)
                if self.path != "/v1/chat/completions":
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                if judge.api_key and auth != f"Bearer {judge.api_key}":
                    self._send(401, b'{"error": {"message": "invalid API key"}}')
                    return
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    self._send(400, b'{"error": {"message": "body is not JSON"}}')
                    return
                if judge.mode_for(str(body.get("model", ""))) == "hang":
                    judge._hang(str(body.get("model", "")))
                    self.close_connection = True  # no answer at all: the connection just closes
                    return
                if judge.delay_s > 0:
                    time.sleep(judge.delay_s)  # this request's thread only (ThreadingHTTPServer)
                self._send(*judge._reply(body))

        return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description="Stand-in OpenAI-compatible judge (test double).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--api-key", help="require this Bearer key")
    parser.add_argument("--mode", default="score", choices=MODES)
    args = parser.parse_args()
    judge = StandInJudge(args.host, args.port, args.api_key, args.mode)
    print(f"stand-in judge on {judge.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        judge._server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
