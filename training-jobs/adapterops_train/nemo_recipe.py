"""Trial spec -> NeMo 2.x recipe settings: a pure function, testable without NeMo installed.

The recipe is the base model's (`adapterops_common.nemo_models`: e.g. `llama31_nemotron_nano_8b` for
nvidia/Llama-3.1-Nemotron-Nano-8B-v1, `llama31_8b` for meta-llama/Llama-3.1-8B), its
`nemo.collections.llm.recipes.<recipe>.finetune_recipe(...)` (NeMo 2.7, the last release with
`nemo.collections.llm`). `recipe_settings` returns the factory arguments and an ordered list of (dotted
attribute path on the recipe, value) assignments; `backends.nemo` applies them to the real `run.Partial`.
Every hyperparameter of the spec appears here; what NeMo cannot express is listed in `notes` instead of
being dropped silently. Whatever the spec does not set keeps the recipe's value: the assignments override
fields, never replace a recipe's object (its precision plugin, strategy, optimizer) wholesale.

Recipe facts this relies on (NeMo sources, `nemo/collections/llm/recipes/`):
- every listed recipe's `finetune_recipe` takes `dir, name, num_nodes, num_gpus_per_node, peft_scheme,
  packed_sequence` (only some take `resume_path` or `seq_length`: the resume is replaced afterwards, and
  the sequence length is assigned to the model config and the data module); with peft_scheme='lora' it
  sets `recipe.peft = LoRA(dim=8, alpha=16)` and `optim.config.use_distributed_optimizer = False`.
- the trainer is `finetune_default.default_finetune_trainer`: `plugins=bf16_mixed()`, i.e.
  `MegatronMixedPrecision(precision="bf16-mixed", params_dtype=bfloat16, pipeline_dtype=bfloat16,
  autocast_enabled=False, grad_reduce_in_fp32=True)` (`precision/mixed_precision.py`), and a
  `MegatronStrategy(pipeline_dtype=bfloat16, ...)` with the strategy's defaults
  `ckpt_async_save=True, ckpt_parallel_save=True` (`nemo/lightning/pytorch/strategies/megatron_strategy.py`).
  fp16 sets the fields `fp16_mixed()` sets (precision "16-mixed", params/pipeline dtype float16,
  grad_reduce_in_fp32 False); fp32 sets precision "32" and float32 dtypes; bf16 keeps the recipe's plugin.
- checkpoints are saved synchronously and by the replica that owns each shard
  (`ckpt_parallel_save=False`): with TP = PP = 1 that is global rank 0 for all of them, so the adapter
  checkpoint rank 0 exports is complete on its own node without a filesystem shared across nodes.
- `recipe.optim` is `MegatronOptimizerModule(config=OptimizerConfig(optimizer='adam', ...),
  lr_scheduler=CosineAnnealingScheduler(warmup_steps, constant_steps, min_lr, max_steps))`.
  `OptimizerConfig.decoupled_weight_decay` True = AdamW, False = Adam with L2 decay.
- The recipe's optimizer factory turns `min_lr=0` into 0.1 x lr (`min_lr or 0.1 * max_lr`), so the
  minimum LR is assigned on the scheduler afterwards, never passed to the factory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapterops_common.contract import TrialSpec
from adapterops_common.nemo_models import NemoRecipe, nemo_recipe, unsupported_message
from adapterops_train.hyper import StepPlan, nemo_target_modules, nemo_widening, plan_steps

# Same clip and Adam constants as the hf backend, so both backends train the same way.
ADAM_BETAS = (0.9, 0.98)
ADAM_EPS = 1e-8
CLIP_GRAD = 1.0
PRECISION_PLUGIN = {"bf16": "bf16-mixed", "fp16": "16-mixed", "fp32": "32"}


@dataclass(frozen=True)
class TorchDtype:
    """A torch dtype named without importing torch (`backends.nemo` resolves it)."""

    name: str

    def __str__(self) -> str:
        return f"torch.{self.name}"


# Field by field over the recipe's bf16_mixed() plugin: what NeMo's own fp16_mixed() sets for fp16; for fp32
# the plain precision with float32 weights. bf16: the recipe's plugin as it is.
PRECISION_FIELDS: dict[str, list[tuple[str, Any]]] = {
    "bf16": [],
    "fp16": [
        ("trainer.plugins.precision", "16-mixed"),
        ("trainer.plugins.params_dtype", TorchDtype("float16")),
        ("trainer.plugins.pipeline_dtype", TorchDtype("float16")),
        ("trainer.plugins.grad_reduce_in_fp32", False),
        ("trainer.strategy.pipeline_dtype", TorchDtype("float16")),
    ],
    "fp32": [
        ("trainer.plugins.precision", "32"),
        ("trainer.plugins.params_dtype", TorchDtype("float32")),
        ("trainer.plugins.pipeline_dtype", TorchDtype("float32")),
        ("trainer.strategy.pipeline_dtype", TorchDtype("float32")),
    ],
}


@dataclass(frozen=True)
class NemoSettings:
    recipe: str
    factory: dict[str, Any]
    assignments: list[tuple[str, Any]]
    data_module: dict[str, Any]
    precision: str
    plan: StepPlan
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """For metrics.json: everything the NeMo run was configured with."""
        return {
            "recipe": self.recipe,
            "factory": self.factory,
            "assignments": {path: str(v) if isinstance(v, TorchDtype) else v for path, v in self.assignments},
            "dataModule": self.data_module,
            "precision": self.precision,
            "notes": self.notes,
        }


class UnsupportedBaseModel(ValueError):
    """The base model has no recipe the nemo backend runs (the operator refuses such a spec first)."""


def recipe_for(spec: TrialSpec) -> NemoRecipe:
    found = nemo_recipe(spec.base_model.name)
    if found is None:
        raise UnsupportedBaseModel(unsupported_message("baseModel.name", spec.base_model.name))
    return found


def recipe_settings(spec: TrialSpec, train_rows: int, run_dir: str, dataset_root: str) -> NemoSettings:
    """Everything the NeMo recipe needs for this trial. Pure: no NeMo import, no I/O."""
    recipe = recipe_for(spec)
    t, lora = spec.training, spec.lora
    gpus = spec.gpus * spec.nodes
    plan = plan_steps(t, train_rows, data_parallel_size=gpus)  # LoRA on 8B fits one GPU: TP=PP=CP=1, DP=all
    factory = {
        "dir": run_dir,
        "name": spec.name,
        "num_nodes": spec.nodes,
        "num_gpus_per_node": spec.gpus,
        "peft_scheme": "lora",
        "packed_sequence": False,
    }
    bf16, fp16 = t.precision == "bf16", t.precision == "fp16"
    assignments: list[tuple[str, Any]] = [
        # parallelism: the whole 8B model on every GPU, data parallel across them
        ("trainer.strategy.tensor_model_parallel_size", 1),
        ("trainer.strategy.pipeline_model_parallel_size", 1),
        ("trainer.strategy.context_parallel_size", 1),
        # checkpoints: complete on rank 0's node (see above), finished when fit returns
        ("trainer.strategy.ckpt_parallel_save", False),
        ("trainer.strategy.ckpt_async_save", False),
        # steps and validation
        ("trainer.max_steps", plan.max_steps),
        ("trainer.val_check_interval", plan.max_steps),  # validate once, at the end (validation loss)
        ("trainer.limit_val_batches", 1.0),
        ("trainer.log_every_n_steps", 1),
        ("model.config.seq_length", t.seq_length),
        # optimizer: Adam vs AdamW is decoupled_weight_decay
        ("optim.config.optimizer", "adam"),
        ("optim.config.lr", t.learning_rate),
        ("optim.config.weight_decay", t.weight_decay),
        ("optim.config.decoupled_weight_decay", t.optimizer == "adamw"),
        ("optim.config.adam_beta1", ADAM_BETAS[0]),
        ("optim.config.adam_beta2", ADAM_BETAS[1]),
        ("optim.config.adam_eps", ADAM_EPS),
        ("optim.config.clip_grad", CLIP_GRAD),
        ("optim.config.bf16", bf16),
        ("optim.config.fp16", fp16),
        ("optim.config.use_distributed_optimizer", False),
        # schedule: linear warmup, then cosine to the minimum over the remaining steps
        ("optim.lr_scheduler.warmup_steps", t.scheduler.warmup_steps),
        ("optim.lr_scheduler.constant_steps", 0),
        ("optim.lr_scheduler.min_lr", t.scheduler.min_learning_rate),
        ("optim.lr_scheduler.max_steps", plan.max_steps),
        # LoRA
        ("peft.dim", lora.rank),
        ("peft.alpha", lora.alpha),
        ("peft.dropout", lora.dropout),
        ("peft.target_modules", nemo_target_modules(lora.target_modules)),
        # precision: the recipe's plugin, its fields overridden only where the spec's precision differs
        *PRECISION_FIELDS[t.precision],
    ]
    data_module = {
        "class": "ChatDataModule",  # rows are written as {"messages": [...]}, rendered by the HF chat template
        "dataset_root": dataset_root,
        "seq_length": t.seq_length,
        "micro_batch_size": plan.micro_batch_size,
        "global_batch_size": plan.global_batch_size,
        "seed": t.seed,
        "use_hf_tokenizer_chat_template": True,
    }
    notes = []
    widened = nemo_widening(lora.target_modules)
    if widened:
        notes.append(
            "NeMo adapts fused layers (linear_qkv = q/k/v, linear_fc1 = gate/up): also adapted " + ", ".join(widened)
        )
    if plan.gradient_accumulation_steps > 1:
        notes.append(
            f"gradient accumulation {plan.gradient_accumulation_steps} is implied by globalBatchSize / "
            f"(microBatchSize x {gpus} GPUs); Megatron derives it from the data module"
        )
    return NemoSettings(
        recipe=recipe.recipe,
        factory=factory,
        assignments=assignments,
        data_module=data_module,
        precision=PRECISION_PLUGIN[t.precision],
        plan=plan,
        notes=notes,
    )


def apply_assignments(
    recipe: Any, assignments: list[tuple[str, Any]], dtype: Callable[[TorchDtype], Any] = lambda d: d
) -> None:
    """Set each dotted path on a nemo_run config tree (works on any attribute tree); a path that does not
    exist on the recipe is an AttributeError, never a new attribute. `dtype` turns TorchDtype into torch's."""
    for path, value in assignments:
        *parents, leaf = path.split(".")
        node = recipe
        for name in parents:
            node = getattr(node, name)
        getattr(node, leaf)  # the recipe must have it: a typo or a renamed field fails here, not silently
        setattr(node, leaf, dtype(value) if isinstance(value, TorchDtype) else value)
