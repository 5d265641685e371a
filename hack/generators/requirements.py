"""Per-image requirement files: the part of hack/requirements.lock that each image installs, and nothing else.

`pip install --require-hashes` needs every package it installs pinned and hashed in the file it reads, so
each image gets its own file (hack/requirements/<image>.lock): the entries of hack/requirements.lock
(same version, same hashes, copied) for exactly the dependency closure of what the image holds. The
closure is computed from the dependency metadata of the packages installed in this checkout's .venv
(hack/setup.sh syncs it to the lock; a version that differs from the lock is an error), evaluated for
the images' platform: CPython 3.11 on linux/x86_64. The project's own three distributions are never in a
lock: their dependencies are read from their pyproject.toml and the images build them from source.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from generators import Files, GenerateError

LOCK = "hack/requirements.lock"
OUT_DIR = "hack/requirements"
COMMAND = "python hack/generate.py image-locks"

# The three distributions of this repository, by the folder that holds their pyproject.toml.
LOCAL = {
    "adapterops-common": "training-jobs/common",
    "adapterops-train": "training-jobs",
    "adapterops": "operator",
}

# The platform every python:3.11-slim image runs on; markers are evaluated for it (not for this machine).
ENVIRONMENT: dict[str, str] = {
    "implementation_name": "cpython",
    "implementation_version": "3.11.15",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_system": "Linux",
    "platform_version": "",
    "python_full_version": "3.11.15",
    "python_version": "3.11",
    "sys_platform": "linux",
}

# setuptools >= 70.1 builds wheels itself; the `wheel` the pyproject files still name is not needed with
# --no-build-isolation, and is not in the lock.
BUILD_REQUIREMENTS_NOT_NEEDED = frozenset({"wheel"})


@dataclass(frozen=True)
class ImageLock:
    name: str  # hack/requirements/<name>.lock
    dockerfile: str
    what: str  # one line for the header
    roots: tuple[str, ...]  # requirements (PEP 508) whose closure the image installs
    # Only the roots themselves, their own dependencies left to the base image (the NeMo container).
    no_deps: bool = False


IMAGES: tuple[ImageLock, ...] = (
    ImageLock(
        "operator",
        "operator/Dockerfile",
        "the operator image's packages: the dependencies of adapterops and adapterops-common (no trainer, no torch)",
        ("adapterops",),
    ),
    ImageLock(
        "fetcher",
        "training-jobs/Dockerfile.fetcher",
        "the adapter-fetcher image's packages: the dependencies of adapterops-common only",
        ("adapterops-common",),
    ),
    ImageLock(
        "trainer-hf",
        "training-jobs/Dockerfile.hf",
        "the hf trainer image's packages: the dependencies of adapterops-train[hf] and adapterops-common (no operator)",
        ("adapterops-train[hf]",),
    ),
    ImageLock(
        "build",
        "operator/Dockerfile, training-jobs/Dockerfile.*",
        "the build stages' setuptools, which builds the three distributions' wheels (pip wheel --no-build-isolation)",
        ("setuptools",),
        no_deps=True,
    ),
)


@dataclass
class Pin:
    name: NormalizedName
    version: str
    hashes: list[str] = field(default_factory=list)


_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;[^\\]*)?\\?\s*$")
_HASH = re.compile(r"^\s+--hash=(?P<hash>sha256:[0-9a-f]{64})\s*\\?\s*$")


def parse_lock(text: str, source: str = LOCK) -> dict[NormalizedName, Pin]:
    """name -> pin of a `uv pip compile` output; an entry that is not `name==version` is an error."""
    pins: dict[NormalizedName, Pin] = {}
    current: Pin | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if match := _HASH.match(line):
            if current is None:
                raise GenerateError(f"{source}:{number}: a hash outside of an entry")
            current.hashes.append(match["hash"])
            continue
        match = _PIN.match(line)
        if match is None:
            raise GenerateError(f"{source}:{number}: {line.strip()!r} is not a `name==version` pin")
        current = Pin(canonicalize_name(match["name"]), match["version"])
        pins[current.name] = current
    return pins


def _local_requirements(root: Path) -> dict[NormalizedName, tuple[list[Requirement], dict[str, list[Requirement]]]]:
    out: dict[NormalizedName, tuple[list[Requirement], dict[str, list[Requirement]]]] = {}
    for name, folder in LOCAL.items():
        project = tomllib.loads((root / folder / "pyproject.toml").read_text())["project"]
        extras = {e: [Requirement(r) for r in reqs] for e, reqs in project.get("optional-dependencies", {}).items()}
        out[canonicalize_name(name)] = ([Requirement(r) for r in project.get("dependencies", [])], extras)
    return out


def _installed_requirements(name: NormalizedName, pin: Pin) -> list[Requirement]:
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise GenerateError(f"{name} (pinned {pin.version} in {LOCK}) is not installed: run hack/setup.sh") from None
    if Version(dist.version) != Version(pin.version):
        raise GenerateError(f"{name} {dist.version} is installed but {LOCK} pins {pin.version}: run hack/setup.sh")
    return [Requirement(r) for r in dist.requires or []]


def _applies(req: Requirement, extras: Iterable[str]) -> bool:
    if req.marker is None:
        return True
    marker: Marker = req.marker
    return any(marker.evaluate({**ENVIRONMENT, "extra": extra}) for extra in ("", *extras))


def closure(
    roots: Iterable[str],
    pins: Mapping[NormalizedName, Pin],
    local: Mapping[NormalizedName, tuple[list[Requirement], dict[str, list[Requirement]]]],
    requirements_of: Callable[[NormalizedName, Pin], list[Requirement]] = _installed_requirements,
) -> dict[NormalizedName, set[str]]:
    """Every locked package the roots need (with their extras), mapped to who needs it ("via")."""
    needed: dict[NormalizedName, set[str]] = {}
    seen: set[tuple[NormalizedName, frozenset[str]]] = set()
    todo: list[tuple[Requirement, str | None]] = [(Requirement(r), None) for r in roots]
    while todo:
        req, parent = todo.pop()
        name = canonicalize_name(req.name)
        extras = frozenset(canonicalize_name(e) for e in req.extras)
        if name in local:
            base, optional = local[name]
            reqs = base + [r for e in sorted(extras) for r in optional.get(e, [])]
        else:
            pin = pins.get(name)
            if pin is None:
                raise GenerateError(f"{name} (needed by {parent or 'the image'}) is not in {LOCK}")
            if req.specifier and not req.specifier.contains(Version(pin.version), prereleases=True):
                raise GenerateError(
                    f"{parent or 'the image'} requires {req}, but {LOCK} pins {name}=={pin.version}: "
                    f"regenerate the lock (the command in its header)"
                )
            needed.setdefault(name, set())
            if parent is not None:
                needed[name].add(parent)
            reqs = requirements_of(name, pin)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        todo.extend((r, name) for r in reqs if _applies(r, extras))
    return needed


def render(image: ImageLock, pins: Mapping[NormalizedName, Pin], needed: Mapping[NormalizedName, set[str]]) -> str:
    lines = [
        f"# {OUT_DIR}/{image.name}.lock: {image.what}.",
        f"# Installed by {image.dockerfile} with `pip install --require-hashes -r`.",
        f"# The same versions and hashes as {LOCK}; generated by `{COMMAND}`: do not edit.",
    ]
    for name in sorted(needed):
        pin = pins[name]
        if not pin.hashes:
            raise GenerateError(f"{name}=={pin.version} has no hashes in {LOCK}: compile it with --generate-hashes")
        lines.append(f"{name}=={pin.version} \\")
        lines.extend(f"    --hash={h}" + (" \\" if i < len(pin.hashes) - 1 else "") for i, h in enumerate(pin.hashes))
        via = sorted(needed[name])
        if via:
            lines.append(f"    # via {', '.join(via)}")
    return "\n".join(lines) + "\n"


def _no_deps(name: NormalizedName, pin: Pin) -> list[Requirement]:
    return []


def _check_build_requirements(root: Path, pins: Mapping[NormalizedName, Pin], build: ImageLock) -> None:
    """The locked build tools satisfy what each distribution's [build-system] asks for."""
    provided = {canonicalize_name(Requirement(r).name) for r in build.roots}
    for folder in LOCAL.values():
        for text in tomllib.loads((root / folder / "pyproject.toml").read_text())["build-system"]["requires"]:
            req = Requirement(text)
            req_name = canonicalize_name(req.name)
            if req_name in BUILD_REQUIREMENTS_NOT_NEEDED:
                continue
            pin = pins.get(req_name)
            if req_name not in provided or pin is None or not req.specifier.contains(pin.version, prereleases=True):
                raise GenerateError(
                    f"{folder}/pyproject.toml [build-system] requires {req}, which the build lock "
                    f"({', '.join(build.roots)} from {LOCK}) does not provide"
                )


def image_locks(root: Path) -> Files:
    pins = parse_lock((root / LOCK).read_text())
    local = _local_requirements(root)
    out: Files = {}
    for image in IMAGES:
        if image.name == "build":
            _check_build_requirements(root, pins, image)
        needed = closure(image.roots, pins, local, _no_deps if image.no_deps else _installed_requirements)
        out[f"{OUT_DIR}/{image.name}.lock"] = render(image, pins, needed)
    return out
