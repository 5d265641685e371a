"""The adapter agent: a serving pod's sidecar for `canary.adapterRollout: InPlace` (vLLM).

The operator writes what a pod should serve into the pod's `adapterops.io/adapters` annotation (JSON,
served name -> adapter URI); a downward API volume makes it a file the kubelet rewrites when the
annotation changes, so the pod needs no API access. The agent fetches each adapter into
`<root>/<name>/<version>` (version: the first 12 hex digits of the URI's SHA-256, so a new URI is a new
folder and the engine never reads a half-replaced one), then calls vLLM's run-time API
(`POST /v1/load_lora_adapter {lora_name, lora_path}`, `POST /v1/unload_lora_adapter {lora_name}`,
mounted with VLLM_ALLOW_RUNTIME_LORA_UPDATING; vllm/entrypoints/openai/serving_models.py). vLLM refuses
to load a name that is loaded (400), so replacing an adapter behind the same served name is unload + load:
before it the agent turns its readiness off and waits `drain` seconds, so that load balancers stop
sending this pod requests that would 404 in between.

What is loaded is the engine's own answer (`GET /v1/models`: each adapter's `root` is the path it was
loaded from, whose last part is the version), never the agent's belief. `GET /status` reports wanted,
loaded and the last error (the operator reads it: status.replicas); `GET /ready` is 200 only while every
wanted adapter is loaded at its wanted version, and nothing else (the container's readiness probe: the pod
is Ready only with its adapters, "loaded on this pod", not "running").
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from adapterops_common import storage

log = logging.getLogger("adapterops.agent")

AGENT_PORT = 8001
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def version_of_uri(uri: str) -> str:
    """An adapter version's name: the first 12 hex digits of the SHA-256 of its URI."""
    return hashlib.sha256(uri.encode()).hexdigest()[:12]


def wanted_annotation(adapters: dict[str, str]) -> str:
    """The pod annotation's value: served name -> URI, canonical JSON (equal sets compare equal)."""
    return json.dumps(dict(sorted(adapters.items())), separators=(",", ":"))


def loaded_versions(models: dict[str, Any]) -> dict[str, str]:
    """Served adapter name -> version, from an OpenAI `/v1/models` answer (adapters have a parent)."""
    out: dict[str, str] = {}
    for card in models.get("data") or []:
        if isinstance(card, dict) and card.get("parent") and card.get("id") and card.get("root"):
            out[str(card["id"])] = Path(str(card["root"])).name
    return out


