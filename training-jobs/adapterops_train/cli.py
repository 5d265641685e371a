"""`python -m adapterops_train`: the trial pod's entrypoint and the serving pods' adapter fetcher.

run    [--spec PATH] [--termination-log PATH]
       Runs one trial. The spec comes from --spec, else $ADAPTEROPS_TRIAL_SPEC, else
       /etc/adapterops/trial.json. The result document always goes to the termination log
       (default /dev/termination-log) and, as the last line, to stdout. Exit 0 on success,
       1 when the trial failed, 2 when the spec could not be read.
fetch  --uri URI --dest DIR                     one adapter into DIR
       --adapter NAME=URI [...] --root DIR       several adapters into DIR/NAME (NIM_PEFT_SOURCE layout)
       [--no-verify]
       Copies adapter folders from s3://, pvc:// or a path; each destination is replaced atomically
       and must hold adapter_config.json + adapter_model.safetensors unless --no-verify.
schema [--write]
       Prints (or writes to the package) the JSON Schema of the termination-log document.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from adapterops_train import uris
from adapterops_train.spec import (
    EXIT_FAILED,
    EXIT_PERMANENT,
    PERMANENT_REASONS,
    TRIAL_SPEC_PATH,
    TrialResult,
    TrialSpec,
)

DEFAULT_TERMINATION_LOG = "/dev/termination-log"
SCHEMA_PATH = Path(__file__).parent / "data" / "trial-result.schema.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def result_schema() -> str:
    """The committed JSON Schema of `TrialResult` (a test fails when it drifts from the model)."""
    schema = TrialResult.model_json_schema(by_alias=True, mode="serialization")
    schema["$id"] = "https://adapterops.io/schemas/trial-result/v1.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_result(result: TrialResult, path: str) -> None:
    text = result.to_termination_message()
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:  # e.g. running outside Kubernetes: stdout still carries the document
        print(f"warning: cannot write termination log {path}: {exc}", file=sys.stderr)
    print(text, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    spec_path = args.spec or os.environ.get("ADAPTEROPS_TRIAL_SPEC") or TRIAL_SPEC_PATH
    try:
        spec = TrialSpec.model_validate_json(Path(spec_path).read_text(encoding="utf-8"))
    except (OSError, ValidationError, ValueError) as exc:
        write_result(
            TrialResult(status="failed", reason="SpecInvalid", message=f"{spec_path}: {exc}"), args.termination_log
        )
        return EXIT_PERMANENT
    # A trial reads its base model from baseModel.uri only: never let a library reach for a model hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from adapterops_train.runner import run_trial

    result = run_trial(spec)
    write_result(result, args.termination_log)
    if result.status == "succeeded":
        return 0
    return EXIT_PERMANENT if result.reason in PERMANENT_REASONS else EXIT_FAILED


def _verify(dest: Path) -> None:
    missing = [f for f in ADAPTER_FILES if not (dest / f).is_file()]
    if missing:
        raise uris.UriError(f"{dest}: not an adapter, missing {', '.join(missing)}")


def cmd_fetch(args: argparse.Namespace) -> int:
    if bool(args.uri) == bool(args.adapter):
        print("fetch: give either --uri with --dest, or --adapter NAME=URI with --root", file=sys.stderr)
        return 2
    jobs: list[tuple[str, Path]] = []
    if args.uri:
        if not args.dest:
            print("fetch: --uri needs --dest", file=sys.stderr)
            return 2
        jobs.append((args.uri, Path(args.dest)))
    else:
        if not args.root:
            print("fetch: --adapter needs --root", file=sys.stderr)
            return 2
        for item in args.adapter:
            name, sep, uri = item.partition("=")
            if not sep or not name or "/" in name or name in (".", ".."):
                print(f"fetch: --adapter wants NAME=URI with a plain NAME, got {item!r}", file=sys.stderr)
                return 2
            jobs.append((uri, Path(args.root) / name))
    fetched = []
    try:
        for uri, dest in jobs:
            uris.install_tree(uri, dest)
            if not args.no_verify:
                _verify(dest)
            fetched.append({"uri": uri, "dest": str(dest)})
    except uris.UriError as exc:
        print(f"fetch: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"fetched": fetched}))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    text = result_schema()
    if args.write:
        SCHEMA_PATH.write_text(text, encoding="utf-8")
        print(SCHEMA_PATH)
    else:
        sys.stdout.write(text)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m adapterops_train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one trial")
    run.add_argument("--spec", help=f"trial spec JSON (default $ADAPTEROPS_TRIAL_SPEC or {TRIAL_SPEC_PATH})")
    run.add_argument("--termination-log", default=DEFAULT_TERMINATION_LOG)
    run.set_defaults(fn=cmd_run)
    fetch = sub.add_parser("fetch", help="copy adapters into a serving engine's adapter folder")
    fetch.add_argument("--uri", help="adapter folder: s3://bucket/prefix, pvc://claim/path or /path")
    fetch.add_argument("--dest", help="destination folder for --uri")
    fetch.add_argument("--adapter", action="append", default=[], metavar="NAME=URI", help="repeatable")
    fetch.add_argument("--root", help="folder receiving NAME/ for each --adapter (e.g. $NIM_PEFT_SOURCE)")
    fetch.add_argument("--no-verify", action="store_true", help="do not require the adapter files")
    fetch.set_defaults(fn=cmd_fetch)
    schema = sub.add_parser("schema", help="JSON Schema of the termination-log document")
    schema.add_argument("--write", action="store_true")
    schema.set_defaults(fn=cmd_schema)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("ADAPTEROPS_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per judge request is noise
    args = parser().parse_args(argv)
    code: int = args.fn(args)
    return code
