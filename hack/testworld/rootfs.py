"""Running a built image's root filesystem the way a container runtime would, without one.

`built_image(name)` builds the image with hack/build-images.sh (a no-op when its inputs have not changed) and
unpacks its layers the way containerd's overlayfs snapshotter does: each layer, its digest checked against
the manifest, extracted by GNU tar into its own folder of the per-user cache, once per layer digest (a new
commit changes the small top layer only; the trainer's 5.5 GB of torch and CUDA is unpacked once per lock).
`RootfsRun` then runs a command in the image: in a private mount namespace, an overlay of the layers (the
cache stays pristine), mounted read-only (the chart's readOnlyRootFilesystem), with /dev, /proc and /sys from
this machine, a fresh tmpfs at /tmp (the pod's emptyDir), host folders bound where asked, and
`chroot --userspec` to the image's user with the image's environment (`env -i`). The network is this
machine's (the local cluster listens on loopback). `umoci_unpack` reads the same layout with umoci, an
independent OCI implementation (tests/images checks that they agree).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    layers: tuple[Path, ...]  # unpacked, lowest first
    config: dict[str, Any]  # the image config's `config`: User, Env, Entrypoint, Cmd, WorkingDir
    build: dict[str, Any]  # hack/build-images.sh's JSON line

    @property
    def process(self) -> dict[str, Any]:
        """What a runtime starts: args (entrypoint + cmd), env, cwd and user, from the image config."""
        return {
            "args": [*(self.config.get("Entrypoint") or []), *(self.config.get("Cmd") or [])],
            "env": list(self.config.get("Env") or []),
            "cwd": self.config.get("WorkingDir") or "/",
        }

    @property
    def env(self) -> dict[str, str]:
        return dict(e.split("=", 1) for e in self.process["env"])

    @property
    def user(self) -> tuple[int, int]:
        uid, _, gid = str(self.config["User"]).partition(":")
        return int(uid), int(gid or uid)

    def path(self, rel: str) -> Path:
        """rel as the image sees it: the topmost layer holding it (these layers delete nothing)."""
        for layer in reversed(self.layers):
            if (layer / rel).exists() or (layer / rel).is_symlink():
                return layer / rel
        raise FileNotFoundError(f"{self.name}: /{rel}")

    def glob(self, pattern: str) -> Iterator[Path]:
        """pattern in every layer: what the image's merged tree holds."""
        for layer in self.layers:
            yield from layer.glob(pattern)

    @property
    def home(self) -> str:
        uid = str(self.user[0])
        for line in self.path("etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 5 and fields[2] == uid:
                return fields[5]
        return "/"


def build(*names: str) -> list[dict[str, Any]]:
    """hack/build-images.sh for these images; its JSON lines."""
    out = subprocess.run(
        [str(REPO / "hack" / "build-images.sh"), *names], cwd=REPO, check=True, capture_output=True, text=True
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":", 1)[1]


def _unpack_layer(layout: Path, descriptor: dict[str, Any]) -> Path:
    digest = descriptor["digest"]
    dest = CACHE / "layers" / digest.split(":", 1)[1][:24]
    if not dest.is_dir():
        blob = _blob(layout, digest)
        h = hashlib.sha256()
        with blob.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        if f"sha256:{h.hexdigest()}" != digest or blob.stat().st_size != descriptor["size"]:
            raise RuntimeError(f"{blob}: content does not match the manifest's {digest}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".unpack-"))
        subprocess.run(["tar", "--use-compress-program=pigz", "--numeric-owner", "--same-permissions",
                        "-xf", str(blob), "-C", str(staging)], check=True)  # fmt: skip
        with contextlib.suppress(OSError):  # another session unpacked the same layer first
            staging.rename(dest)
        shutil.rmtree(staging, ignore_errors=True)
    os.utime(dest)
    return dest


def unpack(result: dict[str, Any]) -> BuiltImage:
    layout = Path(result["layout"])
    index = json.loads((layout / "index.json").read_text())
    (entry,) = index["manifests"]
    manifest = json.loads(_blob(layout, entry["digest"]).read_text())
    config = json.loads(_blob(layout, manifest["config"]["digest"]).read_text())
    layers = tuple(_unpack_layer(layout, d) for d in manifest["layers"])
    return BuiltImage(result["name"], entry["digest"], layout, Path(result["sbom"]), layers, config["config"], result)


def umoci_unpack(image: BuiltImage, dest: Path) -> Path:
    """The image's root filesystem as umoci unpacks it (it checks every blob and applies the layers)."""
    ref = f"{image.layout}:{image.build['ref']}"
    subprocess.run(["umoci", "--log", "error", "raw", "unpack", "--image", ref, str(dest)], check=True,
                   capture_output=True, text=True)  # fmt: skip
    return dest


def built_image(name: str) -> BuiltImage:
    (result,) = build(name)
    return unpack(result)


@dataclass
class RootfsRun:
    """One process started in an image's root filesystem (see the module docstring)."""

    image: BuiltImage
    binds: tuple[Path, ...] = ()  # host folders, visible at the same path inside
    read_only: bool = True
    _scratch: list[Path] = field(default_factory=list)

    def cleanup(self) -> None:
        """Remove the scratch folders (empty on this machine: the tmpfs that held the run's files was mounted over
        them in the run's own mount namespace)."""
        for scratch in self._scratch:
            with contextlib.suppress(OSError):
                scratch.rmdir()
        self._scratch.clear()

    def command(self, argv: list[str], env: dict[str, str], workdir: str | None = None) -> list[str]:
        """The command line that runs argv (the image's entrypoint + cmd when empty) in the image: it execs
        through to the process itself (no fork), so its pid and signals are the process's."""
        scratch = Path(tempfile.mkdtemp(prefix="adapterops-rootfs-"))
        self._scratch.append(scratch)
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
            # lowerdir: the topmost layer first.
            f"mount -t overlay overlay -o lowerdir={':'.join(map(str, reversed(self.image.layers)))},"
            f"upperdir={scratch}/upper,workdir={scratch}/work {merged}",
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
        try:
            return subprocess.run(
                self.command(argv, env or {}, workdir), capture_output=True, text=True, timeout=timeout, check=False
            )
        finally:
            self.cleanup()


def operator_image() -> BuiltImage | None:
    """The operator image the cluster tests and the demo run (built when its inputs changed: about 2 minutes
    cold, a second when cached); None with ADAPTEROPS_TEST_OPERATOR=venv (run .venv's operator instead)."""
    if os.environ.get("ADAPTEROPS_TEST_OPERATOR", "image") == "venv":
        return None
    return built_image("operator")
