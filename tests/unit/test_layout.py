"""The package map holds: no import cycle, the reconcilers are peers, and each layer imports only
the layers below it (api <- runtime <- finetune | deploy; analysis beside them; cli a client)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "adapterops"
MAX_LINES = 500

# package -> packages it must never import (the arrows of docs/architecture.md, reversed)
FORBIDDEN = {
    "api": {"runtime", "finetune", "deploy", "analysis", "cli", "config", "servingprofile"},
    "runtime": {"finetune", "deploy", "analysis", "cli", "servingprofile"},
    "analysis": {"runtime", "finetune", "deploy", "cli", "servingprofile"},
    "finetune": {"deploy", "analysis", "cli", "servingprofile"},
    # The serving profile builds its candidates with deploy's pure builders; deploy reads a profile's status
    # through the API models only.
    "deploy": {"finetune", "cli", "servingprofile"},
    "servingprofile": {"finetune", "cli"},
    "cli": {"runtime", "finetune", "deploy", "servingprofile"},
}


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def module_imports(path: Path) -> set[str]:
    """adapterops modules imported at module level (TYPE_CHECKING blocks and function bodies excluded)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue  # imports inside functions are deliberate lazy imports
        for sub in ast.walk(node):
            if isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith("adapterops"):
                found.add(sub.module)
                found.update(f"{sub.module}.{a.name}" for a in sub.names)
            elif isinstance(sub, ast.Import):
                found.update(a.name for a in sub.names if a.name.startswith("adapterops"))
    return found


GRAPH = {name: module_imports(path) for name, path in modules()}
NAMES = set(GRAPH)


def edges(name: str) -> set[str]:
    return {m for m in GRAPH[name] if m in NAMES and m != name}


def test_no_module_imports_itself_through_others() -> None:
    done: set[str] = set()

    def visit(name: str, stack: list[str]) -> None:
        if name in stack:
            cycle = [*stack[stack.index(name) :], name]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for dep in sorted(edges(name)):
            visit(dep, [*stack, name])
        done.add(name)

    for name in sorted(GRAPH):
        visit(name, [])


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_each_layer_imports_only_what_is_below_it(layer: str) -> None:
    wrong = {
        (name, dep)
        for name in GRAPH
        if name.startswith(f"adapterops.{layer}")
        for dep in edges(name)
        if dep.split(".")[1] in FORBIDDEN[layer]
    }
    assert not wrong, f"{layer} must not import {sorted(FORBIDDEN[layer])}: {sorted(wrong)}"


def test_no_module_is_over_the_size_a_reader_holds_in_mind() -> None:
    long = {name: n for name, path in modules() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
