"""The NeMo trainer image adds nothing to the NeMo container's ML stack: every module the nemo path imports is
one the container ships (training-jobs/nemo-container.txt, cited there) or adapterops-common's own."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / "training-jobs" / "adapterops_train"
COMMON = REPO / "training-jobs" / "common" / "adapterops_common"
OURS = {"adapterops_train", "adapterops_common"}
# What a trial pod of the nemo image runs: (module file, whether imports inside functions count too).
# hf.py is loaded for its generation helpers only (load_for_generation, generate_answers); its trainer
# builder (TRL) runs in the hf image, where the operator sends every DPO trial.
NEMO_PATH = [
    *((p, True) for p in sorted(COMMON.glob("*.py"))),
    (TRAIN / "cli.py", True),
    (TRAIN / "runner.py", True),
    (TRAIN / "distributed.py", True),
    (TRAIN / "dataset.py", True),
    (TRAIN / "hyper.py", True),
    (TRAIN / "nemo_recipe.py", True),
    (TRAIN / "backends" / "__init__.py", True),
    (TRAIN / "backends" / "nemo.py", True),
    (TRAIN / "backends" / "nemo_tools.py", True),
    (TRAIN / "backends" / "nemo_callbacks.py", True),
    (TRAIN / "backends" / "hf.py", False),
]


def container_modules() -> dict[str, set[str]]:
    sections: dict[str, set[str]] = {}
    current = ""
    for line in (REPO / "training-jobs" / "nemo-container.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if m := re.fullmatch(r"\[(\w+)\]", line):
            current = m.group(1)
            sections[current] = set()
            continue
        module, arrow, source = line.partition("<-")
        assert arrow and source.strip(), f"{line!r}: every module names where it comes from"
        sections[current].add(module.strip())
    return sections


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(path: Path, nested: bool) -> set[str]:
    """Top-level modules imported at run time (`if TYPE_CHECKING:` blocks never run); `nested`: inside
    functions too."""
    tree = ast.parse(path.read_text(), str(path))
    skipped = {id(n) for t in ast.walk(tree) if _type_checking(t) for n in ast.walk(t)}
    nodes = ast.walk(tree) if nested else iter(tree.body)
    found: set[str] = set()
    for node in nodes:
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"__future__"} - OURS


def test_every_import_of_the_nemo_path_is_in_the_nemo_container() -> None:
    shipped = container_modules()
    allowed = shipped["container"] | shipped["added"]
    missing = {
        f"{path.relative_to(REPO)}: {module}"
        for path, nested in NEMO_PATH
        for module in imports(path, nested)
        if module not in allowed
    }
    assert missing == set(), "imported by the nemo path but not shipped by the NeMo container: " + ", ".join(
        sorted(missing)
    )


def test_the_image_adds_no_ml_package_and_no_trl() -> None:
    shipped = container_modules()
    assert shipped["added"] == {"httpx"}  # adapterops-common's, only where the container lacks it
    assert "trl" not in shipped["container"]  # DPO is hf-only: the nemo image never builds a TRL trainer
    dockerfile = (REPO / "training-jobs" / "Dockerfile.nemo").read_text()
    final_stage = dockerfile[dockerfile.index("FROM ${NEMO_IMAGE}") :]
    installs = [line for line in final_stage.splitlines() if "pip install" in line]
    assert all("fetcher.lock" in line or "/tmp/install/wheels" in line for line in installs), installs


def test_the_list_catches_an_import_it_does_not_ship(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nimport torch\nif TYPE_CHECKING:\n    import stubs\n"
        "def f():\n    from trl import SFTTrainer\n"
    )
    assert imports(module, nested=True) == {"torch", "trl"}
    assert imports(module, nested=False) == {"torch"}


# transformers APIs the nemo path may not call directly: newer than the container's transformers~=4.53.0
# (training-jobs/nemo-container.txt). `from_pretrained(dtype=...)` is 4.56+ (transformers PR #39782); in 4.53 the
# unknown keyword reaches the model's constructor. The nemo path spells it through hf.dtype_argument.
NEWER_THAN_CONTAINER = {"from_pretrained": {"dtype"}}


def too_new_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            banned = NEWER_THAN_CONTAINER.get(node.func.attr, set())
            found += [
                f"{path.name}:{node.lineno}: {node.func.attr}({k.arg}=)" for k in node.keywords if k.arg in banned
            ]
    return found


def test_the_nemo_path_calls_no_transformers_api_newer_than_the_containers() -> None:
    assert [c for path, _ in NEMO_PATH for c in too_new_calls(path)] == []


@pytest.mark.train  # imports the hf backend (torch, transformers, peft)
def test_the_dtype_keyword_follows_the_installed_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    import transformers

    from adapterops_train.backends.hf import dtype_argument

    monkeypatch.setattr(transformers, "__version__", "4.53.3")  # NeMo's pin for the container
    assert dtype_argument(torch.bfloat16) == {"torch_dtype": torch.bfloat16}
    monkeypatch.setattr(transformers, "__version__", "4.56.0")
    assert dtype_argument(torch.bfloat16) == {"dtype": torch.bfloat16}


def test_the_version_check_catches_a_direct_dtype_keyword(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("AutoModelForCausalLM.from_pretrained('x', dtype=t)\nAutoModel.from_pretrained('x', **kw)\n")
    assert too_new_calls(module) == ["m.py:1: from_pretrained(dtype=)"]
