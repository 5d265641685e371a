"""The stand-in engine (hack/testworld/nim.py) serves what the engine table documents for each version:
the series, labels and bucket bounds of its scrape and nothing else, its HTTP counter or none, failures
counted as the version counts them, profiles that stop start-up, adapters listed only once loaded, and
vLLM refusing connections until it has loaded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientConnectorError, ClientSession
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from testworld import engines
from testworld.engines import NIM1_IMAGE, NIM2_IMAGE, EngineVersion
from testworld.nim import Engine, StartupError, main, parse, serve

PROMPT = {"model": "base", "messages": [{"role": "user", "content": "red shoes"}]}
H100 = "NVIDIA-H100-80GB-HBM3"


def adapter(root: Path, name: str, rank: int = 8) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": rank}))
    (path / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    return path


def engine(version: EngineVersion, tmp_path: Path, *flags: str, gpus: int = 1, **env: str) -> Engine:
    """The stand-in of `version` as the operator's pod would start it (adapters in tmp_path/adapters)."""
    image = version.images[0]
    argv = ["--image", image, "--visible-gpus", str(gpus), "--gpu-product", H100]
    base = {"STANDIN_LATENCY_MEDIAN": "0.001", "STANDIN_STARTUP_SECONDS": "0", "STANDIN_SEED": "1"}
    if version.engine == "nim":
        base |= {"NIM_SERVED_MODEL_NAME": "base", "NIM_PEFT_SOURCE": str(tmp_path / "adapters")}
        base["NIM_MODEL_PROFILE"] = engines.nim_profiles()[image]["H100/tp1/bf16/lora"]
    else:
        argv += ["--served-model-name", "base", "--enable-lora", "--max-lora-rank", "32"]
    return Engine(version, parse([*argv, *flags]), base | env)


@contextlib.asynccontextmanager
async def running(e: Engine) -> AsyncIterator[TestClient[Any, Any]]:
    e.load_adapters()
    e.loaded = True
    async with TestClient(TestServer(e.app())) as client:
        yield client


async def scrape(client: TestClient[Any, Any], e: Engine) -> dict[str, Any]:
    resp = await client.get(e.version.metrics_path)
    assert resp.status == 200
    # `*_created`: prometheus_client's own, switched off process-wide by the stand-in's main() (as the
    # engines' scrapes show none), which an in-process test must not do to the test process.
    families = text_string_to_metric_families(await resp.text())
    return {f.name: f for f in families if not f.name.endswith("_created")}


@pytest.mark.parametrize("version", engines.VERSIONS, ids=lambda v: v.key)
async def test_the_scrape_has_exactly_the_documented_series_labels_and_buckets(
    version: EngineVersion, tmp_path: Path
) -> None:
    adapter(tmp_path / "adapters", "commerce")
    flags = ("--lora-modules", f"commerce={tmp_path / 'adapters' / 'commerce'}") if version.engine == "vllm" else ()
    e = engine(version, tmp_path, *flags, STANDIN_ERROR_RATE="0.5")
    async with running(e) as client:
        for model in ("base", "commerce", "commerce", "missing"):
            await client.post("/v1/chat/completions", json={**PROMPT, "model": model})
        families = await scrape(client, e)
    documented = {m.name.removesuffix("_total"): m for m in version.metrics}
    assert set(families) == set(documented), "the stand-in exports what the table lists, nothing else"
    for name, family in families.items():
        m = documented[name]
        assert family.type == m.type
        for sample in family.samples:
            labels = {k for k in sample.labels if k not in ("le", "quantile")}
            assert labels <= set(m.labels), (name, sample.labels)
            for label, values in m.values:
                if label in sample.labels:
                    assert sample.labels[label] in values, (name, sample.labels)
        if m.buckets:
            bounds = sorted({float(s.labels["le"]) for s in family.samples if "le" in s.labels})
            assert bounds == [*m.buckets, float("inf")], name


