"""The adapter agent (adapterops_common.agent) against the vLLM stand-in run as its own process, with run-time
LoRA updating on (vLLM's /v1/load_lora_adapter and /v1/unload_lora_adapter and their status codes): it loads
what the annotation file asks for, replaces an adapter behind the same name (unload + load, since a second
load of a loaded name is a 400), reports what the engine lists, and is Ready only while that is what was
asked; an engine refusal is its error, and what was loaded stays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapterops_common.agent import Agent, serve, version_of_uri
from testworld.cluster import free_port

STANDIN = Path(__file__).resolve().parents[2] / "hack" / "testworld" / "nim.py"


def adapter(root: Path, name: str, rank: int = 8) -> str:
    path = root / name
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": rank}))
    (path / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    return str(path)


@pytest.fixture
def vllm(tmp_path: Path) -> Iterator[str]:
    """vLLM 0.11's stand-in with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING, on a free port."""
    port = free_port()
    env = {**os.environ, "POD_IP": "127.0.0.1", "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "1"}
    env |= {"STANDIN_STARTUP_SECONDS": "0", "STANDIN_LORA_LOAD_SECONDS": "0.05"}
    argv = [sys.executable, str(STANDIN), "--engine-version", "vllm-0.11", "--served-model-name", "base"]
    argv += ["--enable-lora", "--max-lora-rank", "32", "--port", str(port)]
    log = (tmp_path / "engine.log").open("wb")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                break
        except OSError:
            assert proc.poll() is None, (tmp_path / "engine.log").read_text()
            assert time.monotonic() < deadline, "the stand-in did not start in 30s"
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)
    log.close()


def models(url: str) -> dict[str, str]:
    with urllib.request.urlopen(f"{url}/v1/models", timeout=5) as r:
        return {m["id"]: m["root"] for m in json.load(r)["data"] if m.get("parent")}


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_the_agent_loads_replaces_and_unloads_adapters_as_the_annotation_asks(vllm: str, tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    v1, v2 = adapter(sources, "v1"), adapter(sources, "v2")
    wanted = tmp_path / "wanted" / "adapters.json"
    root = tmp_path / "adapters"
    with httpx.Client() as http:
        agent = Agent(root, wanted, vllm, http, drain=0.0)
        port = free_port()
        server = serve(agent, "127.0.0.1", port)
        try:
            agent.step()  # no annotation yet: nothing asked, not Ready
            assert get(f"http://127.0.0.1:{port}/ready")[0] == 503 and agent.status()["wanted"] is None

            wanted.parent.mkdir()
            wanted.write_text(json.dumps({"commerce": v1}))
            agent.step()
            assert models(vllm) == {"commerce": str(root / "commerce" / version_of_uri(v1))}
            code, status = get(f"http://127.0.0.1:{port}/status")
            assert code == 200 and status["loaded"] == {"commerce": version_of_uri(v1)} and status["ready"]
            assert get(f"http://127.0.0.1:{port}/ready")[0] == 200

            wanted.write_text(json.dumps({"commerce": v2}))  # a new champion behind the same name
            agent.step()
            assert models(vllm) == {"commerce": str(root / "commerce" / version_of_uri(v2))}
            assert agent.ready() and agent.status()["error"] == ""
            assert sorted(p.name for p in (root / "commerce").iterdir()) == [version_of_uri(v2)]  # old one gone

            wanted.write_text(json.dumps({}))
            agent.step()
            assert models(vllm) == {} and agent.ready()
        finally:
            server.shutdown()


def test_an_engine_refusal_is_the_agents_error_and_the_old_adapter_is_loaded_again(vllm: str, tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    good, too_big = adapter(sources, "good"), adapter(sources, "big", rank=64)  # --max-lora-rank 32
    wanted = tmp_path / "adapters.json"
    with httpx.Client() as http:
        agent = Agent(tmp_path / "adapters", wanted, vllm, http, drain=0.0)
        wanted.write_text(json.dumps({"commerce": good}))
        agent.step()
        assert agent.ready()
        wanted.write_text(json.dumps({"commerce": too_big}))
        agent.step()
        status = agent.status()
        assert "HTTP 400" in status["error"] and "max_lora_rank" in status["error"]
        assert not status["ready"]
        # vLLM refused the new one after the old was unloaded: the agent loaded the old one again.
        assert status["loaded"] == {"commerce": version_of_uri(good)} and "commerce" in models(vllm)
        agent.step()  # not tried again at once: each try would take the pod out of the Service
        assert "HTTP 400" in agent.status()["error"] and "commerce" in models(vllm)
        wanted.write_text(json.dumps({"commerce": good}))  # rolled back: the good one is what is asked again
        agent.step()
        assert agent.ready() and agent.status()["error"] == ""


def test_a_replacement_turns_readiness_off_for_the_drain_before_unloading(vllm: str, tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    v1, v2 = adapter(sources, "v1"), adapter(sources, "v2")
    wanted = tmp_path / "adapters.json"
    with httpx.Client() as http:
        agent = Agent(tmp_path / "adapters", wanted, vllm, http, drain=0.5)
        wanted.write_text(json.dumps({"commerce": v1}))
        agent.step()
        wanted.write_text(json.dumps({"commerce": v2}))
        seen: list[tuple[bool, dict[str, str]]] = []
        worker = threading.Thread(target=agent.step)
        worker.start()
        time.sleep(0.25)  # within the drain: not Ready, the old adapter still served
        seen.append((agent.ready(), models(vllm)))
        worker.join()
        assert seen == [(False, {"commerce": str(tmp_path / "adapters" / "commerce" / version_of_uri(v1))})]
        assert agent.ready()
