"""The images' tests: hack/build-images.sh builds them (cached: a second when nothing changed), umoci unpacks
them, and testworld.rootfs runs their entrypoints in their root filesystems as their user. Building a Debian
root filesystem and running as another user need root (mmdebstrap's root mode, chroot, mounts): CI runs as root."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from testworld import rootfs

IMAGES = ("operator", "adapter-fetcher", "trainer-hf")


@pytest.fixture(scope="session")
def build_meta() -> Iterator[dict[str, str]]:
    """The revision and time every build of the session stamps, fixed at its start: a commit made while the
    tests run must not make two builds of the same inputs differ."""
    git = ["git", "-C", str(rootfs.REPO), "log", "-1", "--format=%H %ct"]
    revision, epoch = subprocess.run(git, check=True, capture_output=True, text=True).stdout.split()
    meta = {"ADAPTEROPS_REVISION": revision, "SOURCE_DATE_EPOCH": epoch}
    saved = {k: os.environ.get(k) for k in meta}
    os.environ.update(meta)
    yield meta
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def built(build_meta: dict[str, str]) -> dict[str, rootfs.BuiltImage]:
    if os.geteuid() != 0:
        pytest.fail("the image tests need root (mmdebstrap --mode=root, chroot --userspec, mount namespaces)")
    return {r["name"]: rootfs.unpack(r) for r in rootfs.build(*IMAGES)}


@pytest.fixture
def shared_tmp(tmp_path: Path) -> Path:
    """tmp_path, enterable by the images' user (pytest makes it 0700 for root)."""
    tmp_path.chmod(0o755)
    return tmp_path