async def test_nim_1_counts_no_http_status_and_vllm_groups_it(tmp_path: Path) -> None:
    for version in (engines.NIM1, engines.VLLM_0_11):
        e = engine(version, tmp_path / version.key, STANDIN_ERROR_RATE="1")
        async with running(e) as client:
            assert (await client.post("/v1/chat/completions", json=PROMPT)).status == 500
            assert (await client.post("/v1/chat/completions", json={**PROMPT, "model": "nope"})).status == 404
            await client.get("/v1/models")
            families = await scrape(client, e)
        if version is engines.NIM1:
            assert "http_requests" not in families
            continue
        counted = {
            (s.labels["handler"], s.labels["method"], s.labels["status"]): s.value
            for s in families["http_requests"].samples
            if s.name == "http_requests_total"
        }
        assert counted == {
            ("/v1/chat/completions", "POST", "5xx"): 1.0,
            ("/v1/chat/completions", "POST", "4xx"): 1.0,
            ("/v1/models", "GET", "2xx"): 1.0,
        }


@pytest.mark.parametrize(
    ("version", "counted"),
    [
        (engines.NIM1, {"request_failure_total": 1.0, "request_success_total": 0.0}),
        (engines.NIM2, {}),  # vLLM under NIM 2.x: no `error` finish reason (not verified)
        (engines.VLLM_0_11, {}),
        (engines.VLLM_0_34, {"vllm:request_success_total/error": 1.0}),
    ],
    ids=lambda v: getattr(v, "key", ""),
)
async def test_an_engine_error_is_counted_as_the_version_counts_it(
    version: EngineVersion, counted: dict[str, float], tmp_path: Path
) -> None:
    e = engine(version, tmp_path, STANDIN_ERROR_RATE="1")
    async with running(e) as client:
        resp = await client.post("/v1/chat/completions", json=PROMPT)
        assert resp.status == 500 and (await resp.read() == b"") == version.error_body_empty
        families = await scrape(client, e)
    seen: dict[str, float] = {}
    for family in families.values():
        for s in family.samples:
            if s.name in ("request_failure_total", "request_success_total"):
                seen[s.name] = seen.get(s.name, 0.0) + s.value
            if s.name == "vllm:request_success_total":
                seen[f"{s.name}/{s.labels['finished_reason']}"] = s.value
    assert seen == counted


async def test_a_pinned_profile_that_does_not_fit_the_gpus_stops_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    table = engines.nim_profiles()[NIM1_IMAGE]
    with pytest.raises(StartupError, match="Could not match a profile in manifest"):
        engine(engines.NIM1, tmp_path, NIM_MODEL_PROFILE=table["H100/tp4/bf16/lora"])  # 1 GPU visible
    with pytest.raises(StartupError, match="Could not match a profile in manifest"):
        e = engine(engines.NIM1, tmp_path, gpus=4, NIM_MODEL_PROFILE=table["B200/tp4/bf16/lora"])  # on an H100
    with pytest.raises(StartupError, match="Unknown profiles provided"):
        engine(engines.NIM1, tmp_path, NIM_MODEL_PROFILE="f" * 64)
    e = engine(engines.NIM1, tmp_path, gpus=4, NIM_MODEL_PROFILE=table["H100/tp4/bf16/lora"])
    assert e.profile is not None and e.profile.tp == 4 and e.lora
    # As a process: the message, and exit status 1.
    monkeypatch.setenv("NIM_MODEL_PROFILE", table["H100/tp2/bf16"])
    assert main(["--image", NIM1_IMAGE, "--visible-gpus", "1", "--gpu-product", H100]) == 1
    assert "Could not match a profile in manifest" in capsys.readouterr().err


async def test_a_profile_without_lora_serves_no_adapters(tmp_path: Path) -> None:
    adapter(tmp_path / "adapters", "commerce")
    base_only = engines.nim_profiles()[NIM2_IMAGE]["H100/tp1/bf16"]
    e = engine(engines.NIM2, tmp_path, NIM_MODEL_PROFILE=base_only)
    async with running(e) as client:
        models = [m["id"] for m in (await (await client.get("/v1/models")).json())["data"]]
        assert models == ["base"]
        assert (await client.post("/v1/chat/completions", json={**PROMPT, "model": "commerce"})).status == 404


