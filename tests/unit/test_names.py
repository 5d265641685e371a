"""Names and references (api/names.py): each Kubernetes name format accepts what the Kubernetes validation
function it cites accepts, every name and reference field of the API carries one (CEL in the CRD, pydantic in
the operator), the operator refuses what the API server refuses, and derived names stay valid and distinct."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from adapterops.api.finetunejob import FineTuneJobSpec
from adapterops.api.kinds import FINETUNEJOB, MODELDEPLOYMENT
from adapterops.api.modeldeployment import ModelDeploymentSpec
from adapterops.api.names import (
    ADAPTER_NAME,
    CONFIGMAP_KEY,
    DNS1035_LABEL,
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    ENV_VAR_NAME,
    OBJECT_NAME_RULE,
    QUALIFIED_NAME,
    QUEUE_NAME,
    InvalidPathName,
    NameFormat,
    check_object_path,
    child_name,
    claim_volume_name,
    object_name_problem,
)
from adapterops.config import Config, GpuClass
from adapterops.deploy import acceptance as deploy_acceptance
from adapterops.finetune import acceptance as finetune_acceptance
from adapterops.runtime.acceptance import Refusal, parse_spec
from generators import crds

INVALID = Path(__file__).parents[1] / "cluster" / "invalid"
LONG_LABEL = "a" * 63
# Values from k8s.io/apimachinery/pkg/util/validation's own tests where they exist.
VALID: dict[str, list[str]] = {
    "DNS1123_LABEL": [
        "a",
        "ab",
        "abc",
        "a1",
        "a-1",
        "a--1--2--b",
        "0",
        "01",
        "012",
        "1a",
        "1-a",
        "1--a--b--2",
        LONG_LABEL,
    ],
    "DNS1123_SUBDOMAIN": ["a", "a.b", "a.b.c", "1.a", "a--1.b--2", "0.a", "1.2.3", ".".join([LONG_LABEL] * 3) + ".aa"],
    "DNS1035_LABEL": ["a", "ab", "abc", "a1", "a-1", "a--1--2--b", LONG_LABEL],
    "CONFIGMAP_KEY": ["a", "A", "_", "-", "a.b", ".a", "a..b", "KEY_1.json", "x" * 253],
    "ENV_VAR_NAME": ["A", "ab", "a_b", "A-B", "a.b", "_x", ".x", ".1abc", "MY_ENV.NAME", "x" * 256],
    "QUALIFIED_NAME": ["a", "A", "a_b", "a.b", "nvidia.com/gpu", "k8s.io/A-b_c.d", "a" * 253 + "/" + "b" * 63],
    "QUEUE_NAME": ["team-a", "team.a", "a" * 63],
    "ADAPTER_NAME": ["commerce", "commerce-query", "llama-3.1_v2", "a", "0"],
}
INVALID_VALUES: dict[str, list[str]] = {
    "DNS1123_LABEL": ["", "A", "ABC", "-", "a-", "-a", "a.b", "a_b", "a/b", "..", "%2F", "a" * 64],
    "DNS1123_SUBDOMAIN": ["", ".", "..", "a.", ".a", "a..b", "A", "a/b", "../x", "%2e%2e", "a_b", "a" * 254],
    "DNS1035_LABEL": ["", "0", "1a", "1-a", "A", "-a", "a-", "a.b", "a_b", "..", "a" * 64],
    "CONFIGMAP_KEY": ["", ".", "..", "..a", "a/b", "../x", "a b", "%2F", "x" * 254],
    "ENV_VAR_NAME": ["", "1a", ".", "..", "..a", "a=b", "a b", "a/b", "x" * 257],
    "QUALIFIED_NAME": ["", "/a", "a/", "a//b", "-a", "a-", "A/b", "a/b/c", "a" * 64, "a" * 254 + "/b"],
    "QUEUE_NAME": ["", "Team_A", "a/b", "..", "a" * 64],
    "ADAPTER_NAME": ["", "..", ".a", "a.", "Commerce", "a/b", "a b", "a" * 64],
}
FORMATS: dict[str, NameFormat] = {
    "DNS1123_LABEL": DNS1123_LABEL,
    "DNS1123_SUBDOMAIN": DNS1123_SUBDOMAIN,
    "DNS1035_LABEL": DNS1035_LABEL,
    "CONFIGMAP_KEY": CONFIGMAP_KEY,
    "ENV_VAR_NAME": ENV_VAR_NAME,
    "QUALIFIED_NAME": QUALIFIED_NAME,
    "QUEUE_NAME": QUEUE_NAME,
    "ADAPTER_NAME": ADAPTER_NAME,
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_accepts_the_kubernetes_examples_and_refuses_the_rest(fmt: str) -> None:
    f = FORMATS[fmt]
    assert [v for v in VALID[fmt] if not f.is_valid(v)] == []
    assert [v for v in INVALID_VALUES[fmt] if f.is_valid(v)] == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_cel_uses_the_same_regexes_anchored_and_no_escapes(fmt: str) -> None:
    """The CEL rule is the Python check: the same regexes, anchored, and no backslash (a CEL string literal
    would read it as an escape)."""
    f = FORMATS[fmt]
    rule = f.cel()
    assert "\\" not in rule and "'" not in "".join(f.regexes)
    for rx in f.regexes:
        assert f"self.matches('^(?:{rx})$')" in rule
        re.compile(rx)
    assert f"self.size() <= {f.max_length}" in rule


# --------------------------------------------------------------------------- every field carries its format


def _rules_at(schema: dict[str, Any], path: str) -> list[str]:
    node = schema
    for part in path.split("."):
        node = node["items"] if part == "[]" else node["properties"][part]
    return [v["rule"] for v in node.get("x-kubernetes-validations", [])]


FTJ_FIELDS = {
    "spec.evaluation.judge.apiKeySecretRef.name": DNS1123_SUBDOMAIN,
    "spec.evaluation.judge.apiKeySecretRef.key": CONFIGMAP_KEY,
    "spec.storageSecretRef.name": DNS1123_SUBDOMAIN,
    "spec.serviceAccountName": DNS1123_SUBDOMAIN,
    "spec.resources.queueName": QUEUE_NAME,
    "spec.resources.priorityClassName": DNS1123_SUBDOMAIN,
    "spec.resources.tolerations.[].key": QUALIFIED_NAME,
}
MDEP_FIELDS = {
    "spec.runtime.imagePullSecrets.[].name": DNS1123_SUBDOMAIN,
    "spec.runtime.apiKeySecretRef.name": DNS1123_SUBDOMAIN,
    "spec.runtime.apiKeySecretRef.key": CONFIGMAP_KEY,
    "spec.runtime.env.[].name": ENV_VAR_NAME,
    "spec.runtime.env.[].valueFrom.secretKeyRef.name": DNS1123_SUBDOMAIN,
    "spec.runtime.env.[].valueFrom.secretKeyRef.key": CONFIGMAP_KEY,
    "spec.adapters.[].name": ADAPTER_NAME,
    "spec.adapters.[].fineTuneJobRef.name": DNS1035_LABEL,
    "spec.canary.traffic.httpRouteRef.name": DNS1123_SUBDOMAIN,
    "spec.canary.analysis.judge.judge.apiKeySecretRef.name": DNS1123_SUBDOMAIN,
    "spec.canary.analysis.judge.judge.apiKeySecretRef.key": CONFIGMAP_KEY,
    "spec.storageSecretRef.name": DNS1123_SUBDOMAIN,
}
PVC_URIS = {
    FINETUNEJOB: [
        "spec.baseModel.uri",
        "spec.dataset.train",
        "spec.dataset.validation",
        "spec.evaluation.dataset",
        "spec.output.uri",
    ],
    MODELDEPLOYMENT: ["spec.baseModel.uri", "spec.adapters.[].uri"],
}


def _schema(kind: Any) -> dict[str, Any]:
    return crds.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("kind", "fields"), [(FINETUNEJOB, FTJ_FIELDS), (MODELDEPLOYMENT, MDEP_FIELDS)])
def test_every_name_and_reference_field_carries_its_format_in_the_crd(kind: Any, fields: dict[str, NameFormat]) -> None:
    schema = _schema(kind)
    for path, fmt in fields.items():
        assert fmt.cel() in _rules_at(schema, path), path
    for path in PVC_URIS[kind]:
        assert any("pvc://" in r and "matches" in r for r in _rules_at(schema, path)), path
    judge_dataset = _rules_at(schema, "spec.canary.analysis.judge.dataset") if kind is MODELDEPLOYMENT else []
    assert kind is FINETUNEJOB or any("configmap://" in r and "matches" in r for r in judge_dataset)


@pytest.mark.parametrize("kind", [FINETUNEJOB, MODELDEPLOYMENT], ids=lambda k: k.kind)
def test_the_object_name_rule_is_at_the_root_on_create_and_points_at_metadata_name(kind: Any) -> None:
    schema = _schema(kind)
    assert OBJECT_NAME_RULE in schema["x-kubernetes-validations"]
    assert schema["properties"]["metadata"]["properties"]["name"] == {"type": "string"}
    assert OBJECT_NAME_RULE["rule"].startswith("oldSelf.hasValue() || ") and OBJECT_NAME_RULE["optionalOldSelf"]


def test_no_name_field_is_left_without_a_format() -> None:
    """A new `name`, `key` or `*Name` field in the API must get a name type (or be listed here, and why)."""
    # the model's name for the serving engine, e.g. nvidia/Llama-3.1-Nemotron-Nano-8B-v1
    not_kubernetes_names = {"spec.baseModel.name"}
    checked = {f.replace(".[]", "") for f in [*FTJ_FIELDS, *MDEP_FIELDS]}
    for kind in (FINETUNEJOB, MODELDEPLOYMENT):
        spec = _schema(kind)["properties"]["spec"]
        for path in _string_leaves(spec, "spec"):
            last = path.rsplit(".", 1)[-1]
            if (last in ("name", "key") or last.endswith("Name")) and path not in not_kubernetes_names:
                assert path in checked, f"{kind.kind} {path} has no name format"


def _string_leaves(node: dict[str, Any], path: str) -> list[str]:
    if node.get("type") == "string":
        return [path]
    out: list[str] = []
    for key, child in node.get("properties", {}).items():
        out += _string_leaves(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        out += _string_leaves(node["items"], path)
    return out


# --------------------------------------------------------------------------- the operator refuses the same

CONFIG = Config(
    gpu_classes={
        "H100": GpuClass.model_validate({"nodeSelector": {"gpu": "h100"}, "pricePerHour": 4.5, "memoryGiB": 80})
    }
)
# The manifests of tests/cluster/invalid the API server refuses for a name (their expected messages state
# a name format): the operator refuses each too, naming one of the fields the API server names (for an
# object from before the CRD rule).
FORMAT_PHRASES = ("DNS-1123", "DNS-1035", "label value", "label key", "data key", "variable name", "URI is", "'..'")
NAME_MANIFESTS = sorted(
    p
    for p in INVALID.glob("*.yaml")
    if any(ln.startswith("# expect: ") and any(f in ln for f in FORMAT_PHRASES) for ln in p.read_text().splitlines())
)


def _refusal(doc: dict[str, Any]) -> Refusal:
    name, spec = doc["metadata"]["name"], doc["spec"]
    with pytest.raises(Refusal) as caught:
        if doc["kind"] == "FineTuneJob":
            finetune_acceptance.accept(name, spec, CONFIG)
        else:
            deploy_acceptance.accept(name, spec, CONFIG)
    return caught.value


def test_there_are_refused_names_for_both_kinds() -> None:
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in NAME_MANIFESTS}
    assert len(NAME_MANIFESTS) >= 16 and kinds == {"FineTuneJob", "ModelDeployment"}


@pytest.mark.parametrize("manifest", NAME_MANIFESTS, ids=lambda p: p.stem)
def test_the_operator_refuses_what_the_api_server_refuses_naming_the_field(manifest: Path) -> None:
    lines = manifest.read_text().splitlines()
    fields = [
        ln.removeprefix("# expect: ") for ln in lines if re.fullmatch(r"# expect: (spec|metadata)\.[\w.\[\]]+", ln)
    ]
    refusal = _refusal(yaml.safe_load(manifest.read_text()))
    field = refusal.message.split(":", 1)[0]
    assert field in fields, f"{refusal.message!r} names none of {fields}"
    assert refusal.reason in ("InvalidName", "InvalidSpec")
    assert "is not valid: " in refusal.message and (" must be " in refusal.message or "URI is" in refusal.message)


def test_a_refusal_names_the_field_the_bad_value_and_what_is_accepted() -> None:
    doc = {
        "baseModel": {"name": "tiny"},
        "adapters": [{"name": "a", "uri": "s3://b/a"}],
        "canary": {"traffic": {"mode": "httpRoute", "httpRouteRef": {"name": "../../prod/httproutes/shop"}}},
    }
    with pytest.raises(Refusal) as caught:
        parse_spec(ModelDeploymentSpec, doc)
    assert caught.value.message == (
        "spec.canary.traffic.httpRouteRef.name: '../../prod/httproutes/shop' is not valid: must be an HTTPRoute "
        "name: a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or "
        "digit; at most 253 characters)"
    )


def test_a_list_entry_is_named_as_the_api_server_names_it() -> None:
    doc = {"baseModel": {"name": "tiny"}, "runtime": {"imagePullSecrets": [{"name": "ok"}, {"name": "a/b"}]}}
    with pytest.raises(Refusal, match=r"^spec\.runtime\.imagePullSecrets\[1\]\.name: 'a/b' is not valid"):
        parse_spec(ModelDeploymentSpec, doc)


def test_an_old_object_with_a_name_children_cannot_carry_is_not_accepted() -> None:
    ftj = {
        "baseModel": {"name": "tiny", "uri": "/m"},
        "backend": "hf",
        "dataset": {"train": "/d"},
        "training": {"maxSteps": 1},
        "objective": {"metric": "validationLoss", "goal": "minimize"},
        "output": {"uri": "s3://b/o"},
    }
    for name in ("1-sweep", "a" * 64, "sweep.v2"):
        with pytest.raises(Refusal) as caught:
            finetune_acceptance.accept(name, ftj, CONFIG)
        assert caught.value.reason == "InvalidName" and caught.value.message.startswith(f"metadata.name: {name!r}")
        with pytest.raises(Refusal, match=r"^metadata\.name: .* must be a DNS-1035 label"):
            deploy_acceptance.accept(name, {"baseModel": {"name": "tiny"}}, CONFIG)
    assert object_name_problem("a" * 63) is None
    assert finetune_acceptance.accept("a" * 63, ftj, CONFIG).trials


# --------------------------------------------------------------------------- URIs that name objects


def _uri_error(model: type[BaseModel], doc: dict[str, Any]) -> str | None:
    try:
        parse_spec(model, doc)
    except Refusal as refusal:
        return refusal.message
    return None


@pytest.mark.parametrize(
    ("uri", "accepted"),
    [
        ("pvc://data/train.jsonl", True),
        ("pvc://data", True),
        ("pvc://data.v2/a/./b/.hidden/..x/x..", True),
        ("pvc://" + "a" * 253 + "/x", True),
        ("pvc:///etc/passwd", False),
        ("pvc://../x", False),
        ("pvc://data/../other/x", False),
        ("pvc://data/..", False),
        ("pvc://Data/x", False),
        ("pvc://a%2Fb/x", False),
        ("pvc://" + "a" * 254 + "/x", False),
        ("s3://bucket/../x", True),  # not a Kubernetes name: the object store's business
        ("/models/tiny", True),
    ],
)
def test_a_pvc_uri_names_a_claim_and_never_climbs_out_of_it(uri: str, accepted: bool) -> None:
    doc = {
        "baseModel": {"name": "tiny", "uri": "/m"},
        "dataset": {"train": uri},
        "training": {"maxSteps": 1},
        "objective": {"metric": "validationLoss", "goal": "minimize"},
        "output": {"uri": "s3://b/o"},
    }
    error = _uri_error(FineTuneJobSpec, doc)
    assert (error is None) == accepted, error
    if not accepted:
        assert error is not None and error.startswith("spec.dataset.train: ")
        assert "CLAIM is a PersistentVolumeClaim name" in error


@pytest.mark.parametrize(
    ("uri", "accepted"),
    [
        ("configmap://prompts/eval.jsonl", True),
        ("configmap://prompts.v2/EVAL_1.jsonl", True),
        ("s3://bucket/eval.jsonl", True),
        ("configmap://../../kube-system/configmaps/kubeadm-config", False),
        ("configmap://prompts/../x", False),
        ("configmap://prompts/..", False),
        ("configmap://prompts", False),
        ("configmap://prompts/", False),
        ("configmap://prompts/a/b", False),
        ("configmap://%2e%2e/key", False),
        ("pvc://x/y", False),
    ],
)
def test_a_configmap_uri_names_a_configmap_and_one_key(uri: str, accepted: bool) -> None:
    doc = {
        "baseModel": {"name": "tiny"},
        "canary": {"analysis": {"judge": {"dataset": uri, "judge": {"endpoint": "http://j/v1", "model": "m"}}}},
    }
    error = _uri_error(ModelDeploymentSpec, doc)
    assert (error is None) == accepted, error
    if not accepted:
        assert error is not None and error.startswith("spec.canary.analysis.judge.dataset: ")


# --------------------------------------------------------------------------- derived names and the clients' check


def test_a_child_name_is_the_owner_and_suffix_when_it_fits_else_cut_with_a_hash() -> None:
    assert child_name("sweep", "-t01", 50) == "sweep-t01"
    a, b = child_name("x" * 59 + "a", "-t01", 50), child_name("x" * 59 + "b", "-t01", 50)
    assert a != b and len(a) == len(b) == 50 and a.endswith("-t01") and a.startswith("x" * 30)
    assert child_name("ab-" + "c" * 60, "", 40) == child_name("ab-" + "c" * 60, "", 40)  # deterministic


def test_a_claim_volume_is_a_dns_label_distinct_per_claim() -> None:
    claims = ["data", "data.v2", "data-v2", "a" * 59, "a" * 60, "a" * 60 + ".b", "a" * 253]
    volumes = [claim_volume_name(c) for c in claims]
    assert volumes[0] == "pvc-data" and volumes[2] == "pvc-data-v2" and volumes[3] == "pvc-" + "a" * 59
    assert all(DNS1123_LABEL.is_valid(v) for v in volumes), volumes
    assert len(set(volumes)) == len(volumes)


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", "%2F", "%2e%2e", "", "a" * 254, "A", "a\n"])
def test_the_clients_check_refuses_anything_but_a_kubernetes_name(bad: str) -> None:
    with pytest.raises(InvalidPathName, match=r"^refusing to put Secret name .* into a request: it is not a DNS-1123"):
        check_object_path("Secret", "ml", bad)
    with pytest.raises(InvalidPathName, match=r"^refusing to put Secret namespace .* it is not a DNS-1123 label"):
        check_object_path("Secret", bad, "ok")
    check_object_path("Secret", "ml", "a" * 253)
    check_object_path("Secret", None, None)
