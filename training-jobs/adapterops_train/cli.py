"""`python -m adapterops_train run`: the trial pod's entrypoint.

run       [--spec PATH] [--termination-log PATH]
          Runs one trial. The spec comes from --spec, else $ADAPTEROPS_TRIAL_SPEC, else
          /etc/adapterops/trial.json. The result document always goes to the termination log
          (default /dev/termination-log) and, as the last line, to stdout. Exit 0 on success,
          1 when the trial failed, 2 when the spec could not be read (or speaks another contract version).
baseline  [--spec PATH] [--termination-log PATH] [--champion-adapter URI]
          Evaluates the base model (no adapter, no training) as a trial evaluates its adapter: its
          validation loss and judge score; with the champion's adapter, the judge also compares the
          champion's answers with the base model's, pairwise. Same spec, result document, exit codes.

The documents are the contract's (`adapterops_common.contract`); the serving pods' adapter fetcher
is `python -m adapterops_common fetch`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from adapterops_common.contract import (
    EXIT_FAILED,
    EXIT_PERMANENT,
    PERMANENT_REASONS,
    TRIAL_SPEC_PATH,
    TrialResult,
    TrialSpec,
    explain,
)

DEFAULT_TERMINATION_LOG = "/dev/termination-log"


def write_result(result: TrialResult, path: str) -> None:
    text = result.to_termination_message()
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:  # e.g. running outside Kubernetes: stdout still carries the document
        print(f"warning: cannot write termination log {path}: {exc}", file=sys.stderr)
    print(text, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    return _run(args, baseline=False)


def cmd_baseline(args: argparse.Namespace) -> int:
    return _run(args, baseline=True, champion=args.champion_adapter)


def _run(args: argparse.Namespace, baseline: bool, champion: str | None = None) -> int:
    spec_path = args.spec or os.environ.get("ADAPTEROPS_TRIAL_SPEC") or TRIAL_SPEC_PATH
    try:
        spec = TrialSpec.model_validate_json(Path(spec_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8, not JSON, or not this contract
        problem = explain(exc) if isinstance(exc, ValidationError) else str(exc)
        write_result(
            TrialResult(status="failed", reason="SpecInvalid", message=f"{spec_path}: {problem}"), args.termination_log
        )
        return EXIT_PERMANENT
    # A trial reads its base model from baseModel.uri only: never let a library reach for a model hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if baseline:
        from adapterops_train.baseline import run_baseline

        result = run_baseline(spec, champion)
    else:
        from adapterops_train.runner import run_trial

        result = run_trial(spec)
    write_result(result, args.termination_log)
    if result.status == "succeeded":
        return 0
    return EXIT_PERMANENT if result.reason in PERMANENT_REASONS else EXIT_FAILED


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m adapterops_train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one trial")
    run.add_argument("--spec", help=f"trial spec JSON (default $ADAPTEROPS_TRIAL_SPEC or {TRIAL_SPEC_PATH})")
    run.add_argument("--termination-log", default=DEFAULT_TERMINATION_LOG)
    run.set_defaults(fn=cmd_run)
    base = sub.add_parser("baseline", help="evaluate the base model (no adapter) as a trial would")
    base.add_argument("--spec", help=f"trial spec JSON (default $ADAPTEROPS_TRIAL_SPEC or {TRIAL_SPEC_PATH})")
    base.add_argument("--termination-log", default=DEFAULT_TERMINATION_LOG)
    base.add_argument(
        "--champion-adapter", help="URI of the champion's adapter: also compare its answers with the base model's"
    )
    base.set_defaults(fn=cmd_baseline)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("ADAPTEROPS_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per judge request is noise
    args = parser().parse_args(argv)
    code: int = args.fn(args)
    return code
