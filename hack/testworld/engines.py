"""What each supported serving engine version documents, with its source: the one table behind
docs/engines.md (`python hack/generate.py engines-doc`) and the stand-in engine (testworld/nim.py), which
serves exactly this (ports, paths, metric names, labels and buckets, profiles, adapters, failures).

Every fact carries its source and how it is known: "V" read in the engine's source or docs, "3P" only a
third-party source backs it, "?" not verified (the stand-in then does what the table says, and the table
says it is a guess). `modelled` False marks a documented fact the stand-in does not implement.
The research behind it: upstream source and docs as of the cited commits and pages.

Pure data, no third-party imports: the generator and the unit tests read it without the test world.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["V", "3P", "?"]
MetricType = Literal["counter", "histogram", "gauge"]

# -- sources (the research notes cite these; paths at the named tags/commits)
VLLM_011_SRC = "https://github.com/vllm-project/vllm/blob/v0.11.0/"
VLLM_034_SRC = "https://github.com/vllm-project/vllm/blob/v0.34.0/"
PFI = "prometheus-fastapi-instrumentator 8.0.2 (PyPI wheel) "
NIM1_OBS = "https://docs.nvidia.com/nim/large-language-models/latest/observability.html (1.x)"
NIM1_SCRAPE = (
    "https://github.com/DataDog/integrations-core/blob/8b7db5d2d8f53b4169be6919a2997570a7b2f617/"
    "nvidia_nim/tests/fixtures/nim_metrics.txt (a real 1.x scrape, Oct 2024)"
)
RUNAI = "https://run-ai-docs.nvidia.com/self-hosted/reference/api/api-usage-guides/nim-metrics"
NIM_DEPLOY = "https://github.com/NVIDIA/nim-deploy/blob/01f3757/helm/nim-llm/values.yaml"
NIM_OPERATOR = (
    "https://github.com/NVIDIA/k8s-nim-operator/blob/f63f74d7ad22eaea7943cc640e545f4ccdbb8077/"
    "api/apps/v1alpha1/nimservice_types.go"
)
NIM_OPERATOR_LORA = (
    "https://github.com/NVIDIA/k8s-nim-operator/blob/f63f74d7ad22eaea7943cc640e545f4ccdbb8077/"
    "internal/nimparser/v1/testdata/manifest_lora.yaml"
)
NIM1_CONFIG = "https://docs.nvidia.com/nim/large-language-models/1.10.0/configuration.html"
NIM1_PEFT = "https://docs.nvidia.com/nim/large-language-models/latest/peft.html (1.x)"
NIM1_UTILS = "https://docs.nvidia.com/nim/large-language-models/1.12.0/utilities.html"
NIM2_API = "https://docs.nvidia.com/nim/large-language-models/latest/reference/api-reference.html"
NIM2_ENV = "https://docs.nvidia.com/nim/large-language-models/2.0.12/reference/environment-variables.html"
NIM2_CONFIG = "https://docs.nvidia.com/nim/large-language-models/2.0.9/reference/advanced-configuration.html"
NIM2_LORA = "https://docs.nvidia.com/nim/large-language-models/2.0.6/advanced-use-cases/finetune-lora.html"
NIM2_NOTES = "https://docs.nvidia.com/nim/large-language-models/2.0.1/about-nim-llm/release-notes.html"
NIM2_OBS = "https://docs.nvidia.com/nim/large-language-models/2.0.13/reference/logging-and-observability.md"
NIM_PROFILES = "https://docs.nvidia.com/nim/large-language-models/latest/deployment/model-profiles-and-selection.html"
NIM_NO_MATCH = "https://github.com/NVIDIA-AI-Blueprints/nemotron-voice-agent/pull/89"
NIM_PROFILE_1_8_4 = (
    "https://github.com/oslieptsov-spec/math-decides/blob/17fb4853d710345248dca7a8834d0f20cfebf068/deploy/nim-l4.yaml"
)


@dataclass(frozen=True)
class Source:
    ref: str
    status: Status = "V"
    note: str = ""


@dataclass(frozen=True)
class Fact:
    """One line of the table: what the engine does, where that is written, whether the stand-in does it."""

    topic: str
    fact: str
    source: Source
    modelled: bool = True


@dataclass(frozen=True)
class Metric:
    name: str  # the exposition name (a counter's without _total)
    type: MetricType
    labels: tuple[str, ...]
    help: str
    source: Source
    buckets: tuple[float, ...] = ()
    values: tuple[tuple[str, tuple[str, ...]], ...] = ()  # label -> the values it takes

    @property
    def series(self) -> str:
        return f"{self.name}_total" if self.type == "counter" else self.name


@dataclass(frozen=True)
class Profile:
    """One entry of a NIM image's model manifest (what `list-model-profiles` prints)."""

    id: str
    name: str
    tp: int
    precision: str
    lora: bool
    gpu: str | None = None  # None: a generic profile, any GPU with enough memory
    pp: int = 1


