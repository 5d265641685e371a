"""A stand-in for NIM (and vLLM) serving containers: real HTTP, real Prometheus histograms.

It cannot run a GPU engine, so it answers the shipped challenge prompts with their reference answer
(with probability STANDIN_QUALITY, otherwise a degraded answer), after a log-normal delay, and
exports what the engine exports under the engine's metric names. Tests set latency, error rate and
quality through the container's environment (a change of env is a new revision, as for the engine).

    python -m testworld.nim [--engine nim|vllm] [vllm flags ...]

Environment: POD_IP (bind address; the kubelet harness sets it), NIM_SERVER_PORT (8000),
NIM_PEFT_SOURCE (adapter directory; one folder per served adapter), NIM_SERVED_MODEL_NAME,
STANDIN_LATENCY_MEDIAN (seconds, 0.05), STANDIN_LATENCY_SIGMA (log-normal sigma, 0.35),
STANDIN_ERROR_RATE (0), STANDIN_QUALITY (0.9), STANDIN_STARTUP_SECONDS (0.5).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import time
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

REPO = Path(__file__).resolve().parents[2]
CHALLENGE = REPO / "training-jobs" / "datasets" / "commerce" / "challenge.jsonl"
# Log-spaced from 10 ms to 10 s: fine enough for the short latencies the tests use.
BUCKETS = tuple(round(0.01 * 10 ** (i / 8), 4) for i in range(25))


def references() -> dict[str, str]:
    out = {}
    for line in CHALLENGE.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            out[row["prompt"].strip()] = row["reference"]
    return out


def degrade(answer: str, rng: random.Random) -> str:
    """A plausible but worse answer: constraints dropped, words shuffled."""
    words = answer.split()
    keep = words[: max(1, len(words) // 3)]
    rng.shuffle(keep)
    return " ".join([*keep, "item"])


class StandIn:
    def __init__(self, engine: str, served: str, adapter_dir: Path | None, lora_modules: dict[str, str]) -> None:
        self.engine = engine
        self.served = served
        self.adapter_dir = adapter_dir
        self.lora_modules = lora_modules
        self.median = float(os.environ.get("STANDIN_LATENCY_MEDIAN", "0.05"))
        self.sigma = float(os.environ.get("STANDIN_LATENCY_SIGMA", "0.35"))
        self.error_rate = float(os.environ.get("STANDIN_ERROR_RATE", "0"))
        self.quality = float(os.environ.get("STANDIN_QUALITY", "0.9"))
        self.ready_at = time.monotonic() + float(os.environ.get("STANDIN_STARTUP_SECONDS", "0.5"))
        self.rng = random.Random(int(os.environ.get("STANDIN_SEED", "0")) or None)
        self.refs = references()
        prefix = "vllm:" if engine == "vllm" else ""
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            f"{prefix}e2e_request_latency_seconds",
            "End-to-end request latency.",
            ["model_name"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "http_requests", "HTTP requests by status.", ["handler", "status"], registry=self.registry
        )
        self.success = Counter(f"{prefix}request_success", "Finished requests.", ["model_name"], registry=self.registry)

    def models(self) -> list[str]:
        names = set(self.lora_modules)
        if self.adapter_dir and self.adapter_dir.is_dir():
            names |= {p.name for p in self.adapter_dir.iterdir() if (p / "adapter_config.json").exists()}
        return sorted(names)

    def answer(self, model: str, prompt: str) -> str:
        reference = self.refs.get(prompt.strip())
        if reference is None:
            return f"search: {prompt.strip()[:80]}"
        # Quality is a property of the (model, prompt) pair: the same question gets the same answer.
        digest = int(hashlib.sha256(f"{model}|{prompt}|{self.quality}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        return reference if digest < self.quality else degrade(reference, random.Random(digest))

    async def chat(self, request: web.Request) -> web.Response:
        start = time.monotonic()
        body = await request.json()
        model = body.get("model", "")
        if model not in (self.served, *self.models()):
            self.requests.labels("/v1/chat/completions", "404").inc()
            return web.json_response({"error": {"message": f"model {model!r} not found"}}, status=404)
        delay = self.median * math.exp(self.sigma * self.rng.gauss(0, 1))
        await asyncio.sleep(delay)
        if self.rng.random() < self.error_rate:
            self.requests.labels("/v1/chat/completions", "500").inc()
            self.latency.labels(model).observe(time.monotonic() - start)
            return web.json_response({"error": {"message": "internal error"}}, status=500)
        prompt = next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
        text = self.answer(model, prompt)
        self.latency.labels(model).observe(time.monotonic() - start)
        self.success.labels(model).inc()
        self.requests.labels("/v1/chat/completions", "200").inc()
        return web.json_response(
            {
                "id": f"chatcmpl-{self.rng.getrandbits(32):08x}",
                "object": "chat.completion",
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())},
            }
        )

    async def list_models(self, _: web.Request) -> web.Response:
        data = [{"id": self.served, "object": "model"}] + [
            {"id": m, "object": "model", "parent": self.served} for m in self.models()
        ]
        return web.json_response({"object": "list", "data": data})

    async def ready(self, _: web.Request) -> web.Response:
        ok = time.monotonic() >= self.ready_at
        return web.json_response({"ready": ok}, status=200 if ok else 503)

    async def live(self, _: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), content_type="text/plain")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.list_models)
        if self.engine == "nim":
            app.router.add_get("/v1/health/ready", self.ready)
            app.router.add_get("/v1/health/live", self.live)
            app.router.add_get("/v1/metrics", self.metrics)
        else:
            app.router.add_get("/health", self.ready)
            app.router.add_get("/metrics", self.metrics)
        return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["nim", "vllm"], default="nim")
    parser.add_argument("--port", type=int, default=int(os.environ.get("NIM_SERVER_PORT", "8000")))
    parser.add_argument("--served-model-name", default=os.environ.get("NIM_SERVED_MODEL_NAME", "base"))
    parser.add_argument("--lora-modules", nargs="*", default=[])
    args, _unknown = parser.parse_known_args()  # the engine's other flags (TP, max rank...) mean nothing here
    adapter_dir = os.environ.get("NIM_PEFT_SOURCE")
    lora = dict(m.split("=", 1) for m in args.lora_modules)
    standin = StandIn(args.engine, args.served_model_name, Path(adapter_dir) if adapter_dir else None, lora)
    web.run_app(standin.app(), host=os.environ.get("POD_IP", "127.0.0.1"), port=args.port, print=None)


if __name__ == "__main__":
    main()
