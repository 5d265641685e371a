"""The `hf` backend: transformers + PEFT LoRA + TRL (SFTTrainer, DPOTrainer), on CPU or GPUs.

Under a launcher (torchrun: one process per GPU, or per CPU trainer) the Trainer trains data-parallel
(DistributedDataParallel through accelerate, over gloo on CPU and NCCL on GPUs): each process takes its
share of every global batch, so gradient accumulation is globalBatchSize / (microBatchSize x processes).

Every hyperparameter of the trial spec is mapped explicitly, and what the trainer actually used
(optimizer class and its param groups, the learning rate of every step, the LoRA layers it wrapped)
is observed from the live trainer by `_Observer` and reported, so a spec/trainer mismatch shows up in
metrics.json instead of hiding behind echoed inputs.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
import transformers
from peft import LoraConfig, PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase, TrainerCallback, set_seed

from adapterops_common.contract import TrialSpec
from adapterops_train.backends import TrainOutcome
from adapterops_train.dataset import ChallengeItem, Example, SplitData
from adapterops_train.distributed import Ranks
from adapterops_train.hyper import StepPlan, hf_target_modules, plan_steps

log = logging.getLogger(__name__)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
# Adam's betas/eps are not in the API; these match NeMo's finetune recipe (beta2 0.98) so both backends agree.
ADAM_BETAS = (0.9, 0.98)
ADAM_EPS = 1e-8
MAX_GRAD_NORM = 1.0  # NeMo's OptimizerConfig.clip_grad default


class _Observer(TrainerCallback):
    """Records the optimizer the trainer really built, the learning rate of every optimizer step and the
    wall time of every optimizer step (so a benchmark can leave the warm-up steps out)."""

    def __init__(self) -> None:
        self.optimizer: dict[str, Any] = {}
        self.learning_rates: list[float] = []
        self.loss_curve: list[dict[str, float]] = []
        self.step_seconds: list[float] = []
        self._last = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._last = time.monotonic()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # From the previous step's end (or the start of training) to this one's: data loading included.
        # No CUDA synchronisation here (it would slow every trial): the trainer reads this step's
        # loss right after this hook (logging_steps=1), which waits for the GPU, so the queue never runs
        # more than one step ahead and a sum over consecutive steps is exact to within one step.
        now = time.monotonic()
        self.step_seconds.append(round(now - self._last, 6))
        self._last = now

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        opt = _unwrap_optimizer(kwargs["optimizer"])
        if not self.optimizer:
            self.optimizer = _describe_optimizer(opt)
        # The LR in the param group right before optimizer.step() is the one this step uses.
        self.learning_rates.append(float(opt.param_groups[0]["lr"]))

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            point = {"step": float(state.global_step), "loss": float(logs["loss"])}
            if "grad_norm" in logs:
                point["gradNorm"] = float(logs["grad_norm"])
            self.loss_curve.append(point)


def _unwrap_optimizer(opt: Any) -> torch.optim.Optimizer:
    # accelerate wraps the optimizer (AcceleratedOptimizer.optimizer); unwrap to the torch class.
    while isinstance(getattr(opt, "optimizer", None), torch.optim.Optimizer):
        opt = opt.optimizer
    assert isinstance(opt, torch.optim.Optimizer)
    return opt


def _describe_optimizer(opt: torch.optim.Optimizer) -> dict[str, Any]:
    groups = [
        {
            "params": len(g["params"]),
            "weightDecay": g.get("weight_decay"),
            "betas": list(g.get("betas", ())),
            "eps": g.get("eps"),
            "decoupledWeightDecay": bool(g.get("decoupled_weight_decay", False)),
        }
        for g in opt.param_groups
    ]
    return {"class": f"{type(opt).__module__}.{type(opt).__qualname__}", "paramGroups": groups}


def dtype_argument(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """`from_pretrained`'s dtype keyword in the installed transformers: `dtype` since 4.56 (transformers PR
    #39782, `torch_dtype` kept as a deprecated alias), `torch_dtype` before. The NeMo container's transformers
    is older (NeMo's requirements pin transformers~=4.53.0; training-jobs/nemo-container.txt), and there
    `from_pretrained(path, dtype=torch.bfloat16)` raises TypeError ("Object of type dtype is not JSON
    serializable", tried with transformers 4.53.3): the evaluation after a NeMo run would fail."""
    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def device_and_dtype(precision: str, local_rank: int = 0) -> tuple[str, torch.dtype, str]:
    """(device, dtype, precision used). bf16/fp16 only on CUDA: on CPU they are slow or unsupported.
    Under a launcher each process takes the GPU of its local rank."""
    if not torch.cuda.is_available():
        return "cpu", torch.float32, "fp32"
    device = f"cuda:{local_rank}"
    if precision == "bf16" and torch.cuda.is_bf16_supported():
        return device, torch.bfloat16, "bf16"
    if precision in ("bf16", "fp16"):
        return device, torch.float16, "fp16"
    return device, torch.float32, "fp32"


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    # adam = L2 penalty folded into the gradient (torch.optim.Adam weight_decay); adamw = decoupled decay.
    # Same split as NeMo's OptimizerConfig.decoupled_weight_decay False/True.
    return {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]


class HfBackend:
    """One trial on transformers/PEFT/TRL: load base, train LoRA, evaluate, generate, save."""

    name = "hf"

    def __init__(self, spec: TrialSpec, base_dir: Path, workdir: Path, ranks: Ranks | None = None) -> None:
        self.spec = spec
        self.base_dir = base_dir
        self.workdir = workdir
        self.ranks = ranks or Ranks()
        self.device, self.dtype, self.precision = device_and_dtype(spec.training.precision, self.ranks.local_rank)
        self.tokenizer = self._load_tokenizer()
        self.trainer: Any = None
        self.plan: StepPlan | None = None

    # ------------------------------------------------------------------ setup

    def prepare_node(self, data: SplitData) -> None:
        """Nothing beyond the fetched files: every process loads the HF checkpoint itself."""

    def _load_tokenizer(self) -> PreTrainedTokenizerBase:
        tok = AutoTokenizer.from_pretrained(str(self.base_dir))
        if tok.pad_token is None:
            # Llama 3 tokenizers ship no pad token; padding positions are masked out, any id will do.
            tok.pad_token = tok.eos_token
        return tok

    def _load_model(self) -> Any:
        model: Any = AutoModelForCausalLM.from_pretrained(str(self.base_dir), **dtype_argument(self.dtype))
        return model.to(self.device)

    def lora_config(self) -> LoraConfig:
        lora = self.spec.lora
        return LoraConfig(
            r=lora.rank,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=hf_target_modules(lora.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        )

    def _common_args(self, plan: StepPlan) -> dict[str, Any]:
        t = self.spec.training
        return {
            "output_dir": str(self.workdir / "trainer"),
            "max_steps": plan.max_steps,
            "per_device_train_batch_size": plan.micro_batch_size,
            "per_device_eval_batch_size": plan.micro_batch_size,
            "gradient_accumulation_steps": plan.gradient_accumulation_steps,
            "learning_rate": t.learning_rate,
            "weight_decay": t.weight_decay,
            # transformers' plain "cosine" decays to 0; this one ends at min_lr as the spec asks.
            "lr_scheduler_type": "cosine_with_min_lr",
            "lr_scheduler_kwargs": {"min_lr": t.scheduler.min_learning_rate},
            "warmup_steps": t.scheduler.warmup_steps,
            "max_grad_norm": MAX_GRAD_NORM,
            "max_length": t.seq_length,
            "logging_steps": 1,
            "eval_strategy": "no",
            "save_strategy": "no",
            "report_to": [],
            "seed": t.seed,
            "data_seed": t.seed,
            "bf16": self.precision == "bf16",
            "fp16": self.precision == "fp16",
            "use_cpu": self.device == "cpu",
            # LoRA leaves the base weights frozen: DDP has nothing unused to look for.
            "ddp_find_unused_parameters": False,
            "dataloader_num_workers": 0,
            "disable_tqdm": True,
        }

    def _datasets(self, data: SplitData) -> tuple[Any, Any]:
        from datasets import Dataset  # type: ignore[attr-defined]

        rows = [_row(ex, self.spec.method) for ex in data.train]
        val = [_row(ex, self.spec.method) for ex in data.validation]
        return Dataset.from_list(rows), Dataset.from_list(val)

    def build_trainer(self, data: SplitData, observer: TrainerCallback | None = None) -> Any:
        """The TRL trainer for this spec (exposed so tests can inspect it before training)."""
        plan = self.plan = plan_steps(self.spec.training, len(data.train), data_parallel_size=self.ranks.world_size)
        train_ds, val_ds = self._datasets(data)
        set_seed(self.spec.training.seed)  # LoRA init and data order
        model = self._load_model()
        common = self._common_args(plan)
        callbacks = [observer] if observer else []
        trainer: Any
        if self.spec.method == "dpo":
            from trl import DPOConfig, DPOTrainer  # type: ignore[attr-defined]

            trainer = DPOTrainer(
                model=model,
                args=DPOConfig(**common),
                train_dataset=train_ds,
                eval_dataset=val_ds,
                processing_class=self.tokenizer,
                peft_config=self.lora_config(),  # reference model = this model with the adapter disabled
                callbacks=callbacks,
            )
        else:
            from trl import SFTConfig, SFTTrainer  # type: ignore[attr-defined]

            trainer = SFTTrainer(
                model=model,
                args=SFTConfig(**common, completion_only_loss=True),
                train_dataset=train_ds,
                eval_dataset=val_ds,
                processing_class=self.tokenizer,
                peft_config=self.lora_config(),
                callbacks=callbacks,
            )
        # DPOTrainer has no optimizer_cls_and_kwargs argument; Trainer.create_optimizer reads the attribute
        # for both trainers, and still applies weight_decay per group (none on norms and biases).
        trainer.optimizer_cls_and_kwargs = (
            optimizer_class(self.spec.training.optimizer),
            {"lr": self.spec.training.learning_rate, "betas": ADAM_BETAS, "eps": ADAM_EPS},
        )
        return trainer

    # ------------------------------------------------------------------ run

    def train(self, data: SplitData) -> TrainOutcome:
        observer = _Observer()
        t0 = time.monotonic()
        trainer = self.build_trainer(data, observer)
        self.trainer = trainer
        t_setup = time.monotonic()
        before = trainer.evaluate()
        t_eval0 = time.monotonic()
        result = trainer.train()
        t_train = time.monotonic()
        after = trainer.evaluate()
        t_eval1 = time.monotonic()
        plan = self.plan
        assert plan is not None
        observed = {
            "optimizer": observer.optimizer,
            "learningRates": observer.learning_rates,
            "lora": _observed_lora(trainer.model),
            "precision": self.precision,
            "device": self.device,
            "dataParallelSize": trainer.args.world_size,
            "gradientAccumulationSteps": trainer.args.gradient_accumulation_steps,
            "schedulerClass": type(trainer.lr_scheduler).__name__,
        }
        extra = {k: float(v) for k, v in after.items() if k.startswith("eval_") and isinstance(v, int | float)}
        return TrainOutcome(
            steps=int(trainer.state.global_step),
            train_loss=float(result.training_loss) if result.training_loss is not None else None,
            validation_loss=float(after["eval_loss"]),
            validation_loss_before=float(before["eval_loss"]),
            loss_curve=observer.loss_curve,
            observed=observed,
            step_seconds=observer.step_seconds,
            plan=plan,
            seconds={
                "setup": t_setup - t0,
                "evalBefore": t_eval0 - t_setup,
                "train": t_train - t_eval0,
                "evalAfter": t_eval1 - t_train,
            },
            extra_eval=extra,
        )

    def save_adapter(self, dest: Path) -> Path:
        """adapter_config.json + adapter_model.safetensors: the layout PEFT, vLLM and NIM load."""
        model: PeftModel = self.trainer.model
        model.save_pretrained(str(dest), safe_serialization=True)
        (dest / "README.md").unlink(missing_ok=True)  # PEFT's model card template; nothing loads it
        missing = [f for f in ADAPTER_FILES if not (dest / f).is_file()]
        if missing:
            raise RuntimeError(f"adapter export incomplete, missing {missing}")
        # Name the base model the way serving engines know it, not by this pod's temp path. Rewritten
        # after saving: PEFT would otherwise look the name up on the hub while saving.
        cfg_path = dest / "adapter_config.json"
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        cfg["base_model_name_or_path"] = self.spec.base_model.name
        cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return dest

    def generate(self, items: list[ChallengeItem], max_new_tokens: int, batch_size: int = 8) -> list[str]:
        if self.base_only:  # the baseline: the same model and generation path, adapter switched off
            with self.trainer.model.disable_adapter():
                return generate_answers(self.trainer.model, self.tokenizer, items, max_new_tokens, batch_size)
        return generate_answers(self.trainer.model, self.tokenizer, items, max_new_tokens, batch_size)

    base_only = False

    def evaluate_base(self, data: SplitData) -> float:
        """The base model's validation loss (no training): the trials' own evaluation (same split, chat
        template, completion-only loss, sequence length) with the LoRA adapter disabled. Later `generate`
        calls answer with the base model too."""
        self.trainer = self.build_trainer(data)
        self.base_only = True
        with self.trainer.model.disable_adapter():
            return float(self.trainer.evaluate()["eval_loss"])


def _row(ex: Example, method: str) -> dict[str, Any]:
    """Conversational prompt-completion rows: TRL applies the base model's chat template and, for
    SFT, computes the loss on the answer only; DPO gets the chosen/rejected answers."""
    prompt = [m.to_dict() for m in ex.prompt]
    if method == "dpo":
        return {
            "prompt": prompt,
            "chosen": [{"role": "assistant", "content": ex.completion}],
            "rejected": [{"role": "assistant", "content": ex.rejected or ""}],
        }
    return {"prompt": prompt, "completion": [{"role": "assistant", "content": ex.completion}]}


def _observed_lora(model: Any) -> dict[str, Any]:
    """The LoRA layers the trainer's model really carries: ranks from the weight shapes, module names."""
    from peft.tuners.lora import LoraLayer

    ranks: set[int] = set()
    modules: set[str] = set()
    count = 0
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer) and "default" in module.lora_A:
            count += 1
            lora_a: Any = module.lora_A["default"]
            ranks.add(int(lora_a.weight.shape[0]))
            modules.add(name.rsplit(".", 1)[-1])
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"layers": count, "ranks": sorted(ranks), "modules": sorted(modules), "trainableParameters": trainable}


@torch.no_grad()
def generate_answers(
    model: Any, tokenizer: PreTrainedTokenizerBase, items: list[ChallengeItem], max_new_tokens: int, batch_size: int = 8
) -> list[str]:
    """Greedy answers to the challenge prompts through the chat template, as a serving engine would."""
    model.eval()
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge
    answers: list[str] = []
    try:
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            texts = [
                tokenizer.apply_chat_template(item.messages(), tokenize=False, add_generation_prompt=True)
                for item in batch
            ]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            new = out[:, enc["input_ids"].shape[1] :]
            answers.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
    return answers


def load_for_generation(base_dir: Path, adapter_dir: Path, precision: str) -> tuple[Any, PreTrainedTokenizerBase]:
    """Base + exported adapter for evaluation after a NeMo run (the adapter is HF PEFT after export)."""
    device, dtype, _ = device_and_dtype(precision)
    tok = AutoTokenizer.from_pretrained(str(base_dir))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    base: Any = AutoModelForCausalLM.from_pretrained(str(base_dir), **dtype_argument(dtype))
    base = base.to(device)
    return PeftModel.from_pretrained(base, str(adapter_dir)), tok
