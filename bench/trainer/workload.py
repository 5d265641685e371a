"""What both trainer benchmarks (ours: `run.py`, a plain TRL/PEFT script: `plain.py`) train on and how their
figures are computed: the model shapes, the synthetic full-vocabulary tokenizer and data, the settings both
scripts use, steady-state throughput and model FLOPs utilisation.

Synthetic data, on purpose: the weights are seeded random (nothing is downloaded), so text carries no
meaning anyway; what must be real is the cost. The tokenizer is a word-level vocabulary of exactly the
model's size (128 256 for the Llama 3 shapes) and every row is random token ids drawn uniformly from the
whole vocabulary, long enough that the trainer truncates it to exactly `seq_length` tokens: every sequence
in every batch is full (no padding), as packing would make it, and the LM head's 128k-way softmax is paid
on every position.
"""

from __future__ import annotations

import json
import random
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testworld.tiny_model import SPECIAL_TOKENS, fast_tokenizer

# Llama 3.2 1B and Llama 3.1 8B (the architecture of Llama-3.1-Nemotron-Nano-8B), real vocabulary size.
SHAPES: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 64, "intermediate_size": 192, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "vocab_size": 2048},
    "1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
           "num_key_value_heads": 8, "vocab_size": 128256},
    "8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 8, "vocab_size": 128256},
    # The model of NeMo's published LoRA figure (compare.py NEMO_LORA), for its FLOPs per token.
    "llama2-7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
                  "num_key_value_heads": 32, "vocab_size": 32000},
}  # fmt: skip

# The test model's Llama-3-like turn layout (hack/testworld/tiny_model.py): 5 template tokens per
# user/assistant pair (bos, <|user|>, <|end|>, <|assistant|>, <|end|>); newlines are whitespace here.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
TARGET_MODULES = ["linear_qkv", "linear_proj", "linear_fc1", "linear_fc2"]  # all 7 Llama projections
HF_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Adam's betas/eps and the clipping norm our hf backend uses (backends/hf.py ADAM_BETAS, ADAM_EPS, MAX_GRAD_NORM);
# the plain script sets the same through TrainingArguments, and the unit test compares the built optimizers.
ADAM_BETAS = (0.9, 0.98)
ADAM_EPS = 1e-8
MAX_GRAD_NORM = 1.0

# Peak dense BF16 tensor-core FLOP/s (no 2:4 sparsity; NVIDIA's datasheets print the sparse figure, twice
# these). Matched in order against torch.cuda.get_device_name(); None: a variant whose figure differs and is
# not cited here (MFU is then not printed, model TFLOP/s still is). Sources in bench/README.md.
PEAK_BF16_DENSE: list[tuple[str, float | None]] = [
    ("H100 PCIe", 756e12),  # datasheet: 1,513 with sparsity
    ("H100 NVL", None),
    ("GH200", None),
    ("H100", 989e12),  # SXM5; datasheet: 1,979 with sparsity
    ("H200 NVL", None),
    ("H200", 989e12),  # SXM; the same GH100 compute as H100 SXM
    ("B200", 2250e12),  # HGX B200 at 1000 W; datasheet: 4.5 PFLOPS with sparsity
]


@dataclass(frozen=True)
class Settings:
    """Everything both scripts must train with. `run.py` turns it into a trial spec for our entrypoint,
    `plain.py` into SFTConfig + LoraConfig as a TRL user would write them."""

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    micro_batch: int = 4
    global_batch: int = 16
    seq_length: int = 2048
    steps: int = 8
    warmup_steps: int = 2  # optimizer steps left out of the steady-state figures (and the LR warm-up)
    learning_rate: float = 2e-4
    min_learning_rate: float = 2e-5
    weight_decay: float = 0.01
    seed: int = 1

    @property
    def accumulation(self) -> int:
        return self.global_batch // self.micro_batch

    def trial_spec(self, base: str, out: str, train: str, validation: str) -> dict[str, Any]:
        """The TrialSpec (contract v2) our operator would send for these settings, hf backend."""
        from adapterops_common.contract import TRIAL_SPEC_VERSION

        return {
            "apiVersion": TRIAL_SPEC_VERSION,
            "name": "bench",
            "finetuneJob": "bench/trainer",
            "method": "sft",
            "backend": "hf",
            "baseModel": {"name": "bench/llama", "uri": base},
            "dataset": {"train": train, "validation": validation, "validationFraction": 0.1, "format": "chat",
                        "seed": self.seed},
            "lora": {"rank": self.rank, "alpha": self.alpha, "dropout": self.dropout, "targetModules": TARGET_MODULES},
            "training": {
                "maxSteps": self.steps,
                "learningRate": self.learning_rate,
                "optimizer": "adamw",
                "weightDecay": self.weight_decay,
                "scheduler": {"type": "cosine", "warmupSteps": self.warmup_steps,
                              "minLearningRate": self.min_learning_rate},
                "globalBatchSize": self.global_batch,
                "microBatchSize": self.micro_batch,
                "seqLength": self.seq_length,
                "precision": "bf16",
                "seed": self.seed,
            },
            "outputUri": out,
            "parameters": {},
            "gpus": 1,
            "nodes": 1,
        }  # fmt: skip


