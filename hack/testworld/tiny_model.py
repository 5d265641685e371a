"""A tiny Llama-architecture model + tokenizer, built in code and saved in Hugging Face format.

It stands in for nvidia/Llama-3.1-Nemotron-Nano-8B-v1 (a Llama 3.1 architecture) in tests and the
demo: same module names (q_proj ... down_proj, so LoRA targets map the same way), grouped-query
attention, a chat template, safetensors weights. Nothing is downloaded: the byte-level BPE tokenizer
is trained on the shipped commerce dataset and the weights are seeded. Same arguments, same files.

    python -m testworld.tiny_model DIR [--pretrain-steps N]

`pretrain_steps` > 0 first trains all weights briefly on the dataset's text (a few seconds per 100
steps on CPU), so the demo's base model writes on-topic text and the judge has something to score.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
COMMERCE = REPO / "training-jobs" / "datasets" / "commerce"
SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>"]
# Llama-3-like turn layout; the assistant turn ends with <|end|>, which is also EOS so generation stops there.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def corpus(dataset_dir: Path = COMMERCE) -> list[str]:
    """Every string of the shipped dataset: the tokenizer's training text."""
    texts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for path in sorted(dataset_dir.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                walk(json.loads(line))
    return texts


def build_tokenizer(texts: list[str], vocab_size: int = 1024) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return fast_tokenizer(tok)


def fast_tokenizer(tok: Any, chat_template: str = CHAT_TEMPLATE) -> Any:
    """`tok` (a tokenizers.Tokenizer holding SPECIAL_TOKENS) as a transformers tokenizer with the test model's
    special tokens and `chat_template`."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        bos_token="<|begin_of_text|>",
        eos_token="<|end|>",
        pad_token="<|pad|>",
        additional_special_tokens=SPECIAL_TOKENS[3:],
    )
    fast.chat_template = chat_template
    return fast


def llama_config(tokenizer: Any, **shape: Any) -> Any:
    """A Llama 3.1-style config (untied embeddings) of `shape`, with the tokenizer's special token ids."""
    from transformers import LlamaConfig

    return LlamaConfig(
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **shape,
    )


def build_model(vocab_size: int, tokenizer: Any, seed: int, hidden: int = 64, layers: int = 2) -> Any:
    import torch
    from transformers import LlamaForCausalLM

    config = llama_config(
        tokenizer,
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 3,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped-query attention, as in Llama 3.1
        max_position_embeddings=1024,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def pretrain(model: Any, tokenizer: Any, steps: int, seed: int, dataset_dir: Path = COMMERCE) -> list[float]:
    """A short full-weight warm-up on the chat-rendered training set; returns the loss per step."""
    import torch

    rows = [json.loads(x) for x in (dataset_dir / "train.jsonl").read_text(encoding="utf-8").splitlines() if x]
    texts = [tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in rows]
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    losses: list[float] = []
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(texts), (16,), generator=gen).tolist()
        enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss))
    model.eval()
    return losses


def build(dest: Path, seed: int = 0, pretrain_steps: int = 0, hidden: int = 64, layers: int = 2) -> Path:
    """Write config.json, model.safetensors, tokenizer files and chat template to `dest`."""
    import torch

    torch.use_deterministic_algorithms(True, warn_only=True)
    tokenizer = build_tokenizer(corpus())
    model = build_model(len(tokenizer), tokenizer, seed, hidden, layers)
    if pretrain_steps:
        pretrain(model, tokenizer, pretrain_steps, seed)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(description="Build the tiny Llama test model.")
    parser.add_argument("dest", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain-steps", type=int, default=0)
    args = parser.parse_args()
    print(build(args.dest, args.seed, args.pretrain_steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
