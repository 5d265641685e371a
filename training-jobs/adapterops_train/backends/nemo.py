"""The `nemo` backend: the base model's NeMo 2.x LoRA recipe, run in this process, exported to HF PEFT.

Runs only inside the pinned NeMo container on CUDA GPUs (see training-jobs/README.md): NeMo 2's LLM
training calls CUDA unconditionally (Megatron-core). Nothing here imports NeMo at module import time,
so the runner can report `BackendUnavailable` cleanly anywhere else.

Flow, per node (local rank 0, before the others start): write the split as ChatDataModule JSONL and
`llm.import_ckpt` the HF base into NeMo format, into the node's shared folder. Then every process:
`<recipe>.finetune_recipe(...)` + the pure settings of `nemo_recipe.recipe_settings`, run in this process
(`run.run(recipe, direct=True)`: NeMo-Run builds the `run.Partial` and calls `llm.finetune`, no executor
and no second launcher): Lightning finds the pod launcher's torchrun environment (TorchElasticEnvironment)
and Megatron trains data-parallel across all the trial's processes. Then global rank 0 alone:
`llm.peft.export_lora` to HF PEFT, evaluation with transformers + PEFT.

The import and the export each build a one-process Lightning trainer of their own (NeMo's
`ModelConnector.nemo_setup`: `Trainer(devices=1, accelerator="cpu")`), which must not see this process's
world of N ranks: they run in a child process without the launcher's variables (`nemo_tools`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from adapterops_common.contract import TrialSpec
from adapterops_common.nemo_models import NemoRecipe
from adapterops_train.backends import TrainOutcome
from adapterops_train.dataset import ChallengeItem, Example, SplitData
from adapterops_train.distributed import Ranks
from adapterops_train.nemo_recipe import NemoSettings, TorchDtype, apply_assignments, recipe_settings

log = logging.getLogger(__name__)
METRICS_FILE = "nemo-metrics.jsonl"


def nemo_available() -> str | None:
    """None when NeMo can train here, else why not (reported as the trial's failure message)."""
    try:
        import nemo_run  # noqa: F401
        import torch
        from nemo.collections import llm  # noqa: F401
    except ImportError as exc:
        return (
            f"NeMo 2.x with nemo.collections.llm is not importable ({exc}); the nemo backend runs in the "
            "adapterops trainer image built on the pinned NeMo container (training-jobs/Dockerfile.nemo)"
        )
    if not torch.cuda.is_available():
        return "NeMo 2.x LLM training needs CUDA GPUs (Megatron-core); none is visible in this pod"
    return None


def _write_split(root: Path, data: SplitData) -> None:
    """ChatDataModule reads training.jsonl / validation.jsonl of {"messages": [...]} rows."""
    root.mkdir(parents=True, exist_ok=True)

    def rows(examples: list[Example]) -> str:
        return "".join(
            json.dumps(
                {"messages": [m.to_dict() for m in ex.prompt] + [{"role": "assistant", "content": ex.completion}]}
            )
            + "\n"
            for ex in examples
        )

    (root / "training.jsonl").write_text(rows(data.train), encoding="utf-8")
    (root / "validation.jsonl").write_text(rows(data.validation), encoding="utf-8")


# What a launcher puts in a process's environment: a child without them is a world of one.
LAUNCHER_VARIABLES = (
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE", "ROLE_RANK",
    "ROLE_WORLD_SIZE", "ROLE_NAME", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "JOB_COMPLETION_INDEX",
)  # fmt: skip


def single_process_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES and not k.startswith("TORCHELASTIC_")}


def run_tool(*args: str) -> None:
    """`python -m adapterops_train.backends.nemo_tools ...` as a world of one; its failure is this trial's."""
    cmd = [sys.executable, "-m", "adapterops_train.backends.nemo_tools", *args]
    done = subprocess.run(cmd, env=single_process_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-2000:]
        raise RuntimeError(f"nemo_tools {args[0]} exited with {done.returncode}: {tail}")


