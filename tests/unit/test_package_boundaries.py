"""No operator code in the trainer image, no trainer code in the operator image: each distribution imports
only its own declared dependencies (checked on the installed metadata, in a fresh interpreter, against
every import statement and by importing every module behind a gate; see import_probe.py)."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROBE = Path(__file__).with_name("import_probe.py")
_spec = importlib.util.spec_from_file_location("import_probe", PROBE)
assert _spec is not None and _spec.loader is not None
import_probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(import_probe)
# What each image must never contain, even should a dependency someday pull it in.
OPERATOR_SIDE = ["adapterops", "kopf", "kubernetes", "kubernetes_asyncio", "lightkube"]
TRAINER_SIDE = ["adapterops_train", "torch", "transformers", "peft", "trl", "datasets", "accelerate"]
# The NeMo backend's imports come with the NeMo container (Dockerfile.nemo), not from our dependencies.
NEMO_CONTAINER = ["nemo", "nemo_run", "lightning", "fiddle"]


def probe(
    dist: str, package: str, deny: list[str], extras: tuple[str, ...] = (), provided: tuple[str, ...] = ()
) -> Any:
    args = [sys.executable, "-I", str(PROBE), "--dist", dist, "--package", package]
    args += [f"--extra={e}" for e in extras] + [f"--deny={d}" for d in deny] + [f"--provided={p}" for p in provided]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_common_imports_nothing_of_the_operator_or_the_trainer() -> None:
    report = probe("adapterops-common", "adapterops_common", OPERATOR_SIDE + TRAINER_SIDE)
    assert report["violations"] == [] and report["failed"] == {} and report["absent"] == {}
    assert {"adapterops_common.contract", "adapterops_common.storage", "adapterops_common.judge"} <= set(
        report["imported"]
    )
    assert "adapterops-common" in report["allowedDistributions"] and "torch" not in report["allowedDistributions"]


@pytest.mark.train  # imports the hf backend: torch, transformers, peft, trl (about 40 s on 2 cores)
def test_trainer_imports_no_operator_code() -> None:
    report = probe(
        "adapterops-train", "adapterops_train", OPERATOR_SIDE, extras=("hf",), provided=tuple(NEMO_CONTAINER)
    )
    assert report["violations"] == [] and report["failed"] == {}
    # Only the NeMo container's Lightning callbacks cannot be imported here.
    assert report["absent"] == {"adapterops_train.backends.nemo_callbacks": "lightning"}
    expected = {"adapterops_train.runner", "adapterops_train.backends.hf", "adapterops_train.cli"}
    assert expected <= set(report["imported"])


def test_operator_imports_no_trainer_code_and_no_torch() -> None:
    report = probe("adapterops", "adapterops", TRAINER_SIDE, extras=("cli",))
    assert report["violations"] == [] and report["failed"] == {} and report["absent"] == {}
    assert {"adapterops.runtime.manager", "adapterops.analysis.run", "adapterops.cli.commands"} <= set(
        report["imported"]
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import torch\n", [("torch", 1)]),
        ("def f():\n    from adapterops_train import runner\n", [("adapterops_train", 2)]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import mypy_boto3_s3\n", [("typing", 1)]),
        ("from . import sibling\n", []),
    ],
)
def test_probe_sees_lazy_imports_and_skips_type_checking_blocks(source: str, expected: list[tuple[str, int]]) -> None:
    assert import_probe.import_names(ast.parse(source)) == expected


def test_probe_catches_a_trainer_import_in_operator_code(tmp_path: Path) -> None:
    # The gate itself: a package of ours importing what its distribution does not declare is reported.
    pkg = tmp_path / "adapterops"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "leaky.py").write_text("import adapterops_train\n")
    code = (
        "import sys, runpy; sys.path.insert(0, sys.argv[1]); sys.argv = [sys.argv[2], *sys.argv[3:]]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    args = ["--dist", "adapterops", "--package", "adapterops", "--deny=adapterops_train"]
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code, str(tmp_path), str(PROBE), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    violations = json.loads(proc.stdout)["violations"]
    assert {"module": "adapterops.leaky", "imports": "adapterops_train", "check": "source line 1"} in violations
    assert {"module": "adapterops.leaky", "imports": "adapterops_train", "check": "runtime"} in violations
