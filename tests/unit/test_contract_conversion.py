"""FineTuneJob (CRD models) -> the contract's TrialSpec: every API setting that reaches a trial converts,
and nothing is dropped on the way. An API field added without its contract counterpart fails here."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from typing import Any, Literal, get_args, get_origin

import pytest
from pydantic import BaseModel

from adapterops.api.finetunejob import FineTuneJobSpec
from adapterops.finetune import builders
from adapterops.finetune.plan import plan
from adapterops_common.contract import TRIAL_SPEC_VERSION, TrialSpec

OWNER: dict[str, Any] = {
    "apiVersion": "adapterops.io/v1alpha1",
    "kind": "FineTuneJob",
    "metadata": {"name": "sweep", "namespace": "ml", "uid": "0123456789abcdef"},
}
# Top-level FineTuneJobSpec fields that reach the trial through the contract (as themselves) ...
CONVERTED = ("base_model", "method", "backend", "dataset", "lora", "training", "evaluation")
# ... and those the operator consumes itself (placement, sweep, retries, where outputs go); the trial gets
# what they resolve to (gpus, nodes, outputUri, parameters), never the settings. A new top-level field
# must be added to one of the two.
OPERATOR_ONLY = (
    "sweep",
    "objective",
    "resources",
    "image",
    "output",
    "storage_secret_ref",
    "service_account_name",
    "backoff_limit",
    "trial_deadline_seconds",
    "suspend",
    "baseline",  # the operator runs the baseline Job (its own command), the trainer reads no setting of it
)
# Settings deliberately not sent: the judge's key is a file the operator mounts into the pod.
NOT_SENT = {("evaluation", "judge", "api_key_secret_ref")}

EVERY_FIELD: dict[str, Any] = {
    "baseModel": {"name": "nvidia/Llama-3.1-Nemotron-Nano-8B-v1", "uri": "s3://models/nemotron-nano-8b"},
    "method": "sft",
    "backend": "nemo",
    "dataset": {
        "train": "s3://data/train.jsonl",
        "validation": "s3://data/val.jsonl",
        "validationFraction": 0.2,
        "seed": 7,
        "format": "prompt-response",
    },
    "lora": {"rank": 32, "alpha": 64, "dropout": 0.1, "targetModules": ["linear_qkv", "down_proj"]},
    "training": {
        "maxSteps": 300,
        "learningRate": 2e-4,
        "optimizer": "adam",
        "weightDecay": 0.05,
        "scheduler": {"type": "cosine", "warmupSteps": 10, "minLearningRate": 1e-5},
        "globalBatchSize": 16,
        "microBatchSize": 2,
        "seqLength": 4096,
        "precision": "fp16",
        "seed": 11,
    },
    "sweep": {
        "strategy": "grid",
        "maxTrials": 4,
        "parallelism": 2,
        "seed": 3,
        "parameters": {"training.learningRate": {"values": [1e-4, 2e-4]}, "training.optimizer": {"choices": ["adam"]}},
    },
    "objective": {"metric": "judgeScore", "goal": "maximize"},
    "evaluation": {
        "dataset": "s3://data/challenge.jsonl",
        "samples": 20,
        "rubric": {"builtin": "hypothetical-product"},
        "judge": {
            "endpoint": "https://judge.example/v1",
            "model": "judge-70b",
            "apiKeySecretRef": {"name": "judge", "key": "api-key"},
        },
    },
    "resources": {
        "gpuType": "H100",
        "gpusPerTrial": 4,
        "nodes": 2,
        "queueName": "gpu",
        "priorityClassName": "training",
        "tolerations": [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute", "tolerationSeconds": 5}],
    },
    "image": "registry.example/trainer:1",
    "output": {"uri": "s3://adapters/runs"},
    "storageSecretRef": {"name": "storage"},
    "serviceAccountName": "trainer",
    "backoffLimit": 3,
    "trialDeadlineSeconds": 3600,
    "suspend": False,
}
# What EVERY_FIELD cannot hold at once (each is one of two): epochs instead of maxSteps, rubric text.
ALTERNATIVES: dict[str, Any] = {
    "training": {"maxSteps": None, "epochs": 2.5},
    "evaluation": {"rubric": {"builtin": None, "text": "Score 5 for a precise product query."}},
}


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        current = out.get(key)
        out[key] = merged(current, value) if isinstance(value, dict) and isinstance(current, dict) else value
    return out


def without_nulls(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: without_nulls(v) for k, v in doc.items() if v is not None}
    return doc


SPECS = [
    FineTuneJobSpec.model_validate(EVERY_FIELD),
    FineTuneJobSpec.model_validate(without_nulls(merged(EVERY_FIELD, ALTERNATIVES))),
]


def convert(spec: FineTuneJobSpec) -> TrialSpec:
    return builders.trial_spec(OWNER, plan("sweep", spec)[0], spec)


def set_paths(model: BaseModel, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Paths of the fields holding a value (None is unset), into nested models, lists and maps of them."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if value is None:
            continue
        path = (*prefix, name)
        yield path
        children = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]
        for child in children:
            if isinstance(child, BaseModel):
                yield from set_paths(child, path)


def all_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Paths of every field the API model declares, into nested models (through Optional/list/dict)."""
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        yield path
        for sub in nested_models(info.annotation):
            yield from all_paths(sub, path)


def nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in nested_models(arg)]


def literal_values(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    if get_origin(annotation) in (types.UnionType, typing.Union):
        return tuple(v for arg in get_args(annotation) for v in literal_values(arg))
    return ()


def literal_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        for value in literal_values(info.annotation):
            yield path, value
        for sub in nested_models(info.annotation):
            yield from literal_fields(sub, path)


def test_every_top_level_field_is_either_converted_or_operator_only() -> None:
    assert set(FineTuneJobSpec.model_fields) == set(CONVERTED) | set(OPERATOR_ONLY), (
        "a new FineTuneJobSpec field: add it to the contract (adapterops_common.contract.TrialSpec, a new "
        "contract version) and to CONVERTED, or to OPERATOR_ONLY when the trainer never needs it"
    )


def test_the_specs_below_set_every_field_that_reaches_a_trial() -> None:
    declared = {p for p in all_paths(FineTuneJobSpec) if p[0] in CONVERTED}
    covered = {p for s in SPECS for p in set_paths(s)}
    missing = sorted(".".join(p) for p in declared - covered)
    assert not missing, f"EVERY_FIELD/ALTERNATIVES leave these API fields unset; set them: {missing}"


@pytest.mark.parametrize("spec", SPECS, ids=["maxSteps-builtin-rubric", "epochs-text-rubric"])
def test_a_finetunejob_using_every_field_converts_without_dropping_any(spec: FineTuneJobSpec) -> None:
    planned = plan("sweep", spec)[0]
    sent = builders.trial_spec(OWNER, planned, spec).model_dump(by_alias=True, exclude_none=True, mode="json")
    assert sent["apiVersion"] == TRIAL_SPEC_VERSION
    for name in CONVERTED:
        api_value = getattr(planned.spec_of(spec), name)  # the job's spec with this trial's sweep values applied
        if isinstance(api_value, BaseModel):
            exclude = {p[1]: {p[2]} for p in NOT_SENT if p[0] == name}
            expected = api_value.model_dump(by_alias=True, exclude_none=True, mode="json", exclude=exclude or None)
        else:
            expected = api_value
        alias = TrialSpec.model_fields[name].alias or name
        assert sent[alias] == expected, f"spec.{alias} changed on its way into the trial spec"
    # What the operator resolved for the trial.
    assert (sent["gpus"], sent["nodes"]) == (4, 2)
    assert sent["outputUri"] == "s3://adapters/runs/sweep-01234567/sweep-t00"
    assert sent["parameters"] == {"training.learningRate": 1e-4, "training.optimizer": "adam"}
    assert "apiKeySecretRef" not in json.dumps(sent)


def test_every_choice_the_api_offers_converts() -> None:
    base = SPECS[0].model_dump(by_alias=False)
    checked = 0
    for path, value in literal_fields(FineTuneJobSpec):
        if path[0] not in CONVERTED:
            continue
        doc = json.loads(json.dumps(base))
        node = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
        if path[-2:] == ("rubric", "builtin"):
            node["text"] = None
        convert(FineTuneJobSpec.model_validate(doc))
        checked += 1
    assert checked >= 10


def test_the_trial_configmap_holds_the_contract_document() -> None:
    spec = SPECS[0]
    trials = plan("sweep", spec)
    data = {k: v for cm in builders.trials_configmaps(OWNER, trials, spec) for k, v in cm["data"].items()}
    for t in trials:
        doc = json.loads(data[f"{t.name}.json"])
        assert TrialSpec.model_validate(doc) == builders.trial_spec(OWNER, t, spec)
