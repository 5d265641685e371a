"""What the training side ships generated: the commerce dataset.

The generator stays where it is (`training-jobs/datasets/commerce/generate.py`); this wrapper only puts
it behind the one driver.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from generators import Files, GenerateError

COMMERCE = "training-jobs/datasets/commerce"


def commerce_dataset(root: Path) -> Files:
    script = root / COMMERCE / "generate.py"
    # A script, not a package module: loaded by path, under a name no other module uses.
    spec = importlib.util.spec_from_file_location("adapterops_commerce_dataset", script)
    if spec is None or spec.loader is None:
        raise GenerateError(f"cannot load {script}")
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the defining module up in sys.modules while the script runs.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    build: Callable[[], dict[str, str]] = module.build
    return {f"{COMMERCE}/{name}": text for name, text in build().items()}
