"""`python -m adapterops_common`: the serving pods' adapter fetcher (the init container's command).

fetch  --uri URI --dest DIR                     one adapter into DIR
       --adapter NAME=URI [...] --root DIR       several adapters into DIR/NAME (NIM_PEFT_SOURCE layout)
       [--no-verify]
       Copies adapter folders from s3://, pvc:// or a path; each destination is replaced atomically
       and must hold adapter_config.json + adapter_model.safetensors unless --no-verify.
       Prints {"fetched": [...]}; exit 1 on a missing or invalid source, 2 on bad arguments.
agent  --root DIR --wanted FILE --engine URL [--port 8001] [--drain SECONDS]
       The in-place adapter agent (adapterops_common.agent): loads what FILE (the pod's adapterops.io/adapters
       annotation) asks for into the engine at URL, serves GET /ready and GET /status on --port. Runs until
       SIGTERM.
load   --url URL --model NAME --prompts SRC (--rate R | --concurrency C) --duration D ...
       A serving profile's load generator (adapterops_common.load).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from adapterops_common import load, storage

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def _verify(dest: Path) -> None:
    missing = [f for f in ADAPTER_FILES if not (dest / f).is_file()]
    if missing:
        raise storage.UriError(f"{dest}: not an adapter, missing {', '.join(missing)}")


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
            storage.install_tree(uri, dest)
            if not args.no_verify:
                _verify(dest)
            fetched.append({"uri": uri, "dest": str(dest)})
    except storage.UriError as exc:
        print(f"fetch: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"fetched": fetched}))
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    import threading

    import httpx

    from adapterops_common.agent import Agent, serve

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with httpx.Client() as http:
        agent = Agent(Path(args.root), Path(args.wanted), args.engine, http, drain=args.drain)
        server = serve(agent, os.environ.get("POD_IP", "0.0.0.0"), args.port)
        try:
            agent.run(stop)
        finally:
            server.shutdown()
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m adapterops_common", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="copy adapters into a serving engine's adapter folder")
    fetch.add_argument("--uri", help="adapter folder: s3://bucket/prefix, pvc://claim/path or /path")
    fetch.add_argument("--dest", help="destination folder for --uri")
    fetch.add_argument("--adapter", action="append", default=[], metavar="NAME=URI", help="repeatable")
    fetch.add_argument("--root", help="folder receiving NAME/ for each --adapter (e.g. $NIM_PEFT_SOURCE)")
    fetch.add_argument("--no-verify", action="store_true", help="do not require the adapter files")
    fetch.set_defaults(fn=cmd_fetch)
    agent = sub.add_parser("agent", help="load adapters at run time as the pod's annotation asks (InPlace)")
    agent.add_argument("--root", required=True, help="the adapters volume (the engine reads the same path)")
    agent.add_argument("--wanted", required=True, help="the downward API file of the adapterops.io/adapters annotation")
    agent.add_argument("--engine", required=True, help="the engine's base URL, e.g. http://$(POD_IP):8000")
    agent.add_argument("--port", type=int, default=8001, help="GET /ready and GET /status")
    agent.add_argument("--drain", type=float, default=3.0, help="seconds unready before replacing a loaded adapter")
    agent.set_defaults(fn=cmd_agent)
    load.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("ADAPTEROPS_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = parser().parse_args(argv)
    code: int = args.fn(args)
    return code
