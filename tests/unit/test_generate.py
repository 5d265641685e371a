"""The generator driver (hack/generate.py): write, check, orphans, errors; and it stays out of the operator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import adapterops.api
import generate
from generators import Files, GenerateError, require_sources_in

REPO = Path(__file__).resolve().parents[2]


def fake(files: Files, owns: tuple[str, ...] = ()) -> generate.Target:
    return generate.Target("fake", lambda root: files, owns=owns)


def test_check_lists_stale_missing_and_orphaned_files_with_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "same.yaml").write_text("same\n")
    (tmp_path / "out" / "old.yaml").write_text("old\n")
    (tmp_path / "out" / "orphan.yaml").write_text("x\n")
    target = fake({"out/same.yaml": "same\n", "out/old.yaml": "new\n", "out/new/missing.yaml": "m\n"}, ("out/*.yaml",))

    assert generate.main(["--check", "--root", str(tmp_path)], targets=[target]) == 1
    err = capsys.readouterr().err
    assert "out/old.yaml" in err and "out/new/missing.yaml" in err and "out/orphan.yaml (no longer generated)" in err
    assert "same.yaml" not in err
    assert "run `python hack/generate.py fake` and commit the result" in err
    assert (tmp_path / "out" / "old.yaml").read_text() == "old\n", "--check changed a file"

    assert generate.main(["--root", str(tmp_path)], targets=[target]) == 0
    assert (tmp_path / "out" / "old.yaml").read_text() == "new\n"
    assert (tmp_path / "out" / "new" / "missing.yaml").read_text() == "m\n"
    assert not (tmp_path / "out" / "orphan.yaml").exists()
    assert generate.main(["--check", "--root", str(tmp_path)], targets=[target]) == 0


def test_check_compares_bytes(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_bytes(b"a\r\n")
    assert generate.main(["--check", "--root", str(tmp_path)], targets=[fake({"a.yaml": "a\n"})]) == 1


def test_a_generator_that_cannot_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def broken(root: Path) -> Files:
        raise GenerateError("helm template failed")

    targets = [fake({"a.yaml": "a\n"}), generate.Target("broken", broken)]
    assert generate.main(["--root", str(tmp_path)], targets=targets) == 2
    assert "helm template failed" in capsys.readouterr().err
    assert not (tmp_path / "a.yaml").exists()


def test_unknown_target_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        generate.main(["--check", "nope"])
    assert exc.value.code == 2


def test_the_operator_never_imports_the_generators() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+(generate|generators)\b", re.MULTILINE)
    offenders = [p for p in (REPO / "operator").rglob("*.py") if pattern.search(p.read_text())]
    assert not offenders


def test_generators_refuse_models_from_another_checkout(tmp_path: Path) -> None:
    require_sources_in(REPO, adapterops.api)
    with pytest.raises(GenerateError, match="not from"):
        require_sources_in(tmp_path, adapterops.api)
