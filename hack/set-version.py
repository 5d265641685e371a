#!/usr/bin/env python3
"""One version everywhere: the three Python distributions, the chart (version and appVersion), the default
image tags (chart values, the kustomize base and the production overlay). The release workflow runs
`hack/set-version.py 1.2.3` with the version of the tag it builds, so nothing is bumped by hand; `--check`
exits 1 naming every place that disagrees (tests/unit/test_release_versions.py runs it).

    hack/set-version.py 1.2.3      rewrite every place to 1.2.3
    hack/set-version.py --check    print the version when all places agree
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Semantic versioning 2.0.0, as Helm requires of a chart's version (no leading v).
SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
V = r"(?P<v>[0-9A-Za-z.+-]+)"
IMAGES = r"ghcr\.io/adapterops/(?:operator|trainer-hf|trainer-nemo|adapter-fetcher):"
# file -> patterns whose group `v` is a version; each pattern must match at least once.
PLACES: dict[str, tuple[str, ...]] = {
    "operator/pyproject.toml": (rf'(?m)^version = "{V}"$', rf'"adapterops-common=={V}"'),
    "training-jobs/pyproject.toml": (rf'(?m)^version = "{V}"$', rf'"adapterops-common=={V}"'),
    "training-jobs/common/pyproject.toml": (rf'(?m)^version = "{V}"$',),
    "operator/adapterops/__init__.py": (rf'(?m)^__version__ = "{V}"$',),
    "training-jobs/adapterops_train/__init__.py": (rf'(?m)^__version__ = "{V}"$',),
    "training-jobs/common/adapterops_common/__init__.py": (rf'(?m)^__version__ = "{V}"$',),
    "charts/adapterops/Chart.yaml": (rf"(?m)^version: {V}$", rf'(?m)^appVersion: "{V}"$'),
    "charts/adapterops/values.yaml": (rf"(?m){IMAGES}{V}$",),
    # Generated from the chart (hack/generate.py base); rewritten in place so that the release needs no helm.
    "manifests/base/operator.yaml": (rf"(?m)app\.kubernetes\.io/version: {V}$", rf"(?m){IMAGES}{V}$"),
    "manifests/overlays/production/kustomization.yaml": (rf"(?m)^  newTag: {V}$",),
    "manifests/overlays/production/operator.yaml": (rf"(?m){IMAGES}{V}$",),
}


def found(root: Path = ROOT) -> dict[str, set[str]]:
    """Every version each place states."""
    out: dict[str, set[str]] = {}
    for rel, patterns in PLACES.items():
        text = (root / rel).read_text()
        for pattern in patterns:
            versions = {m["v"] for m in re.finditer(pattern, text, re.M)}
            if not versions:
                raise SystemExit(f"{rel}: no version where {pattern!r} expects one")
            out.setdefault(rel, set()).update(versions)
    return out


def check(root: Path = ROOT) -> str:
    places = found(root)
    versions = set().union(*places.values())
    if len(versions) != 1:
        lines = [f"  {rel}: {', '.join(sorted(vs))}" for rel, vs in sorted(places.items())]
        raise SystemExit("versions disagree:\n" + "\n".join(lines))
    (version,) = versions
    return version


def _with(m: re.Match[str], version: str) -> str:
    """The match with its `v` group replaced."""
    start, end = m.start("v") - m.start(), m.end("v") - m.start()
    return m[0][:start] + version + m[0][end:]


def set_version(version: str, root: Path = ROOT) -> None:
    if not SEMVER.fullmatch(version):
        raise SystemExit(f"version {version!r}: not a semantic version (MAJOR.MINOR.PATCH[-PRE][+BUILD], no 'v')")
    for rel, patterns in PLACES.items():
        path = root / rel
        text = path.read_text()
        for pattern in patterns:
            text = re.sub(pattern, lambda m: _with(m, version), text)
        path.write_text(text)
    check(root)


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        print(check())
        return 0
    if len(argv) != 1 or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    set_version(argv[0].removeprefix("refs/tags/").removeprefix("v"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