class Agent:
    def __init__(self, root: Path, wanted: Path, engine: str, http: httpx.Client, drain: float = 3.0) -> None:
        self.root, self.wanted_file, self.engine, self.http, self.drain = root, wanted, engine.rstrip("/"), http, drain
        self.lock = threading.Lock()
        self.wanted: dict[str, str] | None = None  # name -> URI; None: no annotation yet
        self.loaded: dict[str, str] = {}  # name -> version, as the engine last said
        self.error = ""
        self.swapping = False
        # A version the engine refused is tried again only after this long: each try takes the pod out of
        # the Service for the drain, so a refusal must not become a flapping pod.
        self.retry_seconds = 30.0
        self.refused: dict[tuple[str, str], float] = {}

    # ------------------------------------------------------------------ what is asked, what is loaded

    def read_wanted(self) -> dict[str, str] | None:
        try:
            text = self.wanted_file.read_text().strip()
        except FileNotFoundError:
            return None
        if not text:
            return None  # the annotation is not set yet: the downward API writes an empty file
        doc = json.loads(text)
        if not isinstance(doc, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in doc.items()):
            raise ValueError(f"{self.wanted_file}: not a JSON object of name -> URI")
        return doc

    def engine_loaded(self) -> dict[str, str]:
        response = self.http.get(f"{self.engine}/v1/models", timeout=5.0)
        response.raise_for_status()
        return loaded_versions(response.json())

    def ready(self) -> bool:
        with self.lock:
            if self.wanted is None or self.swapping:
                return False
            want = {name: version_of_uri(uri) for name, uri in self.wanted.items()}
            return want == self.loaded

    def status(self) -> dict[str, Any]:
        with self.lock:
            wanted = None if self.wanted is None else {n: version_of_uri(u) for n, u in self.wanted.items()}
            body = {"wanted": wanted, "loaded": dict(self.loaded), "error": self.error, "swapping": self.swapping}
        return {**body, "ready": self.ready()}

    # ------------------------------------------------------------------ one pass

    def step(self) -> None:
        """Make the engine serve what the annotation asks for; record the first failure."""
        try:
            wanted = self.read_wanted()
            with self.lock:
                self.wanted = wanted
            loaded = self.engine_loaded()
            with self.lock:
                self.loaded = loaded
            if wanted is None:
                return
            for name, uri in sorted(wanted.items()):
                version = version_of_uri(uri)
                refused_at = self.refused.get((name, version))
                if refused_at is not None and time.monotonic() - refused_at < self.retry_seconds:
                    continue  # the error it gave stays reported
                if loaded.get(name) != version:
                    self._swap(name, uri, version, previous=loaded.get(name))
            for name in sorted(set(loaded) - set(wanted)):
                self._post("/v1/unload_lora_adapter", {"lora_name": name}, ok=(200, 404))
            with self.lock:
                self.loaded = self.engine_loaded()
                asked = {(n, version_of_uri(u)) for n, u in wanted.items()}
                if not any(time.monotonic() - t < self.retry_seconds for k, t in self.refused.items() if k in asked):
                    self.error = ""
        except (OSError, ValueError, httpx.HTTPError, storage.UriError, AgentError) as exc:
            message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, AgentError) else str(exc)
            if message != self.error:
                log.warning("%s", message)
            with self.lock:
                self.error = message[:1000]
            try:  # what is loaded now is still the engine's answer (a refused load after the unload: nothing)
                loaded = self.engine_loaded()
                with self.lock:
                    self.loaded = loaded
            except (OSError, ValueError, httpx.HTTPError):
                pass
        finally:
            with self.lock:
                self.swapping = False

    def _swap(self, name: str, uri: str, version: str, previous: str | None) -> None:
        dest = self.root / name / version
        if not all((dest / f).is_file() for f in ADAPTER_FILES):
            started = time.monotonic()
            storage.install_tree(uri, dest)
            missing = [f for f in ADAPTER_FILES if not (dest / f).is_file()]
            if missing:
                raise AgentError(f"adapter {name}: {uri} is not an adapter (missing {', '.join(missing)})")
            log.info("fetched %s (%s) in %.2fs", name, uri, time.monotonic() - started)
        if previous is not None:
            # Out of the Service's endpoints before the name goes away for the load's duration.
            with self.lock:
                self.swapping = True
            time.sleep(self.drain)
            self._post("/v1/unload_lora_adapter", {"lora_name": name}, ok=(200, 404))
        try:
            self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(dest)}, ok=(200,))
        except AgentError:
            self.refused[(name, version)] = time.monotonic()
            old = self.root / name / previous if previous else None
            if old is not None and old.is_dir():  # the engine refused the new one: serve the old one again
                self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(old)}, ok=(200,))
            raise
        log.info("loaded %s version %s", name, version)
        for old in (self.root / name).iterdir():  # earlier versions: no longer loaded, never read again
            if old.name != version and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)

    def _post(self, path: str, body: dict[str, str], ok: tuple[int, ...]) -> None:
        response = self.http.post(f"{self.engine}{path}", json=body, timeout=600.0)
        if response.status_code not in ok:
            try:
                detail = str(response.json().get("message", ""))[:300]
            except ValueError:
                detail = ""
            raise AgentError(f"{path} {body.get('lora_name')}: HTTP {response.status_code} {detail}".rstrip())

    def run(self, stop: threading.Event, interval: float = 0.5) -> None:
        while not stop.is_set():
            self.step()
            stop.wait(interval)


class AgentError(Exception):
    """The engine refused a load or unload, or a fetched folder is no adapter: the message says which."""


def serve(agent: Agent, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/ready":
                ready = agent.ready()
                self._send(200 if ready else 503, {"ready": ready})
            elif self.path == "/status":
                self._send(200, agent.status())
            else:
                self._send(404, {"error": "not found"})

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every second: not worth a log line

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="agent-http").start()
    return server
