"""The images' tests: hack/build-images.sh builds them (cached: a second when nothing changed), umoci unpacks
them, and testworld.rootfs runs their entrypoints in their root filesystems as their user. Building a Debian
root filesystem and running as another user need root (mmdebstrap's root mode, chroot, mounts): CI runs as root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testworld import rootfs

pytestmark = pytest.mark.images

IMAGES = ("operator", "adapter-fetcher", "trainer-hf")


@pytest.fixture(scope="session")
def built() -> dict[str, rootfs.BuiltImage]:
    if os.geteuid() != 0:
        pytest.fail("the image tests need root (mmdebstrap --mode=root, chroot --userspec, mount namespaces)")
    return {r["name"]: rootfs.unpack(r) for r in rootfs.build(*IMAGES)}


@pytest.fixture
def shared_tmp(tmp_path: Path) -> Path:
    """tmp_path, enterable by the images' user (pytest makes it 0700 for root)."""
    tmp_path.chmod(0o755)
    return tmp_path