class NemoBackend:
    name = "nemo"

    def __init__(
        self,
        spec: TrialSpec,
        base_dir: Path,
        workdir: Path,
        recipe: NemoRecipe,
        ranks: Ranks | None = None,
        shared: Path | None = None,
    ) -> None:
        self.spec = spec
        self.base_dir = base_dir
        self.workdir = workdir
        self.recipe = recipe
        self.ranks = ranks or Ranks()
        # The node's processes share the imported base and the data; the run folder is the same path on
        # every node, so every rank writes the checkpoint where rank 0 later reads it.
        self.shared = shared or workdir
        self.dataset_root = self.shared / "nemo-data"
        self.base_nemo = self.shared / "base-nemo"
        self.adapter_dir = workdir / "nemo-export"
        self._generator: tuple[Any, Any] | None = None

    def prepare_node(self, data: SplitData) -> None:
        """Once per node: the split as JSONL and the HF base imported into NeMo's format."""
        _write_split(self.dataset_root, data)
        run_tool("import", "--recipe", self.recipe.recipe, "--source", str(self.base_dir), "--out", str(self.base_nemo))

    def train(self, data: SplitData) -> TrainOutcome:
        import nemo_run as run
        import torch
        from nemo import lightning as nl
        from nemo.collections import llm

        t0 = time.monotonic()
        settings = recipe_settings(self.spec, len(data.train), str(self.shared / "nemo-run"), str(self.dataset_root))
        recipe = self._recipe(settings, run, nl, llm, torch)
        metrics_path = self.workdir / METRICS_FILE
        recipe.trainer.callbacks = [
            *(recipe.trainer.callbacks or []),
            run.Config(_callback_class(), path=str(metrics_path)),
        ]
        run.run(recipe, direct=True, name=self.spec.name)  # in this process, under the pod's launcher
        t_train = time.monotonic()
        seconds = {"train": t_train - t0}
        if not self.ranks.global_zero:
            return TrainOutcome(
                steps=settings.plan.max_steps, train_loss=None, validation_loss=None, validation_loss_before=None,
                loss_curve=[], observed={}, plan=settings.plan, seconds=seconds,
            )  # fmt: skip
        checkpoint = _last_checkpoint(Path(settings.factory["dir"]))
        run_tool("export", "--checkpoint", str(checkpoint), "--out", str(self.adapter_dir))
        seconds["exportLora"] = time.monotonic() - t_train
        return self._outcome(settings, recipe, metrics_path, seconds)

    def _recipe(self, settings: NemoSettings, run: Any, nl: Any, llm: Any, torch: Any) -> Any:
        import importlib

        module = importlib.import_module(f"nemo.collections.llm.recipes.{settings.recipe}")
        recipe = module.finetune_recipe(**settings.factory)
        recipe.resume = run.Config(nl.AutoResume, restore_config=run.Config(nl.RestoreConfig, path=str(self.base_nemo)))
        dm = dict(settings.data_module)
        dm.pop("class")
        recipe.data = run.Config(llm.ChatDataModule, **dm)
        apply_assignments(recipe, settings.assignments, dtype=lambda d: _torch_dtype(torch, d))
        return recipe

    def _outcome(
        self, settings: NemoSettings, recipe: Any, metrics_path: Path, seconds: dict[str, float]
    ) -> TrainOutcome:
        records = (
            [json.loads(x) for x in metrics_path.read_text().splitlines() if x.strip()] if metrics_path.exists() else []
        )
        curve = [{"step": float(r["step"]), "loss": float(r["loss"])} for r in records if "loss" in r]
        lrs = [float(r["lr"]) for r in records if "lr" in r]
        val = [float(r["val_loss"]) for r in records if "val_loss" in r]
        cfg = json.loads((self.adapter_dir / "adapter_config.json").read_text())
        observed = {
            # Read back from the configured recipe and the exported adapter, not from the spec.
            "optimizer": {
                "class": "megatron.core.optimizer (adam)",
                "decoupledWeightDecay": bool(recipe.optim.config.decoupled_weight_decay),
                "weightDecay": recipe.optim.config.weight_decay,
            },
            "learningRates": lrs,
            "lora": {"ranks": [cfg.get("r")], "modules": sorted(cfg.get("target_modules") or [])},
            "precision": settings.precision,
            "device": "cuda",
            "recipe": settings.recipe,
            "nemo": settings.as_dict(),
        }
        return TrainOutcome(
            steps=len(lrs) or settings.plan.max_steps,
            train_loss=curve[-1]["loss"] if curve else None,
            validation_loss=val[-1] if val else None,
            validation_loss_before=None,
            loss_curve=curve,
            observed=observed,
            plan=settings.plan,
            seconds=seconds,
        )

    def save_adapter(self, dest: Path) -> Path:
        cfg_path = self.adapter_dir / "adapter_config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["base_model_name_or_path"] = self.spec.base_model.name
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("adapter_model.safetensors",):
            shutil.copyfile(self.adapter_dir / name, dest / name)
        (dest / "adapter_config.json").write_text(json.dumps(cfg, indent=2))
        return dest

    def generate(self, items: list[ChallengeItem], max_new_tokens: int, batch_size: int = 8) -> list[str]:
        from adapterops_train.backends.hf import generate_answers, load_for_generation

        if self._generator is None:
            self._generator = load_for_generation(self.base_dir, self.adapter_dir, self.spec.training.precision)
        model, tok = self._generator
        return generate_answers(model, tok, items, max_new_tokens, batch_size)


def _last_checkpoint(run_dir: Path) -> Path:
    """NeMo writes <dir>/<name>/<timestamp>/checkpoints/<...>-last; take the newest."""
    candidates = sorted(run_dir.glob("**/checkpoints/*last*"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise RuntimeError(f"no NeMo checkpoint under {run_dir}")
    return candidates[-1]


def _torch_dtype(torch: Any, dtype: TorchDtype) -> Any:
    return getattr(torch, dtype.name)


def _callback_class() -> Any:
    from adapterops_train.backends.nemo_callbacks import MetricsRecorder

    return MetricsRecorder
