"""The operator <-> trainer contract: versioned schema snapshot, strictness, the 4 KiB result document."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any, get_args

import jsonschema
import pytest
from pydantic import ValidationError

from adapterops_common import contract
from adapterops_common.contract import (
    CONTRACT_VERSION,
    TERMINATION_MESSAGE_LIMIT,
    TRIAL_SPEC_VERSION,
    JudgeSummary,
    TrialResult,
    TrialSpec,
    document_schema,
    explain,
)
from testworld.trials import trial_spec

REGENERATE = "python -m adapterops_common.contract --write-schema"


def spec_doc(**overrides: Any) -> dict[str, Any]:
    return trial_spec("/models/tiny", "/out/t", **overrides)


def validate(text: str) -> dict[str, object]:
    doc = json.loads(text)
    jsonschema.validate(doc, document_schema("TrialResult"))
    return doc


# --------------------------------------------------------------------------- versioning


def test_schema_matches_the_committed_snapshot_of_this_contract_version() -> None:
    path = contract.schema_path()
    assert path.exists(), f"no snapshot for contract v{CONTRACT_VERSION}: write it with `{REGENERATE}`"
    assert path.read_text() == contract.render_schema(), (
        f"TrialSpec/TrialResult no longer match {path.name}, the schema of contract v{CONTRACT_VERSION} that "
        "released operator and trainer images speak. A wire change needs a new version: bump CONTRACT_VERSION, "
        f"TrialSpec.apiVersion and TrialResult.v in adapterops_common/contract.py, then run `{REGENERATE}` "
        "(released snapshots are never rewritten)"
    )


def test_version_constants_agree() -> None:
    spec_version = get_args(TrialSpec.model_fields["api_version"].annotation)
    result_version = get_args(TrialResult.model_fields["v"].annotation)
    assert spec_version == (TRIAL_SPEC_VERSION,)
    assert f"adapterops.io/trial-spec/v{CONTRACT_VERSION}" == TRIAL_SPEC_VERSION
    assert result_version == (CONTRACT_VERSION,) and contract.RESULT_VERSION == CONTRACT_VERSION


def test_every_committed_snapshot_declares_its_own_version() -> None:
    snapshots = sorted(contract.SCHEMA_DIR.glob("trial-contract.v*.json"))
    versions = [int(re.fullmatch(r"trial-contract\.v(\d+)\.json", p.name)[1]) for p in snapshots]  # type: ignore[index]
    assert versions == list(range(1, CONTRACT_VERSION + 1)), "a released version's snapshot is missing"
    for path, version in zip(snapshots, versions, strict=True):
        doc = json.loads(path.read_text())
        assert doc["x-adapterops-contract-version"] == version
        assert doc["$defs"]["TrialSpec"]["properties"]["apiVersion"]["const"] == f"adapterops.io/trial-spec/v{version}"


def test_write_schema_refuses_to_rewrite_a_released_version(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    changed = tmp_path / contract.schema_path().name
    changed.write_text('{"changed": true}\n')
    monkeypatch.setattr(contract, "SCHEMA_DIR", tmp_path)
    assert contract.main(["--write-schema"]) == 1
    assert changed.read_text() == '{"changed": true}\n'
    changed.unlink()
    assert contract.main(["--write-schema"]) == 0  # a new version's snapshot is written
    assert changed.read_text() == contract.render_schema()


def test_schema_module_runs_as_a_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "adapterops_common.contract"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert json.loads(out)["x-adapterops-contract-version"] == CONTRACT_VERSION


# --------------------------------------------------------------------------- strictness


def test_a_complete_spec_validates_against_model_and_schema() -> None:
    doc = spec_doc()
    jsonschema.validate(doc, document_schema("TrialSpec"))
    assert TrialSpec.model_validate(doc).model_dump(by_alias=True, exclude_none=True, mode="json") == doc


def test_unknown_field_is_refused_and_named() -> None:
    doc = spec_doc()
    doc["training"]["gradientCheckpointing"] = True  # what a newer operator might send
    with pytest.raises(ValidationError) as err:
        TrialSpec.model_validate(doc)
    message = explain(err.value)
    assert message.startswith(
        f"training.gradientCheckpointing: unknown field (value True); contract {TRIAL_SPEC_VERSION} accepts here: "
        "maxSteps, epochs, learningRate, optimizer,"
    )
    assert message.endswith(
        "the sender speaks another contract than this image: run operator and trainer images of one AdapterOps release"
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, document_schema("TrialSpec"))


def test_other_contract_version_is_refused_with_the_accepted_one() -> None:
    with pytest.raises(ValidationError) as err:
        TrialSpec.model_validate(spec_doc(apiVersion="adapterops.io/trial-spec/v9"))
    assert explain(err.value) == (
        f"apiVersion: 'adapterops.io/trial-spec/v9' is not accepted: Input should be '{TRIAL_SPEC_VERSION}'"
    )


def test_nothing_is_left_for_the_trainer_to_default() -> None:
    doc = spec_doc()
    del doc["lora"]["targetModules"], doc["dataset"]["validationFraction"], doc["gpus"]
    with pytest.raises(ValidationError) as err:
        TrialSpec.model_validate(doc)
    assert explain(err.value) == (
        f"missing, required by contract {TRIAL_SPEC_VERSION}: dataset.validationFraction, lora.targetModules, gpus"
    )


def test_values_outside_the_contract_name_field_value_and_what_is_accepted() -> None:
    doc = spec_doc()
    doc["lora"]["targetModules"] = ["q_proj", "lm_head"]
    doc["training"]["epochs"] = 2  # and maxSteps: exactly one is accepted
    with pytest.raises(ValidationError) as err:
        TrialSpec.model_validate(doc)
    message = explain(err.value)
    assert "lora.targetModules.1: 'lm_head' is not accepted: Input should be 'linear_qkv'" in message
    assert "training: training sets maxSteps=16 and epochs=2.0; exactly one of them is accepted" in message


# --------------------------------------------------------------------------- the result document


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


def test_the_result_fits_whatever_the_uris_length_and_keeps_the_scores_and_the_adapter() -> None:
    long_prefix = "s3://bucket/" + "deep/" * 410  # an output.uri near its 2048-character limit
    result = TrialResult(
        status="succeeded",
        message="done: " + "é" * 500,  # escaped as \u00e9 in the compact JSON: 6 bytes each
        backend="hf",
        validation_loss=0.25,
        train_loss=0.2,
        judge=JudgeSummary(status="ok", mean=3.4, std=0.8, samples=40, requested=40),
        adapter_uri=long_prefix + "job-1234abcd/trial-t00/adapter",
        metrics_uri=long_prefix + "job-1234abcd/trial-t00/metrics.json",
    )
    text = result.to_termination_message()
    assert len(text.encode()) <= TERMINATION_MESSAGE_LIMIT
    doc = validate(text)
    assert doc["adapterUri"] == result.adapter_uri and doc["validationLoss"] == 0.25
    assert doc["judge"]["mean"] == 3.4 and "metricsUri" not in doc


def test_wrong_documents_are_rejected() -> None:
    schema = document_schema("TrialResult")
    refused_by_both: list[dict[str, Any]] = [
        {"v": 2, "status": "maybe"},
        {"v": 1, "status": "failed"},  # the released v1: an older trainer image's document
        {"v": 2, "status": "failed", "retryHint": "later"},  # a newer trainer's field: refused, not dropped
    ]
    for bad in [*refused_by_both, {"status": "failed", "steps": "3"}]:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    for bad in refused_by_both:
        with pytest.raises(ValidationError):
            TrialResult.model_validate_json(json.dumps(bad))
