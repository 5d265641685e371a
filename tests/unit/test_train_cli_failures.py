"""Failures through the real entrypoint: non-zero exit and the reason in the termination log.
None of these reach training, so they run without the training extra."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema

from adapterops_common.contract import EXIT_PERMANENT, TRIAL_SPEC_VERSION, document_schema
from testworld.trials import trial_spec

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
    jsonschema.validate(doc, document_schema("TrialResult"))
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == doc  # the same document on stdout
    return proc.returncode, doc


def spec(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    base = tmp_path / "base"
    base.mkdir(exist_ok=True)
    (base / "config.json").write_text("{}")
    doc = trial_spec(
        str(base),
        str(tmp_path / "out"),
        name="t-0",
        dataset={"train": str(tmp_path / "train.jsonl")},
        training={"maxSteps": 2, "scheduler": {"warmupSteps": 0}},
    )
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


def test_setting_unknown_to_this_trainer_fails_at_once_naming_it(tmp_path: Path) -> None:
    # What a newer operator sends an older trainer image: refused (exit 2, the Job is not retried), never dropped.
    doc = spec(tmp_path)
    doc["lora"] = doc["lora"] | {"useDora": True}
    code, result = run_cli(tmp_path, doc)
    assert (code, result["reason"]) == (EXIT_PERMANENT, "SpecInvalid")
    assert "lora.useDora: unknown field (value True)" in result["message"]
    assert f"contract {TRIAL_SPEC_VERSION} accepts here: rank, alpha, dropout, targetModules" in result["message"]
    assert not (tmp_path / "out").exists()


def test_spec_of_another_contract_version_is_refused(tmp_path: Path) -> None:
    code, result = run_cli(tmp_path, spec(tmp_path, apiVersion="adapterops.io/trial-spec/v1"))  # an older operator
    assert (code, result["reason"]) == (EXIT_PERMANENT, "SpecInvalid")
    assert (
        f"apiVersion: 'adapterops.io/trial-spec/v1' is not accepted: Input should be '{TRIAL_SPEC_VERSION}'"
        in (result["message"])
    )
