"""The cluster tests' operator is the operator image (hack/build-images.sh), run from its root filesystem as
its user, read-only, with only the pod's environment: a dependency the image forgot fails every cluster test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testworld.cluster import OperatorProcess

pytestmark = pytest.mark.cluster


def test_the_operator_runs_from_its_image_as_its_user(operator: OperatorProcess) -> None:
    if os.environ.get("ADAPTEROPS_TEST_OPERATOR") == "venv":
        pytest.skip("ADAPTEROPS_TEST_OPERATOR=venv: the repository's .venv runs the operator")
    assert operator.image is not None and operator.proc is not None
    proc = Path(f"/proc/{operator.proc.pid}")
    status = dict(line.split(":\t", 1) for line in (proc / "status").read_text().splitlines() if ":\t" in line)
    assert status["Uid"].split() == ["65532"] * 4 and status["Gid"].split() == ["65532"] * 4
    assert (proc / "cmdline").read_bytes().split(b"\0")[:3] == [b"python", b"-m", b"adapterops"]
    # Its root is the image's (an overlay over the unpacked layers), read-only.
    mounts = (proc / "mounts").read_text().splitlines()
    root = next(m.split() for m in mounts if m.split()[1] == "/")
    assert root[2] == "overlay" and "ro" in root[3].split(",")
    assert all(str(layer) in root[3] for layer in operator.image.layers)
    assert not (proc / "root" / "usr/local/lib/python3.11/dist-packages/torch").exists()
    assert operator.healthy()
