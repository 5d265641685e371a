"""Failures through the real entrypoint: non-zero exit and the reason in the termination log.
None of these reach training, so they run without the training extra."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema

from adapterops_train.cli import SCHEMA_PATH
from adapterops_train.spec import EXIT_PERMANENT

REPO = Path(__file__).resolve().parents[2]
GOOD_ROW = {"messages": [{"role": "user", "content": "red mug"}, {"role": "assistant", "content": "red mug"}]}


def run_cli(tmp_path: Path, spec: dict[str, Any] | str) -> tuple[int, dict[str, Any]]:
    spec_path = tmp_path / "trial.json"
    spec_path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    log = tmp_path / "termination-log"
    proc = subprocess.run(
        [sys.executable, "-m", "adapterops_train", "run", "--spec", str(spec_path), "--termination-log", str(log)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    doc = json.loads(log.read_text())
    jsonschema.validate(doc, json.loads(SCHEMA_PATH.read_text()))
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == doc  # the same document on stdout
    return proc.returncode, doc


def spec(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    base = tmp_path / "base"
    base.mkdir(exist_ok=True)
    (base / "config.json").write_text("{}")
    doc: dict[str, Any] = {
        "name": "t-0",
        "finetuneJob": "ml/j",
        "method": "sft",
        "backend": "hf",
        "baseModel": {"name": "tiny", "uri": str(base)},
        "dataset": {"train": str(tmp_path / "train.jsonl")},
        "lora": {"rank": 8},
        "training": {"maxSteps": 2},
        "outputUri": str(tmp_path / "out"),
    }
    return doc | overrides


def test_malformed_dataset_fails_with_the_line_number(tmp_path: Path) -> None:
    rows = [json.dumps(GOOD_ROW)] * 4 + ['{"messages": "not a list"}'] + [json.dumps(GOOD_ROW)]
    (tmp_path / "train.jsonl").write_text("\n".join(rows) + "\n")
    code, doc = run_cli(tmp_path, spec(tmp_path))
    assert code == EXIT_PERMANENT  # a bad row is not fixed by retrying: the Job fails at once
    assert doc["status"] == "failed" and doc["reason"] == "DatasetInvalid"
    assert doc["message"] == f"{tmp_path / 'train.jsonl'}:5: field 'messages' must be a non-empty list of messages"
    assert not (tmp_path / "out").exists()


def test_missing_inputs(tmp_path: Path) -> None:
    code, doc = run_cli(tmp_path, spec(tmp_path))
    assert (code, doc["reason"]) == (EXIT_PERMANENT, "DatasetNotFound")
    (tmp_path / "train.jsonl").write_text(json.dumps(GOOD_ROW) + "\n" + json.dumps(GOOD_ROW) + "\n")
    code, doc = run_cli(tmp_path, spec(tmp_path, baseModel={"name": "tiny", "uri": str(tmp_path / "nowhere")}))
    assert (code, doc["reason"]) == (EXIT_PERMANENT, "BaseModelNotFound")


def test_nemo_without_nemo_or_gpu_is_backend_unavailable(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text(json.dumps(GOOD_ROW) + "\n" + json.dumps(GOOD_ROW) + "\n")
    code, doc = run_cli(tmp_path, spec(tmp_path, backend="nemo"))
    assert (code, doc["reason"], doc["backend"]) == (EXIT_PERMANENT, "BackendUnavailable", "nemo")
    assert "NeMo" in doc["message"]


def test_unreadable_spec_exits_2(tmp_path: Path) -> None:
    code, doc = run_cli(tmp_path, '{"name": "t"}')
    assert (code, doc["reason"]) == (2, "SpecInvalid")
