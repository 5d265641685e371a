"""`kubectl adapterops`: the argument parser, the commands and `main` (the `kubectl-adapterops` script).

    kubectl adapterops sweep NAME [-n NS]                 leaderboard of a sweep, sorted by its objective
    kubectl adapterops canary NAME [-n NS]                steps, revisions, per-metric verdicts, history, cost
    kubectl adapterops promote|abort NAME [--wait SECONDS]   act on the running canary
    kubectl adapterops suspend|pause NAME [--kind KIND]   FineTuneJob: spec.suspend; ModelDeployment: spec.canary.paused
    kubectl adapterops resume NAME [--kind KIND]          the reverse
    kubectl adapterops profile NAME [-n NS]               a ServingProfile's table, the chosen configuration
    kubectl adapterops report NAME -o report.html [--pvc-root DIR] [--png] [--profile PROFILE] [--deployment MDEP]

The connection flags (`--kubeconfig`, `--context`, `-n/--namespace`) work as in kubectl. `promote` and
`abort` act the way the Argo CD resource actions do: they set the annotation `adapterops.io/promote` (or
`/abort`) to the canary's revision, which the operator applies to that revision only. Errors say what is
wrong and exit 1 (usage errors exit 2).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from adapterops.api.kinds import FINETUNEJOB, MODELDEPLOYMENT, OURS, SERVINGPROFILE, Kind
from adapterops.cli.charts import require_matplotlib
from adapterops.cli.client import Api, connect
from adapterops.cli.errors import CliError
from adapterops.cli.format import condition, format_canary, format_sweep
from adapterops.cli.profile import format_profile
from adapterops.cli.report import render_report, write_report_png
from adapterops.cli.trial_metrics import pvc_root, read_trial_metrics

POLL_SECONDS = 1.0
# What --kind accepts: each kind's name, plural and short names, in any case.
KIND_NAMES = {name.lower(): k for k in OURS for name in (k.kind, k.plural, *k.short_names)}


def resource_name(kind: Kind, name: str) -> str:
    """kubectl's `modeldeployment.adapterops.io/agent`."""
    return f"{kind.singular}.{kind.group}/{name}"


