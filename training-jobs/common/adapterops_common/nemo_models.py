"""The base models the nemo backend can fine-tune, by Hugging Face id: which NeMo 2 recipe trains each.

Shared by the operator (a FineTuneJob with `backend: nemo` and a base model not listed here is refused in
Accepted=False, naming the supported ids) and the trainer (the recipe gives the model class and config:
`nemo.collections.llm.recipes.<recipe>.model()`, and the same model object selects NeMo's HF importer and
its `hf-peft` exporter). The base model's family is known from `baseModel.name`, the id the serving engines
know it by; a copy of a listed model under another name is refused rather than guessed at.

What is listed (NeMo sources, NVIDIA/NeMo at 8cfedd7, the 2.6 line that 2.7 continues):
- a recipe with `finetune_recipe(dir, name, num_nodes, num_gpus_per_node, peft_scheme, packed_sequence)`
  whose default checkpoint (`default_finetune_recipe(model(), "<hf id>", ...)`, or `resume_path` for
  llama31_nemotron_nano_8b) is the id below, in `nemo/collections/llm/recipes/<recipe>.py`;
- a model class with both an `hf` importer and an `hf-peft` exporter (`io.model_importer` /
  `io.model_exporter`): LlamaModel (`gpt/model/llama.py`) and LlamaNemotronModel
  (`gpt/model/llama_nemotron.py`). MistralModel has an importer but no `hf-peft` exporter, so a NeMo-trained
  Mistral adapter could not be served: not listed;
- a model that fits one GPU whole: the backend trains LoRA with TP = PP = CP = 1 (data parallel only), so
  the 70B and larger recipes (llama3_70b, llama31_70b, llama31_nemotron_70b, Super 49B, Ultra 253B), which
  need tensor parallelism, are not listed.
The -Instruct ids are the same architectures (config.json) as the recipe's base checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class NemoRecipe:
    recipe: str  # module under nemo.collections.llm.recipes
    model_class: str  # nemo.collections.llm.<model_class>(<config_class>()), as the recipe's model() builds it
    config_class: str


LLAMA3_8B = NemoRecipe("llama3_8b", "LlamaModel", "Llama3Config8B")
LLAMA31_8B = NemoRecipe("llama31_8b", "LlamaModel", "Llama31Config8B")
LLAMA32_1B = NemoRecipe("llama32_1b", "LlamaModel", "Llama32Config1B")
LLAMA32_3B = NemoRecipe("llama32_3b", "LlamaModel", "Llama32Config3B")
NEMOTRON_NANO_8B = NemoRecipe("llama31_nemotron_nano_8b", "LlamaNemotronModel", "Llama31NemotronNano8BConfig")

# Hugging Face id (as written, compared case-insensitively) -> the recipe that trains it.
NEMO_BASE_MODELS: Final[dict[str, NemoRecipe]] = {
    "meta-llama/Meta-Llama-3-8B": LLAMA3_8B,
    "meta-llama/Meta-Llama-3-8B-Instruct": LLAMA3_8B,
    "meta-llama/Llama-3.1-8B": LLAMA31_8B,
    "meta-llama/Llama-3.1-8B-Instruct": LLAMA31_8B,
    "meta-llama/Meta-Llama-3.1-8B": LLAMA31_8B,  # the id's name before Meta's renaming
    "meta-llama/Meta-Llama-3.1-8B-Instruct": LLAMA31_8B,
    "meta-llama/Llama-3.2-1B": LLAMA32_1B,
    "meta-llama/Llama-3.2-1B-Instruct": LLAMA32_1B,
    "meta-llama/Llama-3.2-3B": LLAMA32_3B,
    "meta-llama/Llama-3.2-3B-Instruct": LLAMA32_3B,
    "nvidia/Llama-3.1-Nemotron-Nano-8B-v1": NEMOTRON_NANO_8B,
}
_BY_LOWER: Final = {name.lower(): recipe for name, recipe in NEMO_BASE_MODELS.items()}


def nemo_recipe(base_model_name: str) -> NemoRecipe | None:
    """The recipe for a base model's Hugging Face id, or None when the nemo backend cannot train it."""
    return _BY_LOWER.get(base_model_name.strip().lower())


def unsupported_message(field: str, base_model_name: str) -> str:
    """What a user sees when the nemo backend cannot train their base model."""
    return (
        f"{field}: {base_model_name!r} has no NeMo 2 recipe the nemo backend can run (LoRA on one GPU per "
        f"replica, exported to Hugging Face PEFT); supported: {', '.join(NEMO_BASE_MODELS)}; or use backend: hf"
    )
