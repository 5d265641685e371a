"""NeMo's one-process conversions, run by `backends.nemo` in a child process without the launcher's ranks:

  python -m adapterops_train.backends.nemo_tools import --recipe R --source HF_DIR --out NEMO_DIR
  python -m adapterops_train.backends.nemo_tools export --checkpoint LORA_CKPT --out HF_PEFT_DIR

`import`: `llm.import_ckpt` with the recipe's own model (`nemo.collections.llm.recipes.<R>.model()`, built):
the model class selects NeMo's HF importer, which reads the architecture from the checkpoint's config.json.
`export`: `llm.peft.export_lora` (the model class's `hf-peft` exporter) to adapter_config.json and
adapter_model.safetensors. Both build a CPU Lightning trainer of one device (see `backends.nemo`).
"""

from __future__ import annotations

import argparse
import importlib
import sys


def import_base(recipe: str, source: str, out: str) -> None:
    import fiddle as fdl
    from nemo.collections import llm

    model = fdl.build(importlib.import_module(f"nemo.collections.llm.recipes.{recipe}").model())
    llm.import_ckpt(model=model, source=f"hf://{source}", output_path=out)


def export_adapter(checkpoint: str, out: str) -> None:
    from nemo.collections import llm

    llm.peft.export_lora(lora_checkpoint_path=checkpoint, output_path=out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m adapterops_train.backends.nemo_tools", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import")
    imp.add_argument("--recipe", required=True)
    imp.add_argument("--source", required=True)
    imp.add_argument("--out", required=True)
    exp = sub.add_parser("export")
    exp.add_argument("--checkpoint", required=True)
    exp.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.command == "import":
        import_base(args.recipe, args.source, args.out)
    else:
        export_adapter(args.checkpoint, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
