"""Write every generated file of the repository, or check that the committed copies are current.

    python hack/generate.py                     write every target
    python hack/generate.py crds base           write these targets only
    python hack/generate.py --check [TARGET..]  exit 1 listing the stale files and the command that fixes them

Targets (generators in hack/generators/):
    crds                 CRDs from the pydantic API models (operator/adapterops/api), into the chart
                         (charts/adapterops/files/crds) and the kustomize base (manifests/base/crds)
    base                 the kustomize base (manifests/base) rendered from the chart by the pinned helm
    commerce-dataset     the shipped commerce-agent dataset (training-jobs/datasets/commerce)
    argocd-cm            Argo CD's argocd-cm entries from the Lua checks and actions (manifests/argocd)
    image-locks          each image's hash-pinned part of hack/requirements.lock (hack/requirements/*.lock)
    engines-doc          docs/engines.md from the engine facts the stand-in serves (hack/testworld/engines.py)
                         and the operator's queries and NIM profile table

`base` and `argocd-cm` run Go tools, built on first use by hack/build-tools.sh and
hack/build-argocd-lua.sh. Exit status: 0 current (or written), 1 stale, 2 a generator could not run.
Build-time only: nothing under operator/ imports this. Not here: the operator<->trainer contract's
JSON Schema, a versioned snapshot with its own rule (python -m adapterops_common.contract --write-schema).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from generators import Files, GenerateError

# The checkout this script belongs to; every generator gets the root passed, none looks for it.
ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python hack/generate.py"


@dataclass(frozen=True)
class Target:
    name: str
    render: Callable[[Path], Files]
    # Globs under the root this target owns entirely: a matching file it no longer renders is stale
    # (a renamed kind must not leave its old CRD in the chart, which installs files/crds/*.yaml).
    owns: tuple[str, ...] = ()


# The generators are imported when their target runs: `base` and `argocd-cm` need no pydantic models,
# and main() first puts this checkout's sources on the path.
def _crds(root: Path) -> Files:
    from generators import crds

    return crds.files(root)


def _base(root: Path) -> Files:
    from generators import base

    return base.files(root)


def _commerce_dataset(root: Path) -> Files:
    from generators import training

    return training.commerce_dataset(root)


def _argocd_cm(root: Path) -> Files:
    from generators import argocd

    return argocd.argocd_cm(root)


def _engines_doc(root: Path) -> Files:
    from generators import engines

    return engines.engines_doc(root)


def _image_locks(root: Path) -> Files:
    from generators import requirements

    return requirements.image_locks(root)


TARGETS: tuple[Target, ...] = (
    Target("crds", _crds, owns=("charts/adapterops/files/crds/*.yaml", "manifests/base/crds/*.yaml")),
    Target("base", _base),
    Target("commerce-dataset", _commerce_dataset),
    Target("argocd-cm", _argocd_cm),
    Target("image-locks", _image_locks, owns=("hack/requirements/*.lock",)),
    Target("engines-doc", _engines_doc),
)


@dataclass(frozen=True)
class Change:
    target: str
    path: str  # relative to the root
    text: str | None  # None: an orphan to remove


def changes(root: Path, targets: Sequence[Target]) -> list[Change]:
    """Every file whose committed bytes differ from what its target renders, plus orphans in owned globs."""
    out: list[Change] = []
    for target in targets:
        rendered = target.render(root)
        for path, text in sorted(rendered.items()):
            file = root / path
            # Bytes, not text: reading text would hide a CRLF or encoding difference.
            if not file.is_file() or file.read_bytes() != text.encode("utf-8"):
                out.append(Change(target.name, path, text))
        for pattern in target.owns:
            for file in sorted(root.glob(pattern)):
                path = file.relative_to(root).as_posix()
                if path not in rendered:
                    out.append(Change(target.name, path, None))
    return out


def write(root: Path, found: Sequence[Change]) -> None:
    for change in found:
        file = root / change.path
        if change.text is None:
            file.unlink()
            print(f"removed {change.path}")
        else:
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(change.text.encode("utf-8"))
            print(f"wrote {change.path}")


def _use_sources_of(root: Path) -> None:
    """Import the models from this checkout, whatever the virtualenv's editable install points at."""
    for source in (root / "training-jobs" / "common", root / "training-jobs", root / "operator"):
        if str(source) not in sys.path:
            sys.path.insert(0, str(source))


def main(argv: Sequence[str] | None = None, targets: Sequence[Target] = TARGETS) -> int:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("targets", nargs="*", metavar="TARGET", help="default: all")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a file is stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    by_name = {t.name: t for t in targets}
    unknown = [n for n in args.targets if n not in by_name]
    if unknown:
        parser.error(f"unknown target {', '.join(unknown)} (choose from {', '.join(by_name)})")
    chosen = [by_name[n] for n in args.targets] if args.targets else list(targets)
    root: Path = args.root.resolve()
    _use_sources_of(root)
    try:
        found = changes(root, chosen)
    except GenerateError as exc:
        print(f"generate: {exc}", file=sys.stderr)
        return 2
    if not args.check:
        write(root, found)
        return 0
    if found:
        stale_targets = list(dict.fromkeys(c.target for c in found))
        print("stale generated files:", file=sys.stderr)
        for change in found:
            note = " (no longer generated)" if change.text is None else ""
            print(f"  {change.path}{note}", file=sys.stderr)
        print(f"run `{COMMAND} {' '.join(stale_targets)}` and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