@dataclass(frozen=True)
class EngineVersion:
    key: str  # nim-1, nim-2, vllm-0.11, vllm-0.34
    engine: Literal["nim", "vllm"]
    title: str
    covers: str  # the versions this column stands for
    line: str  # the operator's query set (adapterops.engines.Line) it should be read with
    images: tuple[str, ...]  # the test world's images of this version (the stand-in plays them)
    port_setting: str  # NIM_SERVER_PORT or --port
    live_path: str
    ready_path: str
    metrics_path: str
    listens_while_loading: bool  # False: connection refused until loaded (vLLM); True: live 200, ready 503
    metrics: tuple[Metric, ...]
    # How a request that fails inside the engine shows: HTTP status, and the finish reason counted (None:
    # not counted in the finish-reason series at all).
    error_status: int
    error_finish_reason: str | None
    error_body_empty: bool
    not_found_status: int  # an unknown model or adapter name
    invalid_adapter: Literal["fatal", "skipped"]  # an adapter that cannot be loaded at start-up
    adapters_from: Literal["--lora-modules", "NIM_PEFT_SOURCE"]
    facts: tuple[Fact, ...]  # the table, in order
    profiles: dict[str, tuple[Profile, ...]] = field(default_factory=dict)  # image -> manifest

    def metric(self, name: str) -> Metric | None:
        return next((m for m in self.metrics if m.name == name), None)

    @property
    def http_counter(self) -> Metric | None:
        return self.metric("http_requests")


# ------------------------------------------------------------------------------------------- buckets