def require(api: Api, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
    """The object; a CliError naming it (and how to list its kind) when it does not exist."""
    obj = api.get(kind, namespace, name)
    if obj is None:
        raise CliError(
            f'{kind.kind} "{name}" not found in namespace "{namespace}" '
            f"(kubectl get {kind.short_names[0]} -n {namespace})"
        )
    return obj


def find_kind(api: Api, namespace: str, name: str, kind: Kind | None) -> tuple[Kind, dict[str, Any]]:
    """The FineTuneJob or ModelDeployment called `name` (`kind` picks when given)."""
    if kind:
        return kind, require(api, kind, namespace, name)
    found = [(k, o) for k in OURS if (o := api.get(k, namespace, name)) is not None]
    if not found:
        raise CliError(f'no FineTuneJob or ModelDeployment named "{name}" in namespace "{namespace}"')
    if len(found) > 1:
        raise CliError(f'both a FineTuneJob and a ModelDeployment are named "{name}" in "{namespace}": pass --kind')
    return found[0]


def cmd_sweep(api: Api, ns: str, args: argparse.Namespace, out: TextIO) -> int:
    """A FineTuneJob's leaderboard."""
    out.write(format_sweep(require(api, FINETUNEJOB, ns, args.name)))
    return 0


def cmd_canary(api: Api, ns: str, args: argparse.Namespace, out: TextIO) -> int:
    """A ModelDeployment's rollout."""
    out.write(format_canary(require(api, MODELDEPLOYMENT, ns, args.name)))
    return 0


def cmd_action(api: Api, ns: str, args: argparse.Namespace, out: TextIO) -> int:
    """promote / abort: annotate the ModelDeployment with the running canary's revision."""
    action: str = args.command
    obj = require(api, MODELDEPLOYMENT, ns, args.name)
    status = obj.get("status") or {}
    canary = status.get("canary") or {}
    revision = canary.get("revision")
    if not revision:
        stable = (status.get("stable") or {}).get("revision")
        serving = f"revision {stable} serves all traffic" if stable else "nothing is served yet"
        raise CliError(f"ModelDeployment {ns}/{args.name} has no canary in progress ({serving}): nothing to {action}")
    annotation = f"{MODELDEPLOYMENT.group}/{action}"
    api.patch(MODELDEPLOYMENT, ns, args.name, {"metadata": {"annotations": {annotation: revision}}})
    out.write(
        f"{resource_name(MODELDEPLOYMENT, args.name)} annotated {annotation}={revision}: the operator will "
        f"{'promote' if action == 'promote' else 'roll back'} canary revision {revision}\n"
    )
    if canary.get("readyReplicas", 0) < canary.get("replicas", 0):
        out.write("note: the canary is not ready yet; the operator acts once it is\n")
    if args.wait:
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            current = require(api, MODELDEPLOYMENT, ns, args.name).get("status") or {}
            if (current.get("canary") or {}).get("revision") != revision:
                entry = next((h for h in current.get("history") or [] if h.get("revision") == revision), None)
                if entry is None:
                    out.write(f"canary {revision} is gone\n")
                    return 0
                out.write(f"revision {revision}: {entry.get('outcome')}: {entry.get('reason', '')}\n")
                wanted = "Promoted" if action == "promote" else "RolledBack"
                return 0 if entry.get("outcome") == wanted else 1
            time.sleep(POLL_SECONDS)
        raise CliError(
            f"timed out after {args.wait:g}s waiting for the operator to {action} {revision} (is it running?)"
        )
    return 0


def cmd_toggle(api: Api, ns: str, args: argparse.Namespace, out: TextIO) -> int:
    """suspend|pause / resume: FineTuneJob spec.suspend, ModelDeployment spec.canary.paused."""
    hold = args.command in ("suspend", "pause")
    kind, obj = find_kind(api, ns, args.name, args.kind)
    spec = obj.get("spec") or {}
    if kind == FINETUNEJOB:
        field_name, current = "spec.suspend", bool(spec.get("suspend", False))
        body: dict[str, Any] = {"spec": {"suspend": hold}}
    else:
        field_name, current = "spec.canary.paused", bool((spec.get("canary") or {}).get("paused", False))
        body = {"spec": {"canary": {"paused": hold}}}
    resource = resource_name(kind, args.name)
    if current == hold:
        out.write(f"{resource} unchanged ({field_name} is already {str(hold).lower()})\n")
    else:
        api.patch(kind, ns, args.name, body)
        out.write(f"{resource} patched ({field_name}={str(hold).lower()})\n")
    if kind == MODELDEPLOYMENT and not hold:
        held = condition(obj, "Suspended")
        if held is not None and held.status == "True" and held.reason == "AnalysisInconclusive":
            out.write(
                "note: the canary is holding because its analysis is inconclusive, not because it is paused: "
                "restore the metrics' data source, or decide with `kubectl adapterops promote|abort`\n"
            )
    if kind == FINETUNEJOB and hold:
        out.write("running trials finish; no new trial starts until `kubectl adapterops resume`\n")
    return 0


def cmd_report(api: Api, ns: str, args: argparse.Namespace, out: TextIO) -> int:
    """The HTML report (and PNG) of a sweep, from its status and each trial's metrics.json."""
    require_matplotlib()  # before anything is read or written
    obj = require(api, FINETUNEJOB, ns, args.name)
    profile = require(api, SERVINGPROFILE, ns, args.profile) if args.profile else None
    deployment = require(api, MODELDEPLOYMENT, ns, args.deployment) if args.deployment else None
    trials = (obj.get("status") or {}).get("trials") or []
    with pvc_root(args.pvc_root):
        metrics = read_trial_metrics(trials)
    for name, m in metrics.items():
        if m.problem:
            sys.stderr.write(f"warning: trial {name}: {m.problem}\n")
    target = Path(args.output)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_report(obj, metrics, profile=profile, deployment=deployment), encoding="utf-8")
    curves = sum(1 for m in metrics.values() if m.curve)
    out.write(f"wrote {target} ({len(trials)} trials, {curves} loss curves)\n")
    if args.png:
        png = target.with_suffix(".png")
        write_report_png(obj, metrics, png)
        out.write(f"wrote {png}\n")
    return 0


