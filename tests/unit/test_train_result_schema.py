"""The termination-log document: committed JSON Schema, 4 KiB limit, validation of real documents."""

from __future__ import annotations

import json

import jsonschema

import generate
from adapterops_train.cli import SCHEMA_PATH
from adapterops_train.spec import TERMINATION_MESSAGE_LIMIT, JudgeSummary, TrialResult


def validate(text: str) -> dict[str, object]:
    doc = json.loads(text)
    jsonschema.validate(doc, json.loads(SCHEMA_PATH.read_text()))
    return doc


def test_committed_schema_matches_the_model() -> None:
    assert generate.main(["--check", "trial-result-schema"]) == 0, "run `python hack/generate.py trial-result-schema`"


def test_documents_validate_and_fit() -> None:
    ok = TrialResult(
        status="succeeded",
        backend="hf",
        validation_loss=1.25,
        train_loss=1.5,
        steps=40,
        judge=JudgeSummary(status="ok", mean=3.4, std=0.8, samples=40, requested=40),
        adapter_uri="s3://out/j/t/adapter",
        metrics_uri="s3://out/j/t/metrics.json",
        duration_seconds=12.5,
    )
    doc = validate(ok.to_termination_message())
    assert doc["judge"] == {"status": "ok", "mean": 3.4, "std": 0.8, "samples": 40, "requested": 40}
    down = TrialResult(status="succeeded", judge=JudgeSummary(status="unavailable", requested=40, message="refused"))
    assert "mean" not in validate(down.to_termination_message())["judge"]


def test_long_failure_message_is_cut_never_the_numbers() -> None:
    failed = TrialResult(status="failed", reason="DatasetInvalid", message="x.jsonl:1: bad\n" * 2000, steps=3)
    text = failed.to_termination_message()
    assert len(text.encode()) <= TERMINATION_MESSAGE_LIMIT
    doc = validate(text)
    assert doc["reason"] == "DatasetInvalid" and doc["steps"] == 3 and str(doc["message"]).endswith("...")


def test_wrong_documents_are_rejected() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    for bad in ({"v": 1, "status": "maybe"}, {"v": 2, "status": "failed"}, {"status": "failed", "steps": "3"}):
        try:
            jsonschema.validate(bad, schema)
        except jsonschema.ValidationError:
            continue
        raise AssertionError(f"schema accepted {bad}")
