"""What the training side ships generated: the trial result's JSON Schema and the commerce dataset.

Both generators stay where they are (the schema is `adapterops_train.cli.result_schema`, the dataset
`training-jobs/datasets/commerce/generate.py`); these wrappers only put them behind the one driver.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from generators import Files, GenerateError, require_sources_in

SCHEMA = "training-jobs/adapterops_train/data/trial-result.schema.json"
COMMERCE = "training-jobs/datasets/commerce"


def trial_result_schema(root: Path) -> Files:
    from adapterops_train import cli

    require_sources_in(root, cli)
    return {SCHEMA: cli.result_schema()}


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