def cmd_profile(api: Api, ns: str, args: argparse.Namespace, out: TextIO) -> int:
    out.write(format_profile(require(api, SERVINGPROFILE, ns, args.name)))
    return 0


COMMANDS: dict[str, Callable[[Api, str, argparse.Namespace, TextIO], int]] = {
    "sweep": cmd_sweep,
    "canary": cmd_canary,
    "promote": cmd_action,
    "abort": cmd_action,
    "suspend": cmd_toggle,
    "pause": cmd_toggle,
    "resume": cmd_toggle,
    "report": cmd_report,
    "profile": cmd_profile,
}


def _kind(value: str) -> Kind:
    kind = KIND_NAMES.get(value.lower())
    if kind is None:
        expected = " or ".join(f"{k.kind} ({k.short_names[0]})" for k in OURS)
        raise argparse.ArgumentTypeError(f"{value!r}: expected {expected}")
    return kind


def parser() -> argparse.ArgumentParser:
    # Connection flags go before or after the subcommand, as with kubectl (`kubectl adapterops -n ns sweep x`
    # and `kubectl adapterops sweep x -n ns`): SUPPRESS keeps a subcommand's unset flag from hiding the other.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", default=argparse.SUPPRESS, help="namespace (default: the context's)")
    common.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context (default: current)")
    common.add_argument("--kubeconfig", default=argparse.SUPPRESS, help="kubeconfig file (default: $KUBECONFIG)")
    p = argparse.ArgumentParser(
        prog="kubectl adapterops",
        description="Inspect and steer AdapterOps FineTuneJobs (sweeps) and ModelDeployments (canaries).",
        parents=[common],
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_, parents=[common])
        sp.add_argument("name", metavar="NAME")
        return sp

    add("sweep", "print a FineTuneJob's leaderboard, best trial first, the champion marked")
    add("canary", "print a ModelDeployment's canary: steps, revisions, per-metric verdicts, history")
    add("profile", "print a ServingProfile's table: each candidate's figures, the chosen one, why the others lost")
    for action, text in (("promote", "promote the running canary now"), ("abort", "roll the running canary back now")):
        sp = add(action, f"{text} (sets adapterops.io/{action} to its revision)")
        sp.add_argument("--wait", type=float, default=0, metavar="SECONDS", help="wait for the operator to act")
    for name, text in (
        (
            "suspend",
            "FineTuneJob: start no new trials (spec.suspend); ModelDeployment: hold canaries (spec.canary.paused)",
        ),
        ("pause", "same as suspend"),
        ("resume", "undo suspend/pause"),
    ):
        sp = add(name, text)
        sp.add_argument(
            "--kind", type=_kind, help="FineTuneJob (ftj) or ModelDeployment (mdep); default: whichever exists"
        )
    sp = add(
        "report",
        "write a self-contained HTML report of a sweep (loss curves, judge scores, champion); "
        "needs matplotlib: pip install 'adapterops[cli]'",
    )
    sp.add_argument("-o", "--output", required=True, metavar="FILE", help="HTML file to write")
    sp.add_argument("--pvc-root", metavar="DIR", help="local directory holding pvc://CLAIM/... as DIR/CLAIM/...")
    sp.add_argument("--png", action="store_true", help="also write the charts to FILE.png")
    sp.add_argument("--profile", metavar="PROFILE", help="add this ServingProfile's table and chosen configuration")
    sp.add_argument(
        "--deployment", metavar="MDEP", help="add this ModelDeployment's cost per million tokens, stable vs canary"
    )
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run one command; the exit status (1: a CliError printed as `error: ...`)."""
    out = out or sys.stdout
    args = parser().parse_args(argv)
    try:
        api, default_ns = connect(getattr(args, "kubeconfig", None), getattr(args, "context", None))
        namespace = getattr(args, "namespace", None) or default_ns
        return COMMANDS[args.command](api, namespace, args, out)
    except CliError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
