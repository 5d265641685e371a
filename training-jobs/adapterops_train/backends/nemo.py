"""The `nemo` backend: NeMo 2.x `llama31_nemotron_nano_8b` LoRA fine-tune, exported to Hugging Face PEFT.

Runs only inside the pinned NeMo container on CUDA GPUs (see training-jobs/README.md): NeMo 2's LLM
training calls CUDA unconditionally (Megatron-core). Nothing here imports NeMo at module import time,
so the runner can report `BackendUnavailable` cleanly anywhere else.

Flow: write the split as ChatDataModule JSONL -> `llm.import_ckpt` the HF base into NeMo format ->
`finetune_recipe(...)` + the pure settings of `nemo_recipe.recipe_settings` -> `run.run` (torchrun
over this pod's GPUs) -> `llm.peft.export_lora` to HF PEFT -> evaluate with transformers + PEFT.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from adapterops_common.contract import TrialSpec
from adapterops_train.backends import TrainOutcome
from adapterops_train.dataset import ChallengeItem, Example, SplitData
from adapterops_train.nemo_recipe import NemoSettings, apply_assignments, recipe_settings

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


class NemoBackend:
    name = "nemo"

    def __init__(self, spec: TrialSpec, base_dir: Path, workdir: Path) -> None:
        self.spec = spec
        self.base_dir = base_dir
        self.workdir = workdir
        self.adapter_dir = workdir / "nemo-export"
        self._generator: tuple[Any, Any] | None = None

    def train(self, data: SplitData) -> TrainOutcome:
        import nemo_run as run
        from nemo import lightning as nl
        from nemo.collections import llm

        t0 = time.monotonic()
        dataset_root = self.workdir / "nemo-data"
        _write_split(dataset_root, data)
        settings = recipe_settings(self.spec, len(data.train), str(self.workdir / "nemo-run"), str(dataset_root))
        base_nemo = self.workdir / "base-nemo"
        llm.import_ckpt(
            model=llm.LlamaNemotronModel(llm.Llama31NemotronNano8BConfig()),
            source=f"hf://{self.base_dir}",
            output_path=str(base_nemo),
        )
        t_import = time.monotonic()
        recipe = self._recipe(settings, base_nemo, run, nl, llm)
        metrics_path = self.workdir / METRICS_FILE
        recipe.trainer.callbacks = [
            *(recipe.trainer.callbacks or []),
            run.Config(_callback_class(), path=str(metrics_path)),
        ]
        gpus = self.spec.gpus
        executor = run.LocalExecutor(ntasks_per_node=gpus, launcher="torchrun" if gpus > 1 else None)
        run.run(recipe, executor=executor, name=self.spec.name)
        t_train = time.monotonic()
        checkpoint = _last_checkpoint(Path(settings.factory["dir"]))
        llm.peft.export_lora(lora_checkpoint_path=str(checkpoint), output_path=str(self.adapter_dir))
        t_export = time.monotonic()
        return self._outcome(
            settings,
            recipe,
            metrics_path,
            {
                "importCheckpoint": t_import - t0,
                "train": t_train - t_import,
                "exportLora": t_export - t_train,
            },
        )

    def _recipe(self, settings: NemoSettings, base_nemo: Path, run: Any, nl: Any, llm: Any) -> Any:
        from nemo.collections.llm.recipes import llama31_nemotron_nano_8b

        recipe = llama31_nemotron_nano_8b.finetune_recipe(resume_path=str(base_nemo), **settings.factory)
        recipe.resume = run.Config(nl.AutoResume, restore_config=run.Config(nl.RestoreConfig, path=str(base_nemo)))
        dm = dict(settings.data_module)
        dm.pop("class")
        recipe.data = run.Config(llm.ChatDataModule, **dm)
        recipe.trainer.plugins = run.Config(nl.MegatronMixedPrecision, precision=settings.precision)
        apply_assignments(recipe, settings.assignments)
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


def _callback_class() -> Any:
    from adapterops_train.backends.nemo_callbacks import MetricsRecorder

    return MetricsRecorder