# vLLM V1 (0.11 .. 0.34): request latency, queue, prefill, decode, inference time.
VLLM_LATENCY_BUCKETS: tuple[float, ...] = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0)
VLLM_LATENCY_BUCKETS += (50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
VLLM_TTFT_BUCKETS = (*TTFT_BUCKETS, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
VLLM_ITL_BUCKETS = (*TPOT_BUCKETS, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
# NIM 1.x: the old vLLM V0 set, smallest bound 1 s (the real scrape).
NIM1_LATENCY_BUCKETS = (1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)
TOKEN_BUCKETS: tuple[float, ...] = (
    1.0,
    2.0,
    5.0,
    10.0,
    20.0,
    50.0,
    100.0,
    200.0,
    500.0,
    1000.0,
    2000.0,
    5000.0,
    10000.0,
)
TOKEN_BUCKETS += (20000.0, 50000.0, 100000.0)
PFI_DURATION_BUCKETS = (0.1, 0.5, 1.0)

# ------------------------------------------------------------------------------------------- metrics


def _vllm_metrics(version: str, reasons: tuple[str, ...], src: Source, extra: tuple[Metric, ...]) -> tuple[Metric, ...]:
    ml = ("model_name", "engine")
    loggers = Source(src.ref + "vllm/v1/metrics/loggers.py", src.status, src.note)
    return (
        Metric(
            "vllm:e2e_request_latency_seconds",
            "histogram",
            ml,
            "End-to-end request latency.",
            loggers,
            VLLM_LATENCY_BUCKETS,
        ),
        Metric("vllm:time_to_first_token_seconds", "histogram", ml, "Time to first token.", loggers, VLLM_TTFT_BUCKETS),
        Metric("vllm:inter_token_latency_seconds", "histogram", ml, "Inter-token latency.", loggers, VLLM_ITL_BUCKETS),
        Metric(
            "vllm:request_success",
            "counter",
            (*ml, "finished_reason"),
            "Finished requests by finish reason.",
            Source(loggers.ref + " + vllm/v1/engine/__init__.py FINISH_REASON_STRINGS", src.status, src.note),
            values=(("finished_reason", reasons),),
        ),
        Metric("vllm:prompt_tokens", "counter", ml, "Prefill tokens processed.", loggers),
        Metric("vllm:generation_tokens", "counter", ml, "Generation tokens processed.", loggers),
        Metric("vllm:num_requests_running", "gauge", ml, "Requests in model execution batches.", loggers),
        Metric("vllm:num_requests_waiting", "gauge", ml, "Requests waiting to be processed.", loggers),
        Metric("vllm:kv_cache_usage_perc", "gauge", ml, "KV-cache usage, 1 is 100%.", loggers),
        Metric(
            "vllm:lora_requests_info",
            "gauge",
            ("max_lora", "waiting_lora_adapters", "running_lora_adapters"),
            "Running stats on LoRA requests (value: a timestamp); only with --enable-lora.",
            loggers,
        ),
        *extra,
        Metric(
            "http_requests",
            "counter",
            ("handler", "method", "status"),
            "Total number of requests by method, status and handler.",
            Source(
                PFI
                + "metrics.py default(), middleware.py L202-203 (status[0]+'xx'); mounted by "
                + src.ref
                + (
                    "vllm/entrypoints/openai/api_server.py L259-285"
                    if version == "0.11"
                    else "vllm/entrypoints/serve/instrumentator/metrics.py"
                ),
                src.status,
                src.note,
            ),
            values=(("status", ("2xx", "3xx", "4xx", "5xx")),),
        ),
        Metric(
            "http_request_duration_seconds",
            "histogram",
            ("handler", "method"),
            "Latency with only few buckets by handler.",
            Source(PFI + "metrics.py default()", src.status, src.note),
            PFI_DURATION_BUCKETS,
        ),
    )


VLLM_011_METRICS = _vllm_metrics(
    "0.11",
    ("stop", "length", "abort"),
    Source(VLLM_011_SRC),
    (
        Metric(
            "vllm:time_per_output_token_seconds",
            "histogram",
            ("model_name", "engine"),
            "Deprecated in 0.11: use vllm:inter_token_latency_seconds.",
            Source(VLLM_011_SRC + "vllm/v1/metrics/loggers.py L390"),
            TPOT_BUCKETS,
        ),
    ),
)
VLLM_034_METRICS = _vllm_metrics(
    "0.34",
    ("stop", "length", "abort", "error", "repetition"),
    Source(VLLM_034_SRC),
    (
        Metric(
            "vllm:admission_rejections",
            "counter",
            ("model_name", "reason"),
            "Requests refused at admission.",
            Source(VLLM_034_SRC + "vllm/v1/metrics/loggers.py L47, L848"),
            values=(("reason", ("max_num_queued_reqs", "max_num_queued_tokens")),),
        ),
    ),
)
# NIM 2.x: vLLM 0.17 .. 0.23 under NVIDIA's front end; whether /v1/metrics passes vLLM's registry through
# (names, the HTTP counter, buckets) is not verified: modelled as vLLM's, without the `error` reason.
NIM2_SOURCE = Source(
    VLLM_011_SRC, "?", "assumed: NIM 2.x serves vLLM's registry (the only hint is third-party); check a real scrape"
)
NIM2_METRICS = _vllm_metrics("0.11", ("stop", "length", "abort"), NIM2_SOURCE, ())

_NIM1 = Source(NIM1_OBS + "; names, labels and buckets as in " + NIM1_SCRAPE)
NIM1_METRICS = (
    Metric(
        "e2e_request_latency_seconds",
        "histogram",
        ("model_name",),
        "End to end request latency.",
        _NIM1,
        NIM1_LATENCY_BUCKETS,
    ),
    Metric("time_to_first_token_seconds", "histogram", ("model_name",), "Time to first token.", _NIM1, TTFT_BUCKETS),
    Metric(
        "time_per_output_token_seconds", "histogram", ("model_name",), "Time per output token.", _NIM1, TPOT_BUCKETS
    ),
    Metric("request_prompt_tokens", "histogram", ("model_name",), "Prefill tokens per request.", _NIM1, TOKEN_BUCKETS),
    Metric(
        "request_generation_tokens",
        "histogram",
        ("model_name",),
        "Generation tokens per request.",
        _NIM1,
        TOKEN_BUCKETS,
    ),
    Metric("prompt_tokens", "counter", ("model_name",), "Prefill tokens processed.", _NIM1),
    Metric("generation_tokens", "counter", ("model_name",), "Generation tokens processed.", _NIM1),
    Metric(
        "request_finish",
        "counter",
        ("finished_reason", "model_name"),
        "Finished requests by finish reason (a reason appears once seen).",
        _NIM1,
        values=(("finished_reason", ("stop", "length", "abort")),),
    ),
    Metric(
        "request_success",
        "counter",
        ("model_name",),
        "Requests finished with reason stop or length.",
        Source(NIM1_OBS + "; semantics: " + RUNAI),
    ),
    Metric(
        "request_failure",
        "counter",
        ("model_name",),
        "Requests finished with any other reason (0 from start).",
        Source(NIM1_OBS + "; semantics: " + RUNAI),
    ),
    Metric("num_requests_running", "gauge", ("model_name",), "Requests running on GPU.", _NIM1),
    Metric("num_requests_waiting", "gauge", ("model_name",), "Requests waiting.", _NIM1),
    Metric("num_request_max", "gauge", ("model_name",), "Max concurrently running requests.", _NIM1),
    Metric("gpu_cache_usage_perc", "gauge", ("model_name",), "GPU KV-cache usage, 1 is 100%.", _NIM1),
)

# ------------------------------------------------------------------------------------------- test images

NIM1_IMAGE = "nvcr.io/nim/nvidia/llama-3.1-nemotron-nano-8b-v1:1.8"  # the chart's default NIM image
NIM2_IMAGE = "nvcr.io/nim/nvidia/llama-3.1-nemotron-nano-8b-v1:2.0.6"  # a 2.x tag of the same repository
VLLM_011_IMAGE = "vllm/vllm-openai:v0.11.0"  # the chart's default vLLM image
VLLM_034_IMAGE = "vllm/vllm-openai:v0.34.0"
GPUS = ("H100", "B200")  # the test world's GPU classes
PROFILE_1_8_4_VLLM_BF16_TP1 = "4f904d571fe60ff24695b5ee2aa42da58cb460787a968f1e8a09f5a7e862728d"


def _synthetic_id(image: str, name: str) -> str:
    """A stand-in profile ID (real ones are 64-hex hashes of the manifest entry; these are of our own)."""
    return hashlib.sha256(f"adapterops-standin|{image}|{name}".encode()).hexdigest()


def _manifest(image: str, backend: str, lora_suffix: str, known: dict[str, str]) -> tuple[Profile, ...]:
    """The stand-in's manifest of a test NIM image: per GPU and TP a bf16 profile with and without LoRA,
    plus a generic (no GPU tag) TP1 one. IDs in `known` are real (by profile name), the rest synthetic."""
    out = [
        Profile(
            known.get(f"{backend}-bf16-tp1-pp1", _synthetic_id(image, "generic-tp1")),
            f"{backend}-bf16-tp1-pp1",
            1,
            "bf16",
            False,
        )
    ]
    for gpu in GPUS:
        for tp in (1, 2, 4, 8):
            for lora in (False, True):
                name = f"{backend}-{gpu.lower()}-bf16-tp{tp}-pp1" + (lora_suffix if lora else "")
                out.append(Profile(known.get(name, _synthetic_id(image, name)), name, tp, "bf16", lora, gpu))
    return tuple(out)


def nim_profiles() -> dict[str, dict[str, str]]:
    """The test world's profile table (chart value nimProfiles) for the stand-in's NIM images: the
    operator's key (<gpu>/tp<N>/<precision>[/lora]) -> the GPU's own manifest entry, except TP1 without
    LoRA -> the generic TP1 profile (the shipped default's choice for the chart's image, kept equal)."""
    table: dict[str, dict[str, str]] = {}
    for version in VERSIONS:
        for image, manifest in version.profiles.items():
            entries = table.setdefault(image, {})
            for p in manifest:
                if p.gpu is not None:
                    entries[f"{p.gpu}/tp{p.tp}/{p.precision}" + ("/lora" if p.lora else "")] = p.id
            generic = next(p for p in manifest if p.gpu is None)
            for gpu in GPUS:
                entries[f"{gpu}/tp1/{generic.precision}"] = generic.id
    return table


# ------------------------------------------------------------------------------------------- the versions


def _nim_common(v2: bool) -> tuple[Fact, ...]:
    port = Source(NIM2_ENV) if v2 else Source(NIM_DEPLOY + " (openaiPort); " + NIM_OPERATOR + " L316-323")
    health = (
        Source(NIM2_API)
        if v2
        else Source(NIM_DEPLOY + " (probes 'correct for LLM container'); " + NIM_OPERATOR + " L663-727")
    )
    return (
        Fact("port", "`NIM_SERVER_PORT`, 8000 (AdapterOps sets 8000)", port),
        Fact(
            "liveness",
            "`GET /v1/health/live`: 200 once the container runs, before the model is loaded",
            health if v2 else Source(health.ref, "?", "1.x: the code during load is not documented"),
        ),
        Fact(
            "readiness",
            "`GET /v1/health/ready`: 503 until the model (and adapters) are loaded, then 200",
            Source(
                health.ref,
                "V" if v2 else "?",
                "documented as not 200 until loaded; 503 is the stand-in's choice"
                if v2
                else "the code before ready is not documented; 503 is the stand-in's choice",
            ),
        ),
        Fact(
            "models",
            "`GET /v1/models`: the served base model and each loaded adapter (id = adapter name)",
            Source(NIM2_API + "; " + NIM2_LORA) if v2 else Source(NIM1_PEFT, "?", "card fields not verified"),
        ),
        Fact(
            "metrics path",
            "`GET /v1/metrics` on the API port",
            Source(NIM2_API)
            if v2
            else Source(
                NIM1_OBS + "; " + NIM_OPERATOR + " L1761",
                note="24.05 docs and the nim-llm chart's ServiceMonitor say /metrics",
            ),
        ),
        Fact(
            "served name",
            "`NIM_SERVED_MODEL_NAME`: the base model's name in requests and /v1/models",
            Source(NIM2_ENV if v2 else NIM1_CONFIG),
        ),
        Fact(
            "cache",
            "`NIM_CACHE_PATH`: downloaded weights and built engines",
            Source(NIM2_ENV if v2 else NIM1_CONFIG),
            modelled=False,
        ),
    )


def _nim_profile_facts(v2: bool) -> tuple[Fact, ...]:
    return (
        Fact(
            "profile",
            "`NIM_MODEL_PROFILE`: a profile ID (or name) of the image's manifest; unset, NIM picks one "
            "compatible with the GPUs it sees. AdapterOps always sets it (docs/engines.md, profiles)",
            Source(NIM2_ENV if v2 else NIM1_CONFIG),
        ),
        Fact(
            "profile mismatch",
            "a pinned profile that needs more GPUs than visible, or another GPU, stops start-up: "
            "'Could not match a profile in manifest', exit 1",
            Source(NIM_NO_MATCH, "3P", "exit code not documented"),
        ),
        Fact(
            "unknown profile",
            "a pinned ID not in the manifest stops start-up (exit 1)",
            Source(
                "https://github.com/NVIDIA/k8s-nim-operator/issues/407", "3P", "the message quoted is the cache tool's"
            ),
        ),
        Fact(
            "profile tags",
            "`llm_engine`, `precision`, `tp`, `pp`, `gpu` (absent: generic), `feat_lora`, "
            "`feat_lora_max_rank`; LoRA needs a feat_lora profile, matched on the tag (the name suffix differs: "
            "`-lora` / `-feat_lora`)",
            Source(NIM_OPERATOR_LORA + "; " + NIM_PROFILES),
        ),
        Fact(
            "TP",
            (
                "from the profile's `tp` x `pp` (CLI > NIM_PASSTHROUGH_ARGS > NIM_* env > runtime_config.json > "
                "profile tags); needs that many GPUs"
            )
            if v2
            else "from the profile's `tp` x `pp`; needs that many GPUs. `NIM_TENSOR_PARALLEL_SIZE` is documented only "
            "for multi-node (the NIM operator sets it with NIM_MULTI_NODE)",
            Source(NIM2_CONFIG) if v2 else Source(NIM1_CONFIG + "; " + NIM_OPERATOR + " L369-397"),
        ),
        Fact(
            "list profiles",
            "`list-model-profiles`: 'Compatible with system and runnable' (with a 'With LoRA "
            "support' group), '... but low memory', 'Incompatible with system'",
            Source(NIM_PROFILES if v2 else NIM1_UTILS),
            modelled=False,
        ),
    )


NIM1 = EngineVersion(
    key="nim-1",
    engine="nim",
    title="NIM for LLMs 1.x",
    covers="1.0 to 1.x (the chart's default image is 1.8)",
    line="nim-1",
    images=(NIM1_IMAGE,),
    port_setting="NIM_SERVER_PORT",
    live_path="/v1/health/live",
    ready_path="/v1/health/ready",
    metrics_path="/v1/metrics",
    listens_while_loading=True,
    metrics=NIM1_METRICS,
    error_status=500,
    error_finish_reason="abort",
    error_body_empty=False,
    not_found_status=404,
    invalid_adapter="skipped",
    adapters_from="NIM_PEFT_SOURCE",
    facts=(
        *_nim_common(v2=False),
        Fact(
            "HTTP counter",
            "none: no `http_requests_total` (nor any HTTP status series)",
            Source(NIM1_OBS + "; " + NIM1_SCRAPE),
        ),
        Fact("metric names", "unprefixed (`e2e_request_latency_seconds`, ...), label `model_name`", _NIM1),
        Fact(
            "model_name",
            "the served base name for every request, adapters included",
            Source(NIM1_SCRAPE, "?", "the scrape shows the base name; per-adapter values not verified"),
        ),
        Fact(
            "e2e buckets",
            "1, 2.5, 5, 10, 15, 20, 30, 40, 50, 60 s, +Inf: nothing below 1 s is resolved",
            Source(NIM1_SCRAPE, "V", "whether 1.8 kept these or moved to vLLM V1's 0.3 s set is not verified"),
        ),
        Fact(
            "success / failure",
            "`request_success_total`: finish reason stop or length; `request_failure_total`: "
            "any other (both present from the start: the scrape shows failure at 0); "
            "`request_finish_total{finished_reason}` per reason once seen",
            Source(RUNAI + "; " + NIM1_SCRAPE),
        ),
        Fact(
            "engine error",
            "HTTP 500; counted as a failure (finish reason `abort`), and in the latency histogram as finished",
            Source(RUNAI, "?", "how an internal error is counted is not documented"),
        ),
        Fact("unknown model", "HTTP 404, not counted in any series", Source(NIM1_PEFT, "?", "no doc found")),
        Fact(
            "adapters",
            "`NIM_PEFT_SOURCE`: one folder per adapter (HF `adapter_config.json` + weights, or one "
            "`.nemo`), the folder name is the model name requests use",
            Source(NIM1_PEFT),
        ),
        Fact(
            "adapter refresh",
            "`NIM_PEFT_REFRESH_INTERVAL` (s): the folder is scanned again; an adapter is listed "
            "and served only once a scan loaded it",
            Source(NIM1_PEFT, "?", "exact refresh semantics not verified"),
        ),
        Fact(
            "invalid adapter",
            "skipped (not listed, requests for it 404); the others are served",
            Source(NIM1_PEFT, "?", "the formats that load are documented; what happens to others is not"),
        ),
        Fact(
            "LoRA rank",
            "`NIM_MAX_LORA_RANK`; an adapter above it is not loaded",
            Source(
                "k8s-nim-operator config/samples/nim/serving/standalone/lora/llm.yaml",
                "?",
                "default (32?) and the failure not verified",
            ),
        ),
        Fact(
            "LoRA slots",
            "`NIM_MAX_GPU_LORAS`, `NIM_MAX_CPU_LORAS` (sample: 8 / 16)",
            Source("k8s-nim-operator config/samples/nim/serving/standalone/lora/llm.yaml", "?", "defaults unknown"),
            modelled=False,
        ),
        Fact(
            "non-LoRA profile",
            "adapters in NIM_PEFT_SOURCE are not served (requests for them 404)",
            Source(NIM_PROFILES, "?", "LoRA needs a feat_lora profile; what happens otherwise is not documented"),
        ),
        *_nim_profile_facts(v2=False),
        Fact(
            "unsafe profile",
            "`NIM_MANIFEST_ALLOW_UNSAFE=1` runs a profile not detected compatible",
            Source("https://github.com/NVIDIA/nim-deploy/pull/58", "3P"),
            modelled=False,
        ),
    ),
    profiles={NIM1_IMAGE: _manifest(NIM1_IMAGE, "vllm", "-lora", {"vllm-bf16-tp1-pp1": PROFILE_1_8_4_VLLM_BF16_TP1})},
)

NIM2 = EngineVersion(
    key="nim-2",
    engine="nim",
    title="NIM for LLMs 2.x",
    covers="2.0 to 2.x (vLLM 0.17.1 in 2.0.1, 0.18 from 2.0.2, 0.23 from 2.0.8)",
    line="nim-2",
    images=(NIM2_IMAGE,),
    port_setting="NIM_SERVER_PORT",
    live_path="/v1/health/live",
    ready_path="/v1/health/ready",
    metrics_path="/v1/metrics",
    listens_while_loading=True,
    metrics=NIM2_METRICS,
    error_status=500,
    error_finish_reason=None,
    error_body_empty=True,
    not_found_status=404,
    invalid_adapter="skipped",
    adapters_from="NIM_PEFT_SOURCE",
    facts=(
        Fact(
            "architecture",
            "one container, one backend (vLLM; later also SGLang) behind NVIDIA's front end",
            Source(
                NIM2_NOTES + "; https://docs.nvidia.com/nim/large-language-models/2.1.4/reference/"
                "1.x-migration-guide.html"
            ),
        ),
        *_nim_common(v2=True),
        Fact(
            "metric names",
            "vLLM's (`vllm:e2e_request_latency_seconds`, ...; labels `model_name`, `engine`) on /v1/metrics",
            Source(
                NIM2_OBS,
                "?",
                "the docs' metrics table was not readable; a third-party "
                "runbook greps vllm: names on a NIM 2 container",
            ),
        ),
        Fact(
            "HTTP counter",
            'vLLM\'s `http_requests_total{handler,method,status="2xx|4xx|5xx"}`',
            Source(NIM2_OBS, "?", "whether it passes NVIDIA's front end is not verified"),
        ),
        Fact("e2e buckets", "vLLM's: 0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10 ... 7680 s", NIM2_SOURCE),
        Fact("finish reasons", "`vllm:request_success_total{finished_reason}`: stop, length, abort", NIM2_SOURCE),
        Fact(
            "engine error", 'HTTP 500, empty body; `http_requests_total{status="5xx"}`; no finish reason', NIM2_SOURCE
        ),
        Fact("unknown model", 'HTTP 404 (vLLM\'s NotFoundError body); `status="4xx"`', NIM2_SOURCE),
        Fact(
            "adapters",
            "`NIM_PEFT_SOURCE`: static mode loads the valid adapter folders at start-up, /v1/models "
            "lists base + adapters; dynamic mode (watcher or API) loads and unloads at run time",
            Source(NIM2_LORA, "V", "the dynamic mode's switch and API are not verified (not modelled)"),
        ),
        Fact(
            "invalid adapter",
            "skipped: 'only valid, readable adapter directories are loaded'",
            Source(NIM2_LORA, "?", "that a bad one is skipped rather than fatal is inferred"),
        ),
        Fact(
            "LoRA rank",
            "NIM passes --enable-lora, --max-loras, --max-cpu-loras, --max-lora-rank to vLLM; "
            "`NIM_MAX_LORA_RANK` as in 1.x",
            Source(NIM2_LORA, "?", "the env name in 2.x is not verified"),
        ),
        Fact(
            "LoRA profile",
            "select a feat_lora profile, e.g. `NIM_MODEL_PROFILE=vllm-fp16-tp1-pp1-feat_lora`",
            Source(NIM2_LORA),
        ),
        *_nim_profile_facts(v2=True),
    ),
    profiles={NIM2_IMAGE: _manifest(NIM2_IMAGE, "vllm", "-feat_lora", {})},
)


def _vllm_facts(src: str, v034: bool) -> tuple[Fact, ...]:
    api = src + ("vllm/entrypoints/openai/api_server.py" if not v034 else "vllm/entrypoints/serve/")
    return (
        Fact("port", "`--port`, default 8000", Source(src + "vllm/entrypoints/openai/cli_args.py")),
        Fact(
            "loading",
            "the socket is bound but not listening until the engine is loaded: connection refused, not 503",
            Source(VLLM_011_SRC + "vllm/entrypoints/openai/api_server.py L1801-1811, L1888-1917"),
        ),
        Fact(
            "health",
            "`GET /health` (alias `/ping`): 200; 503 only when the engine is dead",
            Source(api + (" L345-352" if not v034 else "instrumentator/health.py L22-33")),
        ),
        Fact(
            "models",
            "`GET /v1/models`: the base model, then each loaded adapter `{id, root: path, parent: base}`",
            Source(VLLM_011_SRC + "vllm/entrypoints/openai/serving_models.py show_available_models"),
        ),
        Fact("metrics path", "`GET /metrics` on the API port", Source(api)),
        Fact(
            "metric names",
            "`vllm:` prefix, labels `model_name`, `engine` (the docs' example omits `engine`)",
            Source(src + "vllm/v1/metrics/loggers.py L173-175"),
        ),
        Fact(
            "model_name",
            "the first served name of the base model for every request: adapters are not split",
            Source(VLLM_011_SRC + "vllm/v1/metrics/loggers.py L173-175; vllm/config/model.py get_served_model_name"),
        ),
        Fact(
            "e2e buckets",
            "0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10 ... 7680 s: nothing below 0.3 s is resolved"
            + (" (changeable: --custom-histogram-buckets)" if v034 else ""),
            Source(src + ("vllm/v1/metrics/loggers.py L426-437" if not v034 else "vllm/v1/metrics/buckets.py L30")),
        ),
        Fact(
            "finish reasons",
            "`vllm:request_success_total{finished_reason}`: "
            + ("stop, length, abort, error, repetition" if v034 else "stop, length, abort"),
            Source(src + "vllm/v1/engine/__init__.py"),
        ),
        Fact(
            "HTTP counter",
            "`http_requests_total{handler, method, status}`, status grouped `2xx`/`4xx`/`5xx`; not "
            "for /metrics, /health, /load, /ping, /version, /server_info; streaming errors after the first byte stay "
            "2xx",
            Source(PFI + "middleware.py L23, L202-203; " + api),
        ),
        Fact(
            "engine error",
            'HTTP 500, empty body; `status="5xx"`'
            + ('; `finished_reason="error"`' if v034 else "; no finish reason counted"),
            Source(
                VLLM_011_SRC
                + "vllm/entrypoints/launcher.py"
                + ("; " + VLLM_034_SRC + "vllm/v1/engine/__init__.py L69-87" if v034 else "")
            ),
        ),
        Fact(
            "unknown model",
            'HTTP 404 NotFoundError "The model `X` does not exist."; `status="4xx"`; no engine series',
            Source(VLLM_011_SRC + "vllm/entrypoints/openai/serving_engine.py _check_model L466-488"),
        ),
        Fact(
            "TP",
            "`--tensor-parallel-size`; needs that many GPUs",
            Source(src + "vllm/engine/arg_utils.py", "?", "the start-up failure text is not quoted"),
        ),
        Fact(
            "adapters",
            "`--enable-lora`, `--lora-modules name=path ...` loaded at start-up",
            Source(VLLM_011_SRC + "vllm/entrypoints/openai/cli_args.py L33-66, L95-99"),
        ),
        Fact(
            "invalid adapter",
            "a static adapter that is missing or above --max-lora-rank: ValueError, the server does not start",
            Source(VLLM_011_SRC + "vllm/entrypoints/openai/serving_models.py L74-88"),
        ),
        Fact(
            "LoRA rank",
            "`--max-lora-rank`, default 16, one of "
            + ("1, 8, 16, 32, 64, 128, 256, 320, 512" if v034 else "8, 16, 32, 64, 128, 256, 320, 512"),
            Source(src + "vllm/config/lora.py" + (" L26" if v034 else " L33, L104-109")),
        ),
        Fact(
            "LoRA slots",
            "`--max-loras` (default 1), `--max-cpu-loras` (>= max-loras)",
            Source(src + "vllm/config/lora.py"),
            modelled=False,
        ),
        Fact(
            "runtime adapters",
            "`POST /v1/load_lora_adapter {lora_name, lora_path}` / `POST /v1/unload_lora_adapter {lora_name}`, "
            "mounted only with `VLLM_ALLOW_RUNTIME_LORA_UPDATING` 1/true (else 404): 200 `Success: LoRA adapter "
            "'X' added successfully.`; 400 for a missing field, a name already loaded or a rank above "
            "--max-lora-rank; 404 when no adapter is at the path, or unloading a name not loaded. The adapter "
            "is listed in /v1/models (`root`: the lora_path it was loaded from, `parent`: the base model) and served "
            "from then on. AdapterOps' adapter agent calls them with canary.adapterRollout InPlace (a new version "
            "behind a loaded name: unload, then load) and reads what is loaded from /v1/models",
            Source(VLLM_011_SRC + "vllm/entrypoints/openai/serving_models.py L123-223"),
        ),
        Fact("profile", "none: TP, dtype and quantization are flags", Source(src + "vllm/engine/arg_utils.py")),
    )


def _vllm(key: str, title: str, covers: str, image: str, src: str, metrics: tuple[Metric, ...]) -> EngineVersion:
    v034 = key == "vllm-0.34"
    return EngineVersion(
        key=key,
        engine="vllm",
        title=title,
        covers=covers,
        line="vllm",
        images=(image,),
        port_setting="--port",
        live_path="/health",
        ready_path="/health",
        metrics_path="/metrics",
        listens_while_loading=False,
        metrics=metrics,
        error_status=500,
        error_finish_reason="error" if v034 else None,
        error_body_empty=True,
        not_found_status=404,
        invalid_adapter="fatal",
        adapters_from="--lora-modules",
        facts=_vllm_facts(src, v034),
    )


VLLM_0_11 = _vllm(
    "vllm-0.11",
    "vLLM 0.11",
    "0.11.0 to 0.12.0 (checked: 0.11.0, 0.11.1, 0.12.0)",
    VLLM_011_IMAGE,
    VLLM_011_SRC,
    VLLM_011_METRICS,
)
VLLM_0_34 = _vllm(
    "vllm-0.34",
    "vLLM 0.34",
    "after 0.12 (checked: 0.34.0, the newest; assumed for 0.13 to 0.33)",
    VLLM_034_IMAGE,
    VLLM_034_SRC,
    VLLM_034_METRICS,
)

VERSIONS: tuple[EngineVersion, ...] = (NIM1, NIM2, VLLM_0_11, VLLM_0_34)


def by_image(image: str) -> EngineVersion | None:
    """The engine version a test-world image plays."""
    return next((v for v in VERSIONS if image in v.images), None)


def by_key(key: str) -> EngineVersion:
    found = next((v for v in VERSIONS if v.key == key), None)
    if found is None:
        raise KeyError(f"no engine version {key!r}; known: {', '.join(v.key for v in VERSIONS)}")
    return found
