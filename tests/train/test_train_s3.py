"""A trial run as a pod runs it: `python -m adapterops_train run` in a subprocess, base model and data
on a real S3 server (versitygw), output to S3, judge down; then the serving init container's fetch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from peft import PeftModel
from transformers import AutoModelForCausalLM

from adapterops_common import storage
from adapterops_common.contract import document_schema
from testworld.s3 import LocalS3, free_port
from testworld.trials import COMMERCE, trial_spec

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    with LocalS3(tmp_path_factory.mktemp("s3") / "root") as server:
        for bucket in ("models", "datasets", "adapters"):
            server.create_bucket(bucket)
        yield server


def prompt_response_rows(start: int, stop: int) -> str:
    """The shipped chat rows as prompt-response rows (single-turn ones), to cover that format too."""
    out = []
    for line in (COMMERCE / "train.jsonl").read_text().splitlines()[start:stop]:
        msgs = json.loads(line)["messages"]
        if len(msgs) == 3:
            out.append(
                json.dumps({"system": msgs[0]["content"], "prompt": msgs[1]["content"], "response": msgs[2]["content"]})
            )
    return "\n".join(out) + "\n"


def test_trial_pod_with_s3(s3: LocalS3, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    storage.put_tree(tiny_model, "s3://models/tiny-llama")
    (tmp_path / "train.jsonl").write_text(prompt_response_rows(0, 60))
    (tmp_path / "val.jsonl").write_text(prompt_response_rows(200, 220))
    storage.put_file(tmp_path / "train.jsonl", "s3://datasets/commerce/train.jsonl")
    storage.put_file(tmp_path / "val.jsonl", "s3://datasets/commerce/val.jsonl")
    storage.put_file(COMMERCE / "challenge.jsonl", "s3://datasets/commerce/challenge.jsonl")
    spec: dict[str, Any] = trial_spec(
        "s3://models/tiny-llama",
        "s3://adapters/ml-team/commerce-sft/trial-7",
        name="trial-7",
        dataset={
            "train": "s3://datasets/commerce/train.jsonl",
            "validation": "s3://datasets/commerce/val.jsonl",
            "format": "prompt-response",
        },
        training={"maxSteps": 4, "learningRate": 1e-3, "globalBatchSize": 4, "microBatchSize": 4, "seqLength": 256},
        evaluation={
            "dataset": "s3://datasets/commerce/challenge.jsonl",
            "samples": 4,
            "rubric": {"text": "Score 5 when the answer is a good search query."},
            "judge": {"endpoint": f"http://127.0.0.1:{free_port()}/v1", "model": "judge"},  # nobody listens
        },
    )
    spec_path, log = tmp_path / "trial.json", tmp_path / "termination-log"
    spec_path.write_text(json.dumps(spec))
    env = os.environ | {"ADAPTEROPS_TRIAL_SPEC": str(spec_path), "ADAPTEROPS_WORKDIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "adapterops_train", "run", "--termination-log", str(log)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(log.read_text())
    jsonschema.validate(result, document_schema("TrialResult"))
    assert result["adapterUri"] == "s3://adapters/ml-team/commerce-sft/trial-7/adapter"
    # The judge was down: reported as such, with no score.
    assert result["judge"]["status"] == "unavailable" and "mean" not in result["judge"]
    assert "ConnectError" in result["judge"]["message"]
    keys = {o["Key"] for o in s3.client().list_objects_v2(Bucket="adapters")["Contents"]}
    prefix = "ml-team/commerce-sft/trial-7/"
    assert {
        prefix + k
        for k in ("adapter/adapter_config.json", "adapter/adapter_model.safetensors", "metrics.json", "trial.json")
    } <= keys
    m = json.loads(s3.client().get_object(Bucket="adapters", Key=prefix + "metrics.json")["Body"].read())
    assert (
        m["data"]["split"]["mode"] == "given" and m["data"]["validation"]["uri"] == "s3://datasets/commerce/val.jsonl"
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("trial-")]  # scratch cleaned up

    # The serving pod's init container: fetch into the NIM_PEFT_SOURCE layout, then PEFT loads it.
    peft_source = tmp_path / "nim-peft"
    fetch = subprocess.run(
        [
            sys.executable,
            "-m",
            "adapterops_common",
            "fetch",
            "--adapter",
            f"commerce={result['adapterUri']}",
            "--root",
            str(peft_source),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert fetch.returncode == 0, fetch.stderr
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    model = PeftModel.from_pretrained(base, str(peft_source / "commerce"))
    assert model.peft_config["default"].r == 8