async def test_nim_lists_an_adapter_only_once_a_scan_loaded_it_and_skips_a_bad_one(tmp_path: Path) -> None:
    root = tmp_path / "adapters"
    adapter(root, "commerce")
    adapter(root, "huge", rank=64)
    (root / "broken").mkdir()
    e = engine(engines.NIM1, tmp_path, NIM_PEFT_REFRESH_INTERVAL="0.05", NIM_MAX_LORA_RANK="32")
    async with TestClient(TestServer(e.app())) as client:

        async def listed() -> list[str]:
            return [m["id"] for m in (await (await client.get("/v1/models")).json())["data"]]

        assert await listed() == ["base"]  # not loaded yet
        assert (await client.get("/v1/health/ready")).status == 503
        assert (await client.get("/v1/health/live")).status == 200
        e.load_adapters()
        e.loaded = True
        assert await listed() == ["base", "commerce"]  # broken and rank 64 > 32 skipped
        assert (await client.get("/v1/health/ready")).status == 200
        adapter(root, "late")
        refresh = asyncio.create_task(e.refresh_adapters())
        try:
            for _ in range(100):
                if "late" in await listed():
                    break
                await asyncio.sleep(0.02)
            assert await listed() == ["base", "commerce", "late"]
        finally:
            refresh.cancel()
    assert any("skipping adapter huge: rank 64 > NIM_MAX_LORA_RANK 32" in line for line in e.log)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--lora-modules", "commerce=/nonexistent"), "No adapter found for /nonexistent"),
        (("--lora-modules", "big={big}"), "LoRA rank 64 is greater than max_lora_rank 32."),
        (("--max-lora-rank", "24"), "max_lora_rank (24) must be one of"),
        (("--tensor-parallel-size", "2"), "tensor_parallel_size (2) is larger than the number of available GPUs"),
    ],
)
async def test_vllm_does_not_start_on_a_bad_static_adapter_or_flag(
    flags: tuple[str, ...], says: str, tmp_path: Path
) -> None:
    big = adapter(tmp_path / "adapters", "big", rank=64)
    with pytest.raises(StartupError) as exc:
        e = engine(engines.VLLM_0_11, tmp_path, *(f.format(big=big) for f in flags))
        e.load_adapters()
    assert says in str(exc.value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_vllm_refuses_connections_until_loaded_while_nim_is_live_and_not_ready(tmp_path: Path) -> None:
    for version in (engines.VLLM_0_11, engines.NIM1):
        port = free_port()
        flags = ("--port", str(port)) if version.engine == "vllm" else ()
        e = engine(version, tmp_path / version.key, *flags, STANDIN_STARTUP_SECONDS="0.6", NIM_SERVER_PORT=str(port))
        task = asyncio.create_task(serve(e, "127.0.0.1"))
        try:
            async with ClientSession() as http:
                await asyncio.sleep(0.2)
                if version.engine == "vllm":
                    with pytest.raises(ClientConnectorError):
                        await http.get(f"http://127.0.0.1:{port}/health")
                else:
                    assert (await http.get(f"http://127.0.0.1:{port}/v1/health/live")).status == 200
                    assert (await http.get(f"http://127.0.0.1:{port}/v1/health/ready")).status == 503
                await asyncio.sleep(0.8)
                resp = await http.get(f"http://127.0.0.1:{port}{version.ready_path}")
                assert resp.status == 200
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_vllm_loads_and_unloads_adapters_at_run_time_only_when_allowed(tmp_path: Path) -> None:
    v2 = adapter(tmp_path / "adapters", "v2")
    big = adapter(tmp_path / "adapters", "big", rank=64)
    async with running(engine(engines.VLLM_0_11, tmp_path)) as client:
        assert (await client.post("/v1/load_lora_adapter", json={"lora_name": "x", "lora_path": str(v2)})).status == 404
    e = engine(engines.VLLM_0_34, tmp_path, VLLM_ALLOW_RUNTIME_LORA_UPDATING="True")
    async with running(e) as client:
        ask = {**PROMPT, "model": "commerce-v2"}
        assert (await client.post("/v1/chat/completions", json=ask)).status == 404
        loaded = await client.post("/v1/load_lora_adapter", json={"lora_name": "commerce-v2", "lora_path": str(v2)})
        assert loaded.status == 200 and await loaded.text() == "Success: LoRA adapter 'commerce-v2' added successfully."
        models = await (await client.get("/v1/models")).json()
        assert [m["id"] for m in models["data"]] == ["base", "commerce-v2"]
        assert (await client.post("/v1/chat/completions", json=ask)).status == 200
        again = await client.post("/v1/load_lora_adapter", json={"lora_name": "commerce-v2", "lora_path": str(v2)})
        assert again.status == 400 and "already been loaded" in (await again.json())["message"]
        missing = await client.post("/v1/load_lora_adapter", json={"lora_name": "m", "lora_path": str(tmp_path)})
        assert missing.status == 404 and "No adapter found" in (await missing.json())["message"]
        too_big = await client.post("/v1/load_lora_adapter", json={"lora_name": "b", "lora_path": str(big)})
        assert too_big.status == 400 and "greater than max_lora_rank 32" in (await too_big.json())["message"]
        gone = await client.post("/v1/unload_lora_adapter", json={"lora_name": "commerce-v2"})
        assert gone.status == 200 and (await client.post("/v1/chat/completions", json=ask)).status == 404
        assert (await client.post("/v1/unload_lora_adapter", json={"lora_name": "commerce-v2"})).status == 404


async def times_of(client: TestClient[Any, Any], n: int) -> list[float]:
    """Send n requests at once; each one's seconds from the start to its answer, sorted."""
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def ask() -> float:
        assert (await client.post("/v1/chat/completions", json=PROMPT)).status == 200
        return loop.time() - start

    return sorted(await asyncio.gather(*(ask() for _ in range(n))))


async def test_requests_beyond_max_num_seqs_wait_counted_and_a_bigger_batch_is_slower(tmp_path: Path) -> None:
    # A fixed 0.2 s latency (no spread), two slots, six requests at once: three waves, the queue visible.
    fixed = {"STANDIN_LATENCY_MEDIAN": "0.2", "STANDIN_LATENCY_SIGMA": "0", "STANDIN_MAX_NUM_SEQS": "2"}
    e = engine(engines.VLLM_0_11, tmp_path / "queue", **fixed)
    async with running(e) as client:
        asked = asyncio.create_task(times_of(client, 6))
        await asyncio.sleep(0.1)
        during = await scrape(client, e)
        finished = await asked
        after = await scrape(client, e)
    gauges = {s.name: s.value for f in during.values() for s in f.samples if "num_requests" in s.name}
    assert gauges == {"vllm:num_requests_running": 2.0, "vllm:num_requests_waiting": 4.0}
    assert [round(t / 0.2) for t in finished] == [1, 1, 2, 2, 3, 3], finished
    # The end-to-end latency counts the wait, as the engines measure it from the request's arrival.
    e2e = after["vllm:e2e_request_latency_seconds"].samples
    assert next(s.value for s in e2e if s.name.endswith("_sum")) == pytest.approx(2 * (0.2 + 0.4 + 0.6), rel=0.15)

    # Batch slowdown 0.5: alone 0.2 s; admitted with 1, 2, 3 others running: 0.3, 0.4, 0.5 s.
    slow = engine(engines.VLLM_0_11, tmp_path / "batch", **(fixed | {"STANDIN_MAX_NUM_SEQS": "8"}),
                  STANDIN_BATCH_SLOWDOWN="0.5")  # fmt: skip
    async with running(slow) as client:
        alone = await times_of(client, 1)
        together = await times_of(client, 4)
    assert alone == pytest.approx([0.2], abs=0.08)
    assert together == pytest.approx([0.2, 0.3, 0.4, 0.5], abs=0.08)
