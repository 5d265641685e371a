"""The CRDs are generated from the API models; the committed copies must match and be structural."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from adapterops import crdgen


def test_committed_crds_match_the_generator() -> None:
    assert crdgen.main(["--check"]) == 0, "run `python -m adapterops.crdgen` and commit the result"


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for key, child in node.get("properties", {}).items():
            out += _walk(child, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            out += _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            out += _walk(node["additionalProperties"], f"{path}{{}}")
    return out


@pytest.mark.parametrize("kind", list(crdgen.KINDS))
def test_schema_is_structural_and_every_spec_field_is_described(kind: str) -> None:
    schema = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert not {"$ref", "anyOf", "oneOf", "allOf", "const", "title"} & node.keys(), path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), f"{path} has no type"
        if path.startswith((".spec", ".status")) and path.count(".") >= 2 and not path.endswith(("[]", "{}")):
            assert node.get("description"), f"{kind}{path} has no description (kubectl explain shows it)"


@pytest.mark.parametrize("kind", list(crdgen.KINDS))
def test_crd_has_status_subresource_printer_columns_short_names_and_category(kind: str) -> None:
    crd = crdgen.crd(kind)
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert {c["name"] for c in version["additionalPrinterColumns"]} >= {"Age"}
    assert crd["spec"]["names"]["categories"] == ["adapterops"]
    assert crd["spec"]["names"]["shortNames"] == crdgen.KINDS[kind]["short"]


def test_conditions_are_a_list_map_keyed_by_type() -> None:
    for kind in crdgen.KINDS:
        status = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        conditions = status["properties"]["conditions"]
        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_nested_defaults_are_complete_objects() -> None:
    """The API server validates a default against the CEL rules as written: it must be complete."""
    spec = crdgen.crd("FineTuneJob")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["sweep"]["default"]["strategy"] == "grid"
    assert spec["properties"]["objective"]["default"] == {"metric": "judgeScore", "goal": "maximize"}


def test_rendered_yaml_round_trips() -> None:
    for text in crdgen.rendered_files().values():
        assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition"
