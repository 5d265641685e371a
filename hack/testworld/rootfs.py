"""Running a built image's root filesystem the way a container runtime would, without one.

`built_image(name)` builds the image with hack/build-images.sh (a no-op when its inputs have not changed), then
unpacks it with umoci (an independent OCI implementation: it reads the layout, checks every blob's digest and
applies the layers in order) into the per-user cache, once per image digest. `RootfsRun` then runs a command
in it: in a private mount namespace, an overlay over the unpacked tree (the cache stays pristine), mounted
read-only (the chart's readOnlyRootFilesystem), with /dev, /proc and /sys from this machine, a fresh tmpfs at
/tmp (the pod's emptyDir), host folders bound where asked, and `chroot --userspec` to the image's user with the
image's environment (`env -i`). The network is this machine's (the local cluster listens on loopback).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("ADAPTEROPS_CACHE") or Path.home() / ".cache/adapterops") / "images"


@dataclass(frozen=True)
class BuiltImage:
    name: str
    digest: str
    layout: Path
    sbom: Path
    bundle: Path  # umoci's runtime bundle: rootfs/ and config.json (the OCI runtime spec umoci derived)
    build: dict[str, Any]  # hack/build-images.sh's JSON line

    @property
    def rootfs(self) -> Path:
        return self.bundle / "rootfs"

    @property
    def process(self) -> dict[str, Any]:
        """The runtime spec's process: user, env, args (entrypoint + cmd) and cwd, from the image config."""
        spec: dict[str, Any] = json.loads((self.bundle / "config.json").read_text())
        return dict(spec["process"])

    @property
    def env(self) -> dict[str, str]:
        return dict(e.split("=", 1) for e in self.process["env"])

    @property
    def home(self) -> str:
        uid = str(self.user[0])
        for line in (self.rootfs / "etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 5 and fields[2] == uid:
                return fields[5]
        return "/"

    @property
    def user(self) -> tuple[int, int]:
        u = self.process["user"]
        return int(u["uid"]), int(u["gid"])


def build(*names: str) -> list[dict[str, Any]]:
    """hack/build-images.sh for these images; its JSON lines."""
    out = subprocess.run(
        [str(REPO / "hack" / "build-images.sh"), *names], cwd=REPO, check=True, capture_output=True, text=True
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def unpack(result: dict[str, Any]) -> BuiltImage:
    digest = str(result["digest"])
    bundle = CACHE / "rootfs" / f"{result['name']}-{result['arch']}-{digest.split(':')[1][:16]}"
    if not (bundle / "config.json").exists():
        bundle.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=bundle.parent, prefix=".unpack-"))
        # `raw unpack` + `raw runtime-config`: what `umoci unpack` does minus its mtree of every file's hash
        # (a second read of the trainer's 5.5 GB, for `umoci repack`, which nothing here does).
        image = f"{result['layout']}:{result['ref']}"
        out = staging / "bundle"
        out.mkdir()
        for argv in (["raw", "unpack", "--image", image, str(out / "rootfs")],
                     ["raw", "runtime-config", "--image", image, "--rootfs", str(out / "rootfs"),
                      str(out / "config.json")]):  # fmt: skip
            subprocess.run(["umoci", "--log", "error", *argv], check=True, capture_output=True, text=True)
        with contextlib.suppress(OSError):  # another session unpacked the same digest first
            (staging / "bundle").rename(bundle)
        shutil.rmtree(staging, ignore_errors=True)
    os.utime(bundle)
    return BuiltImage(result["name"], digest, Path(result["layout"]), Path(result["sbom"]), bundle, result)


def built_image(name: str) -> BuiltImage:
    (result,) = build(name)
    return unpack(result)


@dataclass
class RootfsRun:
    """One process started in an image's root filesystem (see the module docstring)."""

    image: BuiltImage
    binds: tuple[Path, ...] = ()  # host folders, visible at the same path inside
    read_only: bool = True

    def command(self, argv: list[str], env: dict[str, str], workdir: str | None = None) -> list[str]:
        """The command line that runs argv (the image's entrypoint + cmd when empty) in the image: it execs
        through to the process itself (no fork), so its pid and signals are the process's."""
        scratch = Path(tempfile.mkdtemp(prefix="adapterops-rootfs-"))
        merged = scratch / "root"
        uid, gid = self.image.user
        # As container runtimes do: HOME from the image's passwd entry unless the image or the pod sets it.
        full_env = {"HOME": self.image.home, **self.image.env, **env}
        cwd = workdir or self.image.process.get("cwd") or "/"
        lines = [
            "set -e",
            # Everything the run writes (the overlay's upper layer, /tmp) is in memory and goes with the namespace.
            f"mount -t tmpfs tmpfs {scratch}",
            f"mkdir -p {scratch}/upper {scratch}/work {merged}",
            f"mount -t overlay overlay -o lowerdir={self.image.rootfs},upperdir={scratch}/upper,"
            f"workdir={scratch}/work {merged}",
        ]
        for special in ("dev", "proc", "sys"):
            lines.append(f"mount --rbind /{special} {merged}/{special}")
        lines.append(f"mount -t tmpfs -o mode=1777,size=2g tmpfs {merged}/tmp")
        for b in self.binds:  # after /tmp's tmpfs, which would hide a folder bound under /tmp
            q = shlex.quote(f"{merged}{b}")
            lines += [f"mkdir -p {q}", f"mount --rbind {shlex.quote(str(b))} {q}"]
        if self.read_only:
            lines.append(f"mount -o remount,ro {merged}")
        env_args = " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(full_env.items()))
        args = argv or list(self.image.process["args"])
        lines.append(
            f"cd {merged} && exec chroot --userspec={uid}:{gid} {merged} /usr/bin/env -i {env_args} "
            f"/bin/sh -c 'cd \"$0\" && exec \"$@\"' {shlex.quote(cwd)} {' '.join(map(shlex.quote, args))}"
        )
        return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", "\n".join(lines)]

    def run(
        self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 600, workdir: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(argv, env or {}, workdir), capture_output=True, text=True, timeout=timeout, check=False
        )


def operator_image() -> BuiltImage | None:
    """The operator image the cluster tests and the demo run (built when its inputs changed: about 2 minutes
    cold, a second when cached); None with ADAPTEROPS_TEST_OPERATOR=venv (run .venv's operator instead)."""
    if os.environ.get("ADAPTEROPS_TEST_OPERATOR", "image") == "venv":
        return None
    return built_image("operator")
