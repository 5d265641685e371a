"""The generators behind `python hack/generate.py`: each turns sources of the repository into files.

Every generator is a function `(root) -> Files` that renders and never writes: the driver
(hack/generate.py) compares or writes. Build-time only; nothing under operator/ imports this package.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import ModuleType

# Path relative to the repository root (POSIX separators) -> the file's full text.
Files = dict[str, str]


class GenerateError(Exception):
    """A generator could not run (a tool failed, sources from another checkout); no file was judged."""


def require_sources_in(root: Path, module: ModuleType) -> None:
    """Refuse to generate from another checkout's code.

    A shared virtualenv's editable install points at one checkout; generating a worktree's CRDs from
    it would silently write the other tree's API.
    """
    path = Path(module.__file__ or "").resolve()
    if not path.is_relative_to(root.resolve()):
        raise GenerateError(
            f"{module.__name__} is imported from {path.parent}, not from {root}: "
            f"put {root / 'operator'} and {root / 'training-jobs'} first on PYTHONPATH"
        )


def build_tool(root: Path, script: str) -> Path:
    """Run one of hack/'s build scripts and return the path it prints last.

    The scripts cache by the pinned sources and build nothing when current, so calling them every time
    is cheap and never uses a stale binary (a link left from an older harness, say).
    """
    proc = subprocess.run(
        [str(root / "hack" / script)], cwd=root, stdout=subprocess.PIPE, text=True, check=False, timeout=3600
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise GenerateError(f"hack/{script} failed (exit {proc.returncode}); its output is above")
    return Path(lines[-1])


def run_tool(args: list[str | Path], what: str) -> str:
    """A tool's stdout; its failure is a GenerateError carrying the tool's stderr."""
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False, timeout=600)
    if proc.returncode != 0:
        raise GenerateError(f"{what} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout
