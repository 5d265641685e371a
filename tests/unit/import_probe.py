"""Run by test_package_boundaries.py as `python -I import_probe.py ...`: does a package import only what its
distribution declares (its dependency closure, from the installed metadata) and nothing it must never import?

Two checks, one JSON report on stdout:
- source: every import statement of every module, lazy ones inside functions included (type-checking
  blocks excepted), must name the standard library, the package's own dependency closure, or a module
  the package's images provide outside that closure (`--provided`, e.g. NeMo in the NeMo container);
- runtime: every module is imported with a meta-path gate that refuses, to the package's own code, every
  installed module outside that closure and everything in `--deny`.

Standard library only until the gate is installed: whatever the probe imported first would slip past it.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.abc
import importlib.machinery
import json
import pkgutil
import re
import sys
import traceback
from importlib import metadata
from pathlib import Path
from types import FrameType, ModuleType

OURS = ("adapterops", "adapterops_train", "adapterops_common")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(dist: str, extras: list[str]) -> set[str]:
    """The distribution and everything it requires (with the given extras), transitively, as installed."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [(dist, tuple(extras))]
    while todo:
        name, wanted = todo.pop()
        if (canonical(name), wanted) in seen:
            continue
        seen.add((canonical(name), wanted))
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # an optional dependency that is not installed
        for req in requirements:
            spec, _, marker = req.partition(";")
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
            if extra and extra.group(1) not in wanted:
                continue
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", spec)
            if match:
                sub_extras = tuple(e.strip() for e in (match.group(2) or "").split(",") if e.strip())
                todo.append((match.group(1), sub_extras))
    return {name for name, _ in seen}


def import_names(tree: ast.AST) -> list[tuple[str, int]]:
    """Absolute imports of a module (top-level name, line), skipping `if TYPE_CHECKING:` blocks."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name.partition(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.partition(".")[0], node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


class Gate(importlib.abc.MetaPathFinder):
    """Refuses, to the package's own code, installed modules outside its closure and the denied ones.
    Third-party code is left alone (libraries probe optional modules with find_spec)."""

    def __init__(self, refused: set[str]) -> None:
        self.refused = refused
        self.violations: list[dict[str, str]] = []

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        top = fullname.partition(".")[0]
        if top not in self.refused:
            return None
        importer = _importer(sys._getframe(1))
        if importer.partition(".")[0] not in OURS:
            return None
        self.violations.append({"module": importer, "imports": fullname, "check": "runtime"})
        raise ModuleNotFoundError(f"{fullname} is outside this distribution's dependencies", name=fullname)


def _importer(frame: FrameType | None) -> str:
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith("<frozen importlib") and "importlib" not in Path(filename).parts:
            return str(frame.f_globals.get("__name__", ""))
        frame = frame.f_back
    return ""


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--dist", required=True)
    p.add_argument("--extra", action="append", default=[])
    p.add_argument("--package", required=True)
    p.add_argument("--deny", action="append", default=[], help="never importable by the package, even if declared")
    p.add_argument("--provided", action="append", default=[], help="provided by the package's images, undeclared")
    args = p.parse_args()

    allowed_dists = closure(args.dist, args.extra)
    providers = metadata.packages_distributions()
    allowed = {top for top, dists in providers.items() if any(canonical(d) in allowed_dists for d in dists)}
    allowed = (allowed | set(sys.stdlib_module_names) | {"__future__"}) - set(args.deny)
    refused = {top for top in providers if top not in allowed} | set(args.deny)

    gate = Gate(refused)
    sys.meta_path.insert(0, gate)
    package = importlib.import_module(args.package)
    root = Path(package.__file__ or "").parent
    names = [args.package] + [
        m.name for m in pkgutil.walk_packages(package.__path__, f"{args.package}.") if not m.name.endswith("__main__")
    ]
    report: dict[str, object] = {"allowedDistributions": sorted(allowed_dists)}
    violations: list[dict[str, str]] = []
    for path in sorted(root.rglob("*.py")):
        module = ".".join((args.package, *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        for top, line in import_names(ast.parse(path.read_text(encoding="utf-8"))):
            if top not in allowed and top not in args.provided:
                violations.append({"module": module, "imports": top, "check": f"source line {line}"})

    imported: list[str] = []
    absent: dict[str, str] = {}
    failed: dict[str, str] = {}
    for name in names:
        try:
            importlib.import_module(name)
            imported.append(name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.partition(".")[0] in refused:
                continue  # recorded by the gate
            absent[name] = exc.name or str(exc)
        except Exception:
            failed[name] = traceback.format_exc(limit=3)
    report |= {"imported": imported, "absent": absent, "failed": failed, "violations": violations + gate.violations}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
