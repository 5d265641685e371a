"""Lightning callback recording loss, learning rate and validation loss of a NeMo run to JSON Lines.

Imported only inside the NeMo container (by `nemo_run`, from its config path); it imports Lightning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl


class MetricsRecorder(pl.Callback):  # type: ignore[misc]
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def _write(self, trainer: Any, record: dict[str, Any]) -> None:
        if trainer.is_global_zero:  # one writer across data-parallel ranks
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        # The LR in the param group when the step starts is the one the optimizer step uses.
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        self._write(trainer, {"step": trainer.global_step, "lr": float(lr)})

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = trainer.callback_metrics.get("reduced_train_loss", trainer.callback_metrics.get("train_loss"))
        if loss is not None:
            self._write(trainer, {"step": trainer.global_step, "loss": float(loss)})

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        val = trainer.callback_metrics.get("val_loss")
        if val is not None:
            self._write(trainer, {"step": trainer.global_step, "val_loss": float(val)})
