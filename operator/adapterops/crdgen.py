"""Generate the CustomResourceDefinitions from the pydantic API models.

    python -m adapterops.crdgen            write the CRDs into the chart and the kustomize base
    python -m adapterops.crdgen --check    exit 1 when the committed copies differ

Pydantic's JSON Schema is turned into a structural OpenAPI v3 schema: references inlined,
Optional unwrapped, defaults of nested objects expressed as `{}` plus their own defaults (so the
API server applies them), exclusive bounds in OpenAPI 3.0 form, CEL rules kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema, to_jsonable_python

from adapterops.api import kinds as api
from adapterops.api.finetunejob import FineTuneJob
from adapterops.api.modeldeployment import ModelDeployment

REPO = Path(__file__).resolve().parents[2]
OUTPUT_DIRS = (REPO / "charts" / "adapterops" / "files" / "crds", REPO / "manifests" / "base" / "crds")

_DROP = {"title", "$defs"}


class _CrdJsonSchema(GenerateJsonSchema):
    """Pydantic leaves out defaults that come from a factory; a CRD needs them to default nested fields."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        factory = schema.get("default_factory")
        if factory is None:
            return super().default_schema(schema)
        json_schema = self.generate_inner(schema["schema"])
        value = factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            # The full default: the API server checks defaults against the CEL rules as they are.
            value = value.model_dump(by_alias=True, exclude_none=True, mode="json")
        json_schema["default"] = to_jsonable_python(value)
        return json_schema


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").split("/")[-1]]
        node = _merge(target, node)
    if "allOf" in node and len(node["allOf"]) == 1:
        node = _merge(node.pop("allOf")[0], node)
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {options}")
        node = _merge(options[0], node)
        if node.get("default", "missing") is None:
            del node["default"]
        return _structural(node, defs)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node and not isinstance(node[bound], bool):
            node[plain] = node.pop(bound)
            node[bound] = True
    if node.get("default", "missing") is None:
        del node["default"]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {k: _structural(v, defs) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _structural(value, defs)
        elif key == "additionalProperties" and value is True:
            # dict[str, Any]: an arbitrary object
            out["x-kubernetes-preserve-unknown-fields"] = True
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" in out:
        out.pop("additionalProperties", None)
    return out


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """A referenced schema plus the referring field's keys; CEL rules of both are kept."""
    merged = dict(base)
    for key, value in overlay.items():
        if key == "x-kubernetes-validations" and key in merged:
            merged[key] = list(merged[key]) + list(value)
        else:
            merged[key] = value
    return merged


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, schema_generator=_CrdJsonSchema, mode="validation")
    schema: dict[str, Any] = _structural(raw, raw.get("$defs", {}))
    props = schema["properties"]
    props["apiVersion"] = {"type": "string", "description": "adapterops.io/v1alpha1"}
    props["kind"] = {"type": "string", "description": "Kind of the object."}
    props["metadata"] = {"type": "object"}
    props["status"].pop("default", None)
    schema["required"] = ["spec"]
    return schema


def _condition_column(type_: str) -> dict[str, Any]:
    return {
        "name": type_,
        "type": "string",
        "jsonPath": f'.status.conditions[?(@.type=="{type_}")].status',
    }


KINDS: dict[str, dict[str, Any]] = {
    "FineTuneJob": {
        "model": FineTuneJob,
        "plural": "finetunejobs",
        "short": ["ftj"],
        "columns": [
            {"name": "State", "type": "string", "jsonPath": ".status.state"},
            {"name": "Trials", "type": "string", "jsonPath": ".status.progress", "description": "done/total"},
            {"name": "Best", "type": "number", "jsonPath": ".status.champion.judgeScore"},
            {"name": "Champion", "type": "string", "jsonPath": ".status.champion.trial"},
            {"name": "Loss", "type": "number", "jsonPath": ".status.champion.validationLoss", "priority": 1},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    },
    "ModelDeployment": {
        "model": ModelDeployment,
        "plural": "modeldeployments",
        "short": ["mdep"],
        "columns": [
            _condition_column("Ready"),
            {"name": "Stable", "type": "string", "jsonPath": ".status.stable.revision"},
            {"name": "Canary", "type": "string", "jsonPath": ".status.canary.revision", "priority": 1},
            {"name": "Canary%", "type": "integer", "jsonPath": ".status.canaryWeight"},
            {"name": "TP", "type": "integer", "jsonPath": ".spec.runtime.tensorParallelSize"},
            {"name": "GPU", "type": "string", "jsonPath": ".spec.runtime.gpuType"},
            {
                "name": "Cost/mo",
                "type": "number",
                "jsonPath": ".status.estimatedMonthlyCost.totalUsd",
                "priority": 1,
            },
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    },
}


def crd(kind: str) -> dict[str, Any]:
    info = KINDS[kind]
    plural = info["plural"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{api.GROUP}",
            # CRDs outlive `helm uninstall`: deleting them would delete every FineTuneJob and ModelDeployment.
            "annotations": {"helm.sh/resource-policy": "keep"},
            "labels": {"app.kubernetes.io/part-of": "adapterops"},
        },
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": info["short"],
                "categories": ["adapterops"],
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": info["columns"],
                    "schema": {"openAPIV3Schema": openapi_schema(info["model"])},
                }
            ],
        },
    }


def render(kind: str) -> str:
    header = "# Generated by `python -m adapterops.crdgen` from operator/adapterops/api.py. Do not edit.\n"
    return header + yaml.safe_dump(crd(kind), sort_keys=False, width=120)


def rendered_files() -> dict[str, str]:
    return {f"{KINDS[k]['plural']}.{api.GROUP}.yaml": render(k) for k in KINDS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail when the committed CRDs are out of date")
    args = parser.parse_args(argv)
    stale = []
    for out_dir in OUTPUT_DIRS:
        for name, text in rendered_files().items():
            path = out_dir / name
            if args.check:
                if not path.exists() or path.read_text() != text:
                    stale.append(str(path.relative_to(REPO)))
            else:
                out_dir.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if stale:
        print("CRDs out of date (run `python -m adapterops.crdgen`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
