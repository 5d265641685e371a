"""A stand-in for the NIM and vLLM serving containers: real HTTP, real Prometheus series, and exactly the
behaviour testworld/engines.py documents for the engine version the image is (docs/engines.md): its
port, health and metrics paths, metric names, labels and bucket bounds, its HTTP counter or the lack of
one, NIM's model profiles (a pinned profile that does not fit the GPUs stops start-up), adapters listed
only once loaded, and how a failing request is counted. It cannot run a model, so it answers the shipped
challenge prompts with their reference answer (with probability STANDIN_QUALITY, otherwise a degraded
answer) after a log-normal delay.

    python nim.py --image IMAGE [--visible-gpus N] [--gpu-product NAME] [engine flags ...]

`--image` says which engine version to be (engines.by_image); `--visible-gpus` and `--gpu-product` are
what the device plugin and nvidia-smi would tell the engine (the test world's kubelet command passes
them from the pod: `command`). Engine settings as the real one reads them: NIM from its environment
(NIM_SERVER_PORT, NIM_SERVED_MODEL_NAME, NIM_PEFT_SOURCE, NIM_PEFT_REFRESH_INTERVAL, NIM_MAX_LORA_RANK,
NIM_MODEL_PROFILE), vLLM from its flags (--port, --model, --served-model-name, --tensor-parallel-size,
--enable-lora, --max-lora-rank, --lora-modules). POD_IP is the bind address (the kubelet harness sets it).
vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING also loads and unloads adapters at run time
(/v1/load_lora_adapter, /v1/unload_lora_adapter).
Test knobs: STANDIN_LATENCY_MEDIAN (seconds, 1.0), STANDIN_LATENCY_SIGMA (log-normal sigma, 0.35),
STANDIN_ERROR_RATE (0), STANDIN_QUALITY (0.9), STANDIN_STARTUP_SECONDS (0.5), STANDIN_SEED,
STANDIN_LORA_LOAD_SECONDS (a run-time adapter load's duration, 0), STANDIN_HARDWARE_LATENCY (below); per
adapter, a `standin.json` in its folder ({"latency_factor": x, "error_rate": p}) makes requests for that
adapter slower or failing.

Load: at most STANDIN_MAX_NUM_SEQS requests (64, what num_request_max reports) run at once, as vLLM's
--max-num-seqs bounds a batch; the rest wait in a queue (num_requests_waiting counts them) and their
end-to-end latency and time to first token include the wait, as the engines' do (both are measured from
the request's arrival). STANDIN_BATCH_SLOWDOWN (0) makes a bigger batch slower: a request admitted with n
others running takes (1 + STANDIN_BATCH_SLOWDOWN x n) times its latency (decoding is memory-bound, so a
step's time grows with the batch). Both are the stand-in's own model, not a measured engine's.

Hardware: every request's latency is multiplied by a factor of the GPU type (from --gpu-product) and the
tensor parallelism the engine runs (NIM: its profile's TP; vLLM: --tensor-parallel-size), from
STANDIN_HARDWARE_LATENCY, JSON `{"H100": {"1": 1.0, "4": 1.5}, "B200": {...}}` (GPU type matched as a
case-insensitive substring of the product; a TP it does not list: 1.0). The default, PAPER_LATENCY, is
the paper's figures: B200 faster than H100 by 35% / 18% / 6% at TP 1 / 2 / 4, TP 4 slower than TP 1 by
50% on H100 and 27% on B200. Those figures do not fit one multiplicative latency model (with the first
three, B200 TP 4 is 1.5 x 0.94 / 0.65 = 2.17x its TP 1, not 1.27x): the default keeps the GPU comparison
at every TP and H100's TP effect; tests that need the other reading set the table themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script by the kubelet harness
from testworld import engines
from testworld.engines import EngineVersion, Profile

REPO = Path(__file__).resolve().parents[2]
CHALLENGE = REPO / "training-jobs" / "datasets" / "commerce" / "challenge.jsonl"
VLLM_RANKS = {"vllm-0.11": (8, 16, 32, 64, 128, 256, 320, 512), "vllm-0.34": (1, 8, 16, 32, 64, 128, 256, 320, 512)}
# Handlers prometheus-fastapi-instrumentator leaves out of http_requests_total in vLLM.
UNCOUNTED = {"/metrics", "/health", "/load", "/ping", "/version", "/server_info"}
THIS = str(Path(__file__).resolve())
# Latency factor per GPU type and TP, relative to H100 at TP 1 (see the module docstring). H100 TP 2 (and
# TP 8) are not in the paper: geometric interpolation (extrapolation) of its TP 1 -> TP 4 effect, ours.
_H100 = {1: 1.0, 2: 1.5**0.5, 4: 1.5, 8: 1.5**1.5}
PAPER_LATENCY: dict[str, dict[int, float]] = {
    "H100": _H100,
    "B200": {1: _H100[1] * (1 - 0.35), 2: _H100[2] * (1 - 0.18), 4: _H100[4] * (1 - 0.06), 8: _H100[8] * (1 - 0.06)},
}


def hardware_factor(table: dict[str, dict[int, float]], product: str, tp: int) -> float:
    """The latency factor of a GPU product at a TP (1.0 for a GPU or TP the table does not list)."""
    for gpu, by_tp in table.items():
        if gpu.lower() in product.lower():
            return float(by_tp.get(tp, 1.0))
    return 1.0


def hardware_table(text: str | None) -> dict[str, dict[int, float]]:
    if not text:
        return PAPER_LATENCY
    return {gpu: {int(tp): float(f) for tp, f in by_tp.items()} for gpu, by_tp in json.loads(text).items()}


class StartupError(Exception):
    """The engine would not start: the message is what it prints, the process exits 1."""


def command(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """The kubelet harness's command for a serving container: this stand-in, told the image and the GPUs
    the pod was given (its GPU limit, its node's GPU product from the node selector)."""
    limits = (container.get("resources") or {}).get("limits") or {}
    gpus = next((str(v) for k, v in limits.items() if k.endswith("/gpu")), "0")
    product = (pod["spec"].get("nodeSelector") or {}).get("nvidia.com/gpu.product", "")
    return ["python", THIS, "--image", container["image"], "--visible-gpus", gpus, "--gpu-product", product]


def serving_images() -> dict[str, Callable[[dict[str, Any], dict[str, Any]], list[str]]]:
    """Image prefix -> command, for testworld.kubelet.Kubelet(images=...)."""
    return {"nvcr.io/nim/": command, "vllm/vllm-openai": command}


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


def adapter_rank(path: Path) -> int | None:
    """The LoRA rank of an adapter folder (HF `adapter_config.json`, key r), None when it is not one."""
    config = path / "adapter_config.json"
    if not config.is_file():
        return None
    has_weights = any((path / w).is_file() for w in ("adapter_model.safetensors", "adapter_model.bin"))
    try:
        rank = json.loads(config.read_text()).get("r", 8)
    except (OSError, ValueError):
        return None
    return int(rank) if has_weights else None


def choose_profile(
    version: EngineVersion, image: str, pinned: str | None, gpus: int, product: str, lora: bool
) -> tuple[Profile, str]:
    """The profile NIM runs, and a log line; StartupError as NIM refuses (engines.py, profile facts)."""
    manifest = version.profiles.get(image)
    if manifest is None:
        raise StartupError(f"stand-in: no model manifest for {image} in testworld/engines.py")

    def fits(p: Profile) -> bool:
        return (p.gpu is None or p.gpu.lower() in product.lower()) and p.tp * p.pp <= gpus

    if pinned:
        profile = next((p for p in manifest if pinned in (p.id, p.name)), None)
        if profile is None:
            valid = ", ".join(sorted(p.id for p in manifest))
            raise StartupError(
                f"ERROR: Not all of the provided profiles are supported. Unknown profiles provided: {{{pinned!r}}} "
                f"All valid profiles: {{{valid}}}"
            )
        if not fits(profile):
            raise StartupError(
                f"ERROR: Could not match a profile in manifest: NIM_MODEL_PROFILE={pinned} ({profile.name}) needs "
                f"{profile.tp * profile.pp} x {profile.gpu or 'any GPU'}, this system has {gpus} x {product or '?'}"
            )
        used = f"using {profile.tp * profile.pp} of {gpus} GPUs" if profile.tp * profile.pp < gpus else ""
        return profile, f"selected profile {profile.id} ({profile.name}) from NIM_MODEL_PROFILE {used}".strip()
    candidates = [p for p in manifest if fits(p)]
    if not candidates:
        raise StartupError(f"ERROR: Could not match a profile in manifest for {gpus} x {product or '?'}")
    # The documented default prefers hardware-specific profiles; the rest of the order is the stand-in's.
    best = max(candidates, key=lambda p: (p.lora == lora, p.gpu is not None, p.tp * p.pp))
    return best, f"selected profile {best.id} ({best.name}) automatically"


class Engine:
    def __init__(self, version: EngineVersion, args: argparse.Namespace, env: dict[str, str]) -> None:
        self.version, self.env = version, env
        self.nim = version.engine == "nim"
        self.served = (
            env.get("NIM_SERVED_MODEL_NAME", "base") if self.nim else (args.served_model_name or args.model or "base")
        )
        self.port = int(env.get("NIM_SERVER_PORT", "8000")) if self.nim else args.port
        self.median = float(env.get("STANDIN_LATENCY_MEDIAN", "1.0"))
        self.sigma = float(env.get("STANDIN_LATENCY_SIGMA", "0.35"))
        self.error_rate = float(env.get("STANDIN_ERROR_RATE", "0"))
        self.quality = float(env.get("STANDIN_QUALITY", "0.9"))
        self.startup = float(env.get("STANDIN_STARTUP_SECONDS", "0.5"))
        self.rng = random.Random(int(env.get("STANDIN_SEED", "0")) or None)
        self.refs = references()
        self.adapters: dict[str, Path] = {}  # loaded: listed in /v1/models and served
        self.loaded = False
        self.running = 0
        self.waiting = 0
        self.max_num_seqs = int(env.get("STANDIN_MAX_NUM_SEQS", "64"))
        self.batch_slowdown = float(env.get("STANDIN_BATCH_SLOWDOWN", "0"))
        self._slots: asyncio.Semaphore | None = None  # made in the serving loop
        self.log: list[str] = []
        self.profile: Profile | None = None
        self.lora = False
        self.lora_modules: dict[str, str] = {}
        if self.nim:
            self.adapter_source = Path(env["NIM_PEFT_SOURCE"]) if env.get("NIM_PEFT_SOURCE") else None
            self.max_rank = int(env["NIM_MAX_LORA_RANK"]) if env.get("NIM_MAX_LORA_RANK") else None
            self.refresh = float(env.get("NIM_PEFT_REFRESH_INTERVAL", "0") or 0)
            self.profile, line = choose_profile(
                version,
                args.image,
                env.get("NIM_MODEL_PROFILE"),
                args.visible_gpus,
                args.gpu_product,
                self.adapter_source is not None,
            )
            self.say(line)
            self.lora = self.profile.lora
            if self.adapter_source is not None and not self.lora:
                self.say(f"profile {self.profile.name} has no LoRA support: adapters in NIM_PEFT_SOURCE are not served")
        else:
            ranks = VLLM_RANKS[version.key]
            if args.max_lora_rank not in ranks:
                raise StartupError(f"ValueError: max_lora_rank ({args.max_lora_rank}) must be one of {ranks}")
            if args.tensor_parallel_size > args.visible_gpus:
                raise StartupError(
                    f"ValueError: tensor_parallel_size ({args.tensor_parallel_size}) is larger than the number of "
                    f"available GPUs ({args.visible_gpus})"
                )
            self.lora = args.enable_lora
            self.max_rank = args.max_lora_rank
            self.refresh = 0.0
            self.adapter_source = None
            self.lora_modules = dict(m.split("=", 1) for m in args.lora_modules)
            if self.lora_modules and not self.lora:
                raise StartupError("ValueError: --lora-modules needs --enable-lora")
        # vLLM's envs.VLLM_ALLOW_RUNTIME_LORA_UPDATING: "1" or "true" (any case) mounts the load/unload routes.
        self.runtime_lora = not self.nim and env.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "0").strip().lower() in (
            "1",
            "true",
        )
        self.lora_load_seconds = float(env.get("STANDIN_LORA_LOAD_SECONDS", "0"))
        # NIM 1.x has its own registry; NIM 2.x is modelled as passing vLLM's through (engines.py).
        self.vllm_registry = version.metric("vllm:e2e_request_latency_seconds") is not None
        tp = self.profile.tp if self.profile is not None else args.tensor_parallel_size
        self.tp = tp
        self.hardware = hardware_factor(hardware_table(env.get("STANDIN_HARDWARE_LATENCY")), args.gpu_product, tp)
        self.say(f"stand-in latency: median {self.median}s x {self.hardware:.4g} ({args.gpu_product or '?'}, TP {tp})")
        self.registry = CollectorRegistry()
        self.series = self._series()

    def say(self, line: str) -> None:
        self.log.append(line)
        print(line, flush=True)

    # ------------------------------------------------------------------ metrics, as the table says

    def _series(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for m in self.version.metrics:
            kind = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}[m.type]
            kwargs: dict[str, Any] = {"registry": self.registry}
            if m.buckets:
                kwargs["buckets"] = m.buckets
            if m.name == "vllm:lora_requests_info" and not self.lora:
                continue  # only with --enable-lora
            out[m.name] = kind(m.name, m.help, list(m.labels), **kwargs)
        for name in ("request_success", "request_failure"):  # present, 0, from the start (the real scrape)
            if name in out:
                out[name].labels(self.served).inc(0)
        return out

    def _model_labels(self) -> dict[str, str]:
        labels = {"model_name": self.served}
        return {**labels, "engine": "0"} if self.vllm_registry else labels

    def _finished(self, reason: str, seconds: float, prompt_tokens: int, output_tokens: int) -> None:
        """A request the engine finished with `reason`: what the version counts for it."""
        s, ml = self.series, self._model_labels()
        s[self.e2e].labels(**ml).observe(seconds)
        if "request_finish" in s:
            s["request_finish"].labels(finished_reason=reason, **ml).inc()
            ok = reason in ("stop", "length")
            s["request_success" if ok else "request_failure"].labels(**ml).inc()
        elif "vllm:request_success" in s:
            s["vllm:request_success"].labels(finished_reason=reason, **ml).inc()
        prefix = "vllm:" if self.vllm_registry else ""
        s[f"{prefix}prompt_tokens"].labels(**ml).inc(prompt_tokens)
        s[f"{prefix}generation_tokens"].labels(**ml).inc(output_tokens)
        s[f"{prefix}time_to_first_token_seconds"].labels(**ml).observe(seconds * 0.1)
        per_token = seconds * 0.9 / max(1, output_tokens)
        for name in (f"{prefix}time_per_output_token_seconds", "vllm:inter_token_latency_seconds"):
            if name in s:
                s[name].labels(**ml).observe(per_token)
        for name, n in (("request_prompt_tokens", prompt_tokens), ("request_generation_tokens", output_tokens)):
            if name in s:
                s[name].labels(**ml).observe(n)

    @property
    def e2e(self) -> str:
        return "vllm:e2e_request_latency_seconds" if self.vllm_registry else "e2e_request_latency_seconds"

    def _gauges(self) -> None:
        s, ml = self.series, self._model_labels()
        prefix = "vllm:" if self.vllm_registry else ""
        s[f"{prefix}num_requests_running"].labels(**ml).set(self.running)
        s[f"{prefix}num_requests_waiting"].labels(**ml).set(self.waiting)
        cache = "vllm:kv_cache_usage_perc" if self.vllm_registry else "gpu_cache_usage_perc"
        s[cache].labels(**ml).set(min(1.0, self.running / self.max_num_seqs))
        if "num_request_max" in s:
            s["num_request_max"].labels(**ml).set(self.max_num_seqs)
        if "vllm:lora_requests_info" in s:
            s["vllm:lora_requests_info"].labels(
                max_lora=str(max(1, len(self.adapters))), waiting_lora_adapters="", running_lora_adapters=""
            ).set(time.time())

    # ------------------------------------------------------------------ adapters

    def load_adapters(self) -> None:
        """What the engine has loaded: vLLM's static --lora-modules (fatal when one fails), or NIM's
        NIM_PEFT_SOURCE folders (a bad one is skipped; only with a LoRA profile)."""
        if not self.nim:
            for name, path in self.lora_modules.items():
                rank = adapter_rank(Path(path))
                if rank is None:
                    raise StartupError(f"ValueError: Loading lora {name} failed: No adapter found for {path}")
                if self.max_rank is not None and rank > self.max_rank:
                    raise StartupError(f"ValueError: LoRA rank {rank} is greater than max_lora_rank {self.max_rank}.")
                self.adapters[name] = Path(path)
            return
        if self.adapter_source is None or not self.lora or not self.adapter_source.is_dir():
            return
        for folder in sorted(self.adapter_source.iterdir()):
            if folder.name in self.adapters or not folder.is_dir():
                continue
            rank = adapter_rank(folder)
            if rank is None:
                self.say(f"skipping adapter {folder.name}: not a readable LoRA adapter folder")
            elif self.max_rank is not None and rank > self.max_rank:
                self.say(f"skipping adapter {folder.name}: rank {rank} > NIM_MAX_LORA_RANK {self.max_rank}")
            else:
                self.adapters[folder.name] = folder
                self.say(f"loaded adapter {folder.name}")

    # ------------------------------------------------------------------ HTTP

    def answer(self, model: str, prompt: str) -> str:
        reference = self.refs.get(prompt.strip())
        if reference is None:
            return f"search: {prompt.strip()[:80]}"
        # Quality is a property of the (model, prompt) pair: the same question gets the same answer.
        digest = int(hashlib.sha256(f"{model}|{prompt}|{self.quality}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        return reference if digest < self.quality else degrade(reference, random.Random(digest))

    def adapter_knobs(self, model: str) -> dict[str, Any]:
        """A test knob per adapter (the stand-in's, no engine has it): `standin.json` in the adapter's folder,
        {"latency_factor": x, "error_rate": p}, so that an adapter-only change can be a bad one."""
        path = self.adapters.get(model)
        knobs = path / "standin.json" if path is not None else None
        try:
            return dict(json.loads(knobs.read_text())) if knobs is not None and knobs.is_file() else {}
        except (OSError, ValueError):
            return {}

    def not_found(self, model: str) -> web.Response:
        # vLLM's NotFoundError body (serving_engine._check_model); NIM 2.x is vLLM underneath.
        message = f"The model `{model}` does not exist."
        error = {"message": message, "type": "NotFoundError", "param": None, "code": 404}
        return web.json_response({"error": error}, status=self.version.not_found_status)

    async def completion(self, request: web.Request) -> web.Response:
        start = time.monotonic()
        try:
            body = await request.json()
        except ValueError:
            error = {"message": "invalid JSON body", "type": "BadRequestError", "param": None, "code": 400}
            return web.json_response({"error": error}, status=400)
        model = str(body.get("model", ""))
        if model != self.served and model not in self.adapters:
            return self.not_found(model)  # refused before the engine: no engine series
        chat = request.path.endswith("/chat/completions")
        if chat:
            prompt = next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
        else:
            prompt = str(body.get("prompt", ""))
        knobs = self.adapter_knobs(model)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_num_seqs)
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        others = self.running
        self.running += 1
        try:
            factor = float(knobs.get("latency_factor", 1.0)) * (1.0 + self.batch_slowdown * others)
            await asyncio.sleep(factor * self.median * self.hardware * math.exp(self.sigma * self.rng.gauss(0, 1)))
        finally:
            self.running -= 1
            self._slots.release()
        prompt_tokens = len(str(prompt).split())
        if self.rng.random() < float(knobs.get("error_rate", self.error_rate)):
            if self.version.error_finish_reason is not None:
                self._finished(self.version.error_finish_reason, time.monotonic() - start, prompt_tokens, 0)
            if self.version.error_body_empty:
                return web.Response(status=self.version.error_status)
            error = {"message": "internal error", "type": "InternalServerError", "param": None, "code": 500}
            return web.json_response({"error": error}, status=self.version.error_status)
        text = self.answer(model, str(prompt))
        self._finished("stop", time.monotonic() - start, prompt_tokens, len(text.split()))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split())}
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{self.rng.getrandbits(32):08x}"
        if chat:
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}}
        else:
            choice = {"index": 0, "text": text}
        choice["finish_reason"] = "stop"
        obj = "chat.completion" if chat else "text_completion"
        return web.json_response({"id": ident, "object": obj, "model": model, "choices": [choice], "usage": usage})

    @staticmethod
    def _error(message: str, type_: str, status: int) -> web.Response:
        return web.json_response({"object": "error", "message": message, "type": type_, "code": status}, status=status)

    async def load_lora_adapter(self, request: web.Request) -> web.Response:
        """vLLM's POST /v1/load_lora_adapter {lora_name, lora_path} (serving_models.load_lora_adapter): the
        adapter is served and listed from then on; 400 for a missing field, a name already loaded or a rank
        above --max-lora-rank, 404 when no adapter is found at the path."""
        body = await request.json()
        name, path = str(body.get("lora_name") or ""), str(body.get("lora_path") or "")
        if not name or not path:
            return self._error("Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput", 400)
        if name in self.adapters:
            return self._error(f"The lora adapter '{name}' has already been loaded.", "InvalidUserInput", 400)
        await asyncio.sleep(self.lora_load_seconds)
        rank = adapter_rank(Path(path))
        if rank is None:
            return self._error(f"Loading lora {name} failed: No adapter found for {path}", "NotFoundError", 404)
        if self.max_rank is not None and rank > self.max_rank:
            message = f"LoRA rank {rank} is greater than max_lora_rank {self.max_rank}."
            return self._error(message, "BadRequestError", 400)
        self.adapters[name] = Path(path)
        self.say(f"Loaded new LoRA adapter: name '{name}', path '{path}'")
        return web.Response(text=f"Success: LoRA adapter '{name}' added successfully.")

    async def unload_lora_adapter(self, request: web.Request) -> web.Response:
        """vLLM's POST /v1/unload_lora_adapter {lora_name}: 404 when no adapter of that name is loaded."""
        body = await request.json()
        name = str(body.get("lora_name") or "")
        if not name and not body.get("lora_int_id"):
            return self._error("either 'lora_name' and 'lora_int_id' needs to be provided.", "InvalidUserInput", 400)
        if self.adapters.pop(name, None) is None:
            return self._error(f"The lora adapter '{name}' cannot be found.", "NotFoundError", 404)
        self.say(f"Removed LoRA adapter: name '{name}'")
        return web.Response(text=f"Success: LoRA adapter '{name}' removed successfully.")

    async def list_models(self, _: web.Request) -> web.Response:
        owner = "vllm" if not self.nim else "system"
        data = [{"id": self.served, "object": "model", "owned_by": owner, "root": self.served, "parent": None}]
        data += [
            {"id": name, "object": "model", "owned_by": owner, "root": str(path), "parent": self.served}
            for name, path in sorted(self.adapters.items())
        ]
        return web.json_response({"object": "list", "data": data})

    async def ready(self, _: web.Request) -> web.Response:
        ok = self.loaded
        return web.json_response(
            {"object": "health.response", "message": "ready" if ok else "not ready"}, status=200 if ok else 503
        )

    async def live(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "health.response", "message": "live"})

    async def health(self, _: web.Request) -> web.Response:
        return web.Response(status=200)

    async def metrics(self, _: web.Request) -> web.Response:
        self._gauges()
        return web.Response(body=generate_latest(self.registry), content_type="text/plain")

    @web.middleware
    async def count(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """vLLM's instrumentator: the route template, the method, the status grouped to `2xx`/`4xx`/`5xx`."""
        start = time.monotonic()
        route = request.match_info.route.resource
        template = route.canonical if route is not None else None
        response = await handler(request)
        counter, duration = self.series.get("http_requests"), self.series.get("http_request_duration_seconds")
        nim_front_end = self.nim and template in (self.version.live_path, self.version.ready_path, "/v1/metrics")
        if counter is not None and template is not None and template not in UNCOUNTED and not nim_front_end:
            status = f"{str(response.status)[0]}xx"
            counter.labels(handler=template, method=request.method, status=status).inc()
            if duration is not None:
                duration.labels(handler=template, method=request.method).observe(time.monotonic() - start)
        return response

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.count])
        app.router.add_post("/v1/chat/completions", self.completion)
        app.router.add_post("/v1/completions", self.completion)
        app.router.add_get("/v1/models", self.list_models)
        if self.nim:
            app.router.add_get(self.version.ready_path, self.ready)
            app.router.add_get(self.version.live_path, self.live)
        else:
            app.router.add_get("/health", self.health)
            app.router.add_get("/ping", self.health)
            app.router.add_post("/ping", self.health)
            if self.runtime_lora:
                app.router.add_post("/v1/load_lora_adapter", self.load_lora_adapter)
                app.router.add_post("/v1/unload_lora_adapter", self.unload_lora_adapter)
        app.router.add_get(self.version.metrics_path, self.metrics)
        return app

    async def refresh_adapters(self) -> None:
        while self.refresh > 0:
            await asyncio.sleep(self.refresh)
            self.load_adapters()