def add_arguments(parser: Any) -> None:
    """The command-line options both scripts share (defaults: Settings)."""
    d = Settings()
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--rank", type=int, default=d.rank)
    parser.add_argument("--micro-batch", type=int, default=d.micro_batch)
    parser.add_argument("--global-batch", type=int, default=d.global_batch)
    parser.add_argument("--seq-length", type=int, default=d.seq_length)
    parser.add_argument("--steps", type=int, default=d.steps, help="optimizer steps, warm-up included")
    parser.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help="left out of the figures")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--base-dir", type=Path, default=None, help="reuse a base built by an earlier run")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder, removed after")


def settings_from(args: Any) -> Settings:
    if args.warmup_steps >= args.steps:
        raise SystemExit(f"--warmup-steps {args.warmup_steps} leaves no measured step of --steps {args.steps}")
    return Settings(
        rank=args.rank,
        alpha=2 * args.rank,
        micro_batch=args.micro_batch,
        global_batch=args.global_batch,
        seq_length=args.seq_length,
        steps=args.steps,
        warmup_steps=args.warmup_steps,
        seed=args.seed,
    )


# --------------------------------------------------------------------------- tokenizer, data, base model


def build_tokenizer(vocab_size: int) -> Any:
    """A word-level tokenizer of exactly `vocab_size` ids: the special tokens, then `w<i>`."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    vocab.update({f"w{i}": i for i in range(len(SPECIAL_TOKENS), vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|pad|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return fast_tokenizer(tok, CHAT_TEMPLATE)


def write_rows(path: Path, rows: int, seq_length: int, vocab_size: int, seed: int) -> Path:
    """Chat rows of uniformly random ids over the whole vocabulary, a user turn and an assistant answer of
    about half the length each, 8 tokens longer than `seq_length` so the trainer's truncation makes every
    row exactly `seq_length` tokens (the loss is on the answer only, as in our SFT)."""
    rng = random.Random(seed)
    first = len(SPECIAL_TOKENS)
    body = seq_length + 8 - 5
    prompt_len = body // 2

    def words(n: int) -> str:
        return " ".join(f"w{rng.randrange(first, vocab_size)}" for _ in range(n))

    with path.open("w", encoding="utf-8") as f:
        for _ in range(rows):
            messages = [{"role": "user", "content": words(prompt_len)},
                        {"role": "assistant", "content": words(body - prompt_len)}]  # fmt: skip
            f.write(json.dumps({"messages": messages}) + "\n")
    return path


def write_dataset(folder: Path, settings: Settings, vocab_size: int) -> tuple[Path, Path]:
    """train.jsonl (exactly steps x global batch rows: one pass, no row seen twice) and validation.jsonl (one
    micro batch: our trainer evaluates before and after training, which the figures leave out)."""
    folder.mkdir(parents=True, exist_ok=True)
    s = settings
    train = write_rows(folder / "train.jsonl", s.steps * s.global_batch, s.seq_length, vocab_size, s.seed)
    val = write_rows(folder / "validation.jsonl", s.micro_batch, s.seq_length, vocab_size, s.seed + 1)
    return train, val


def llama_config(shape: str, tokenizer: Any) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_position_embeddings=8192,
        **SHAPES[shape],
    )


def build_base(dest: Path, shape: str, seed: int = 0) -> Path:
    """Save a seeded random Llama of `shape` (bf16 safetensors) with the synthetic tokenizer, once: a later
    run passes the same folder (--base-dir) and reuses it (marker file `shape`)."""
    marker = dest / "bench-shape"
    if marker.is_file() and marker.read_text() == shape:
        return dest
    import torch
    from transformers import LlamaForCausalLM

    tokenizer = build_tokenizer(SHAPES[shape]["vocab_size"])
    config = llama_config(shape, tokenizer)
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):  # initialising 8B parameters on the CPU takes minutes
        model: Any = LlamaForCausalLM(config)
        model = model.to(torch.bfloat16)
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    marker.write_text(shape)
    return dest


# --------------------------------------------------------------------------- figures


def matmul_parameters(shape: str) -> dict[str, int]:
    """Parameters that take part in matrix multiplications (every projection and the LM head; not the
    embedding lookup or the norms), from the shape alone."""
    c = SHAPES[shape]
    d, ffn, layers, vocab = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    kv = d // c["num_attention_heads"] * c["num_key_value_heads"]
    per_layer = d * d + 2 * d * kv + d * d + 3 * d * ffn  # q, k+v, o, gate+up+down
    return {"layers": layers * per_layer, "lmHead": d * vocab, "embedding": d * vocab}


def lora_parameters(shape: str, rank: int) -> int:
    """LoRA A and B of all 7 projections of every layer: rank x (in + out) each."""
    c = SHAPES[shape]
    d, ffn = c["hidden_size"], c["intermediate_size"]
    kv = d // c["num_attention_heads"] * c["num_key_value_heads"]
    per_layer = rank * ((d + d) + 2 * (d + kv) + (d + d) + 2 * (d + ffn) + (ffn + d))
    return c["num_hidden_layers"] * per_layer


def flops_per_token(shape: str, seq_length: int, rank: int) -> dict[str, float]:
    """Model FLOPs per trained token.

    `lora` (the one MFU uses): the base weights are frozen, so the backward pass computes the gradient with
    respect to the activations (another 2 FLOPs per weight) but never the weights' own gradient: 4·N for the
    frozen matmul weights N (LM head included), 6 per LoRA parameter, plus attention (QKᵀ and AV, which have no
    weights, so their backward is twice their forward whether or not the base is frozen): 3 x 2·L·s·d with the
    causal mask counted (half of the 4·L·s·d of a full score matrix). Recomputation from gradient checkpointing
    is not counted (model FLOPs, not hardware FLOPs).

    `sixN`: the full-fine-tuning convention 6·N (no attention), printed for comparison with tables that use it;
    for LoRA it counts weight gradients that are never computed, so it overstates the work by about 1.5x.
    """
    c = SHAPES[shape]
    n = matmul_parameters(shape)
    frozen = n["layers"] + n["lmHead"]
    attention = 3 * 2 * c["num_hidden_layers"] * seq_length * c["hidden_size"]
    return {
        "lora": 4 * frozen + 6 * lora_parameters(shape, rank) + attention,
        "sixN": 6 * frozen,
    }


def peak_flops(device_name: str | None) -> tuple[str, float] | None:
    if not device_name:
        return None
    for key, peak in PEAK_BF16_DENSE:
        if key.lower() in device_name.lower():
            return (key, peak) if peak else None
    return None


def steady_state(step_seconds: list[float], settings: Settings, shape: str, device_name: str | None) -> dict[str, Any]:
    """Tokens/s over the steps after the warm-up ones, the per-step spread, and MFU where the GPU is known."""
    measured = step_seconds[settings.warmup_steps :]
    if not measured:
        return {"error": f"{len(step_seconds)} step times recorded, {settings.warmup_steps} are warm-up"}
    tokens_per_step = settings.global_batch * settings.seq_length
    seconds = sum(measured)
    tps = tokens_per_step * len(measured) / seconds
    per_step = [tokens_per_step / s for s in measured]
    doc: dict[str, Any] = {
        "warmupSteps": settings.warmup_steps,
        "measuredSteps": len(measured),
        "tokensPerStep": tokens_per_step,
        "tokensPerSecond": round(tps, 1),
        "stepSecondsMedian": round(statistics.median(measured), 4),
        "stepTokensPerSecondMinMax": [round(min(per_step), 1), round(max(per_step), 1)],
        "warmupStepSeconds": [round(s, 3) for s in step_seconds[: settings.warmup_steps]],
    }
    fpt = flops_per_token(shape, settings.seq_length, settings.rank)
    doc["modelTflopsPerSecond"] = float(f"{tps * fpt['lora'] / 1e12:.4g}")
    peak = peak_flops(device_name)
    if peak:
        doc["peak"] = {"gpu": peak[0], "bf16DenseTflops": peak[1] / 1e12}
        doc["mfu"] = round(tps * fpt["lora"] / peak[1], 4)
        doc["mfuSixN"] = round(tps * fpt["sixN"] / peak[1], 4)
    return doc


def cuda_memory() -> dict[str, float] | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return {
        "maxAllocatedGiB": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "maxReservedGiB": round(torch.cuda.max_memory_reserved() / 2**30, 2),
    }


def main(doc: str, run: Any, prefix: str) -> int:
    """Both scripts' command line: parse add_arguments(), run in --workdir or a temporary folder (removed after),
    print the run's JSON document."""
    import argparse
    import json
    import tempfile

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args()
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        print(json.dumps(run(args, args.workdir)), flush=True)
    else:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            print(json.dumps(run(args, Path(tmp))), flush=True)
    return 0
