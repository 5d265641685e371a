"""The NeMo recipe mapping: every spec hyperparameter lands on the recipe (no NeMo needed)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from adapterops_common.contract import TRIAL_SPEC_VERSION, TrialSpec
from adapterops_common.nemo_models import nemo_recipe
from adapterops_train.nemo_recipe import TorchDtype, UnsupportedBaseModel, apply_assignments, recipe_settings
from adapterops_train.runner import DPO_ON_NEMO_REASON, choose_backend


def spec(**overrides: Any) -> TrialSpec:
    doc: dict[str, Any] = {
        "apiVersion": TRIAL_SPEC_VERSION,
        "name": "t-3",
        "finetuneJob": "ml/commerce",
        "method": "sft",
        "backend": "nemo",
        "baseModel": {"name": "nvidia/Llama-3.1-Nemotron-Nano-8B-v1", "uri": "s3://models/nemotron-nano-8b"},
        "dataset": {"train": "s3://data/train.jsonl", "validationFraction": 0.3, "seed": 42, "format": "chat"},
        "lora": {"rank": 32, "alpha": 64, "dropout": 0.1, "targetModules": ["q_proj", "linear_fc2"]},
        "training": {
            "epochs": 2,
            "learningRate": 2e-4,
            "optimizer": "adam",
            "weightDecay": 0.05,
            "scheduler": {"type": "cosine", "warmupSteps": 10, "minLearningRate": 0.0},
            "globalBatchSize": 16,
            "microBatchSize": 2,
            "seqLength": 4096,
            "precision": "bf16",
            "seed": 7,
        },
        "outputUri": "s3://out/ml/commerce/t-3",
        "parameters": {},
        "gpus": 2,
        "nodes": 1,
    }
    doc.update(overrides)
    return TrialSpec.model_validate(doc)


def settings_for(s: TrialSpec, rows: int = 300) -> dict[str, Any]:
    return dict(recipe_settings(s, rows, "/work/run", "/work/data").assignments)


def test_every_hyperparameter_is_mapped() -> None:
    st = recipe_settings(spec(), 300, "/work/run", "/work/data")
    a = dict(st.assignments)
    assert st.recipe == "llama31_nemotron_nano_8b"
    assert st.factory == {
        "dir": "/work/run",
        "name": "t-3",
        "num_nodes": 1,
        "num_gpus_per_node": 2,
        "peft_scheme": "lora",
        "packed_sequence": False,
    }  # every listed recipe takes these; the sequence length goes to the model config and the data module
    assert a["model.config.seq_length"] == 4096
    # 300 rows / 16 per step = 19 steps per epoch, 2 epochs
    assert a["trainer.max_steps"] == 38 and a["optim.lr_scheduler.max_steps"] == 38
    assert a["optim.config.lr"] == 2e-4 and a["optim.config.weight_decay"] == 0.05
    assert a["optim.config.decoupled_weight_decay"] is False  # adam = L2 decay, not AdamW
    assert a["optim.lr_scheduler.warmup_steps"] == 10 and a["optim.lr_scheduler.constant_steps"] == 0
    # The recipe factory would turn min_lr=0 into 0.1 x lr: the minimum is assigned explicitly.
    assert a["optim.lr_scheduler.min_lr"] == 0.0
    assert (a["peft.dim"], a["peft.alpha"], a["peft.dropout"]) == (32, 64, 0.1)
    assert a["peft.target_modules"] == ["linear_qkv", "linear_fc2"]
    assert a["optim.config.bf16"] is True and a["optim.config.fp16"] is False and st.precision == "bf16-mixed"
    assert st.data_module["global_batch_size"] == 16 and st.data_module["micro_batch_size"] == 2
    assert st.data_module["seed"] == 7 and st.data_module["seq_length"] == 4096
    assert st.plan.gradient_accumulation_steps == 4  # 16 / (2 x 2 GPUs)
    assert any("also adapted k_proj, v_proj" in n for n in st.notes)


def test_adamw_and_precision() -> None:
    training = spec().training.model_copy(
        update={"optimizer": "adamw", "precision": "fp16", "max_steps": 50, "epochs": None}
    )
    st = recipe_settings(spec(training=training.model_dump(by_alias=True)), 10, "/r", "/d")
    a = dict(st.assignments)
    assert a["optim.config.decoupled_weight_decay"] is True
    assert a["trainer.max_steps"] == 50 and st.precision == "16-mixed" and a["optim.config.fp16"] is True


def precision_fields(precision: str) -> dict[str, Any]:
    training = spec().training.model_copy(update={"precision": precision})
    a = settings_for(spec(training=training.model_dump(by_alias=True)))
    return {k: v for k, v in a.items() if k.startswith(("trainer.plugins.", "trainer.strategy.pipeline_dtype"))}


def test_precision_overrides_the_recipes_plugin_field_by_field() -> None:
    # bf16: the recipe's bf16_mixed() plugin as it is (params/pipeline dtypes, grad reduce in fp32 kept).
    assert precision_fields("bf16") == {}
    # fp16: exactly the fields NeMo's fp16_mixed() sets differently; autocast and the rest stay the recipe's.
    fp16 = precision_fields("fp16")
    assert fp16["trainer.plugins.precision"] == "16-mixed"
    assert fp16["trainer.plugins.params_dtype"] == TorchDtype("float16")
    assert fp16["trainer.plugins.pipeline_dtype"] == TorchDtype("float16")
    assert fp16["trainer.plugins.grad_reduce_in_fp32"] is False
    fp32 = precision_fields("fp32")
    assert fp32["trainer.plugins.precision"] == "32" and fp32["trainer.plugins.params_dtype"] == TorchDtype("float32")
    assert "trainer.plugins.grad_reduce_in_fp32" not in fp32


def test_checkpoints_are_whole_on_rank_zero_and_finished_when_training_returns() -> None:
    a = settings_for(spec(nodes=2))
    assert a["trainer.strategy.ckpt_parallel_save"] is False and a["trainer.strategy.ckpt_async_save"] is False


@pytest.mark.parametrize(
    ("name", "recipe"),
    [
        ("nvidia/Llama-3.1-Nemotron-Nano-8B-v1", "llama31_nemotron_nano_8b"),
        ("meta-llama/Llama-3.1-8B-Instruct", "llama31_8b"),
        ("META-LLAMA/llama-3.2-1b", "llama32_1b"),
        ("meta-llama/Meta-Llama-3-8B", "llama3_8b"),
    ],
)
def test_the_recipe_comes_from_the_base_model(name: str, recipe: str) -> None:
    st = recipe_settings(spec(baseModel={"name": name, "uri": "s3://m/x"}), 300, "/r", "/d")
    assert st.recipe == recipe and st.as_dict()["recipe"] == recipe


def test_a_base_model_without_a_recipe_is_named_with_the_supported_ones() -> None:
    with pytest.raises(UnsupportedBaseModel) as err:
        recipe_settings(spec(baseModel={"name": "mistralai/Mistral-7B-v0.3", "uri": "s3://m/x"}), 300, "/r", "/d")
    assert "'mistralai/Mistral-7B-v0.3'" in str(err.value) and "meta-llama/Llama-3.1-8B" in str(err.value)
    assert nemo_recipe("meta-llama/Llama-3.1-70B") is None  # needs tensor parallelism: not listed


def recipe_tree(paths: list[str]) -> SimpleNamespace:
    """An attribute tree holding every path (as a recipe has each field, set or defaulted)."""
    root = SimpleNamespace()
    for path in paths:
        node = root
        *parents, leaf = path.split(".")
        for name in parents:
            if not hasattr(node, name):
                setattr(node, name, SimpleNamespace())
            node = getattr(node, name)
        setattr(node, leaf, None)
    return root


def test_assignments_apply_to_a_config_tree() -> None:
    st = recipe_settings(
        spec(training={**spec().training.model_dump(by_alias=True), "precision": "fp16"}), 300, "/r", "/d"
    )
    recipe = recipe_tree([path for path, _ in st.assignments])
    apply_assignments(recipe, st.assignments, dtype=lambda d: f"resolved {d.name}")
    assert recipe.optim.lr_scheduler.min_lr == 0.0 and recipe.peft.dim == 32
    assert recipe.trainer.strategy.tensor_model_parallel_size == 1
    assert recipe.trainer.plugins.params_dtype == "resolved float16"
    # A field the recipe does not have (a typo, or renamed in another NeMo) fails instead of being added.
    with pytest.raises(AttributeError):
        apply_assignments(recipe, [("peft.missing", 1)])


def test_dpo_on_nemo_routes_to_hf_with_the_reason() -> None:
    preference = {"train": "s3://d/p.jsonl", "validationFraction": 0.3, "seed": 1, "format": "preference"}
    assert choose_backend(spec(method="dpo", dataset=preference)) == ("hf", DPO_ON_NEMO_REASON)
    assert choose_backend(spec()) == ("nemo", None)