async def serve(engine: Engine, host: str) -> None:
    """NIM listens at once (live 200, ready 503 until loaded); vLLM only once loaded (connection refused
    before). A StartupError on the way exits 1, as the engine does."""
    runner = web.AppRunner(engine.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, engine.port)
    if engine.version.listens_while_loading:
        await site.start()
    await asyncio.sleep(engine.startup)
    engine.load_adapters()
    if not engine.version.listens_while_loading:
        await site.start()
    engine.loaded = True
    engine.say(f"{engine.version.title} stand-in serving {engine.served} on {host}:{engine.port}")
    await engine.refresh_adapters()
    await asyncio.Event().wait()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default="", help="the image this container runs (which engine version)")
    parser.add_argument("--engine-version", default="", help="an engines.py key, instead of --image")
    parser.add_argument("--visible-gpus", type=int, default=1)
    parser.add_argument("--gpu-product", default="")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default="")
    parser.add_argument("--served-model-name", default="")
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--enable-lora", action="store_true")
    parser.add_argument("--max-lora-rank", type=int, default=16)
    parser.add_argument("--lora-modules", nargs="*", default=[])
    args, _unknown = parser.parse_known_args(argv)  # the engine's other flags change nothing here
    return args


def version_of(args: argparse.Namespace) -> EngineVersion:
    if args.engine_version:
        return engines.by_key(args.engine_version)
    found = engines.by_image(args.image)
    if found is None:
        known = ", ".join(i for v in engines.VERSIONS for i in v.images)
        raise StartupError(f"stand-in: no engine version for image {args.image!r}; known: {known}")
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    disable_created_metrics()  # as the engines' scrapes show: no *_created series
    try:
        engine = Engine(version_of(args), args, dict(os.environ))
        asyncio.run(serve(engine, os.environ.get("POD_IP", "127.0.0.1")))
    except StartupError as exc:
        print(exc, file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
