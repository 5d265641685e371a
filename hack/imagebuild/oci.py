"""Reproducible OCI layers and image layouts, written with the standard library (no daemon, no builder).

A layer is a tar of a directory with every varying attribute fixed: entries in byte order of their names,
mtimes set to one epoch, numeric owners (0:0 unless the layer keeps the tree's owners, as the Debian base
does for its setgid files), no user/group names, modes normalised, then gzip'd by pigz with no name and no
timestamp. The same tree and the same tool versions give the same bytes, hence the same digest.

The layout follows the OCI image spec (image-layout.md, manifest.md, config.md): `oci-layout`,
`index.json`, `blobs/sha256/<digest>`; the archive is that folder as a tar, written the same way.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
# Paths a runtime provides (the kubelet and runc mount /proc, /sys and /dev): their folders are kept, their
# contents (device nodes mmdebstrap made) are not.
RUNTIME_MOUNTS = ("dev", "proc", "sys")


@dataclass(frozen=True)
class Blob:
    digest: str  # sha256:<hex> of the stored bytes
    size: int
    diff_id: str = ""  # sha256 of the uncompressed tar (layers only)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _ordered(root: Path) -> list[Path]:
    """Depth-first, byte order at each level: every directory right before its contents."""
    out: list[Path] = []

    def visit(d: Path) -> None:
        for e in sorted(os.scandir(d), key=lambda e: e.name.encode()):
            p = Path(e.path)
            if e.is_dir(follow_symlinks=False):
                out.append(p)
                rel = p.relative_to(root).as_posix()
                if rel not in RUNTIME_MOUNTS:
                    visit(p)
            else:
                out.append(p)

    visit(root)
    return out


def write_tar(root: Path, out: IO[bytes], *, epoch: int, keep_owners: bool, parents: Sequence[str] = ()) -> None:
    """root's tree as a reproducible tar on out. parents: folders written first (root-owned 0755) so that
    an upper layer's files land in folders every extractor creates the same way."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name in parents:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, epoch
            tar.addfile(info)
        for path in _ordered(root):
            rel = path.relative_to(root).as_posix()
            info = tar.gettarinfo(str(path), arcname=rel)
            info.mtime = epoch
            info.uname = info.gname = ""
            if not keep_owners:
                info.uid = info.gid = 0
                if info.isdir():
                    info.mode = 0o755
                elif info.isreg():
                    info.mode = 0o755 if info.mode & 0o111 else 0o644
            info.pax_headers = {}
            if info.isreg():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            elif info.ischr() or info.isblk() or info.isfifo() or stat.S_ISSOCK(path.lstat().st_mode):
                continue  # device nodes and sockets: the runtime provides /dev
            else:
                tar.addfile(info)


class _Tee(io.RawIOBase):
    """Writes to a pipe while hashing what passes: the uncompressed tar's digest is the layer's diff_id."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink, self.hash, self.size = sink, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.hash.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)


def write_layer(root: Path, dest: Path, *, epoch: int, keep_owners: bool = False, parents: Sequence[str] = ()) -> Blob:
    """root as a gzip'd layer at dest. pigz -n: no file name or time in the gzip header; its output is the
    same for any number of threads (each block is compressed alone, with the previous 32 KiB as dictionary)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")  # builders sharing the cache never collide
    with tmp.open("wb") as sink:
        proc = subprocess.Popen(["pigz", "-n", "-6", "-c"], stdin=subprocess.PIPE, stdout=sink)
        assert proc.stdin is not None
        tee = _Tee(proc.stdin)
        write_tar(root, tee, epoch=epoch, keep_owners=keep_owners, parents=parents)  # type: ignore[arg-type]
        proc.stdin.close()
        if proc.wait() != 0:
            raise RuntimeError(f"pigz failed writing {dest}")
    tmp.rename(dest)
    return Blob(sha256_file(dest), dest.stat().st_size, "sha256:" + tee.hash.hexdigest())


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ImageConfig:
    architecture: str  # GOARCH: amd64, arm64
    user: str
    entrypoint: Sequence[str]
    cmd: Sequence[str] = ()
    env: Sequence[str] = ()
    workdir: str = "/"
    labels: Mapping[str, str] = field(default_factory=dict)
    created: int = 0

    def document(self, diff_ids: Sequence[str], history: Sequence[str]) -> dict[str, Any]:
        created = rfc3339(self.created)
        config: dict[str, Any] = {"User": self.user, "Env": list(self.env), "Entrypoint": list(self.entrypoint)}
        if self.cmd:
            config["Cmd"] = list(self.cmd)
        config["WorkingDir"] = self.workdir
        config["Labels"] = dict(self.labels)
        return {
            "created": created,
            "architecture": self.architecture,
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
            "history": [{"created": created, "created_by": h} for h in history],
        }


def _put_blob(layout: Path, data: bytes) -> Blob:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return Blob(digest, len(data))


def write_image(
    layout: Path,
    layers: Sequence[tuple[Path, Blob, str]],
    config: ImageConfig,
    annotations: Mapping[str, str],
    ref_name: str,
) -> Blob:
    """An OCI image layout at `layout` (created empty) holding one image: the layers (file, blob, what
    made it), its config, its manifest, and index.json naming the manifest `ref_name`. Returns the
    manifest's descriptor: its digest is the image's digest."""
    if layout.exists():
        shutil.rmtree(layout)
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    for path, blob, _ in layers:
        target = layout / "blobs" / "sha256" / blob.digest.split(":", 1)[1]
        if not target.exists():
            os.link(path, target) if path.stat().st_dev == layout.stat().st_dev else shutil.copyfile(path, target)
    cfg = _put_blob(layout, canonical_json(config.document([b.diff_id for _, b, _ in layers], [w for *_, w in layers])))
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": cfg.digest, "size": cfg.size},
        "layers": [{"mediaType": MEDIA_LAYER_GZIP, "digest": b.digest, "size": b.size} for _, b, _ in layers],
        "annotations": dict(annotations),
    }
    man = _put_blob(layout, canonical_json(manifest))
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [
            {
                "mediaType": MEDIA_MANIFEST,
                "digest": man.digest,
                "size": man.size,
                "platform": {"architecture": config.architecture, "os": "linux"},
                "annotations": {"org.opencontainers.image.ref.name": ref_name},
            }
        ],
    }
    (layout / "index.json").write_bytes(canonical_json(index))
    return man


def write_archive(layout: Path, dest: Path, epoch: int) -> None:
    """The layout folder as an uncompressed, reproducible tar (what `skopeo copy oci-archive:` reads); the
    blobs are compressed already."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as out:
        write_tar(layout, out, epoch=epoch, keep_owners=False)
    tmp.rename(dest)
