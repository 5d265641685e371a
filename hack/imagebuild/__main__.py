"""hack/build-images.sh's builder: `python -m imagebuild [IMAGE...] [--arch A] [--out DIR]` (run with hack/ on
the path). Prints one JSON line per image built (name, arch, digest, layout, sbom, sizes) on stdout."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any

from . import images, layers, oci

ROOT = Path(__file__).resolve().parents[2]
PRUNE_AFTER_S = 3 * 86400  # cache entries unused this long are removed after a build


def host_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def project_version() -> str:
    return str(tomllib.loads((ROOT / "operator/pyproject.toml").read_text())["project"]["version"])


def sbom(
    image: images.Image, arch: str, digest: str, created: int, version: str, parts: list[layers.Layer]
) -> dict[str, Any]:
    """CycloneDX 1.5: the Debian packages dpkg installed and the Python distributions in the image, read from the
    built layers (dpkg's status file, each .dist-info's METADATA), not from the lock."""
    deb_arch = images.ARCHES[arch][0]
    components = []
    for layer in parts:
        for p in layer.packages:
            if p["type"] == "deb":
                purl = f"pkg:deb/debian/{p['name']}@{p['version']}?arch={p['arch']}&distro=debian-12"
                comp = {"type": "library", "name": p["name"], "version": p["version"], "purl": purl,
                        "properties": [{"name": "debian:source", "value": p["source"]}]}  # fmt: skip
            else:
                name = p["name"].lower().replace("_", "-").replace(".", "-")
                comp = {"type": "library", "name": p["name"], "version": p["version"],
                        "purl": f"pkg:pypi/{name}@{p['version']}"}  # fmt: skip
                if p.get("license"):
                    comp["licenses"] = [{"license": {"name": p["license"]}}]
            comp["bom-ref"] = comp["purl"]
            components.append(comp)
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, digest)}",
        "version": 1,
        "metadata": {
            "timestamp": oci.rfc3339(created),
            "tools": {"components": [{"type": "application", "name": "adapterops hack/build-images.sh"}]},
            "component": {
                "type": "container",
                "name": f"ghcr.io/adapterops/{image.name}",
                "version": version,
                "purl": f"pkg:oci/{image.name}@{digest.replace(':', '%3A')}?arch={deb_arch}",
                "bom-ref": digest,
            },
        },
        "components": sorted(components, key=lambda c: c["purl"]),
    }


def build_one(cache: Path, image: images.Image, arch: str, meta: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    parts = [
        layers.base_layer(cache, arch, layers.LAYER_EPOCH),
        layers.deps_layer(cache, ROOT, image, arch),
        layers.app_layer(cache, ROOT, image, arch),
    ]
    version, created = meta["version"], meta["created"]
    annotations = {
        "org.opencontainers.image.created": oci.rfc3339(created),
        "org.opencontainers.image.source": meta["source"],
        "org.opencontainers.image.revision": meta["revision"],
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.title": f"adapterops {image.name}",
        "org.opencontainers.image.description": image.description,
        "org.opencontainers.image.base.name": f"debian:{images.SUITE} (mmdebstrap, essential variant)",
    }
    config = oci.ImageConfig(
        architecture=arch,
        user=f"{images.UID}:{images.UID}",
        entrypoint=image.entrypoint,
        cmd=image.cmd,
        env=(*images.COMMON_ENV, *image.env),
        workdir=image.workdir,
        labels=annotations,
        created=created,
    )
    out_dir = cache / "oci"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        staging = Path(tmp) / "layout"
        manifest = oci.write_image(staging, [(p.path, p.blob, p.what) for p in parts], config, annotations, version)
        layout = out_dir / f"{image.name}-{arch}-{manifest.digest.split(':')[1][:16]}"
        if not layout.exists():
            with contextlib.suppress(OSError):  # another builder finished the same image first: the same bytes
                staging.rename(layout)
    os.utime(layout)
    doc = sbom(image, arch, manifest.digest, created, version, parts)
    sbom_path = layout.with_suffix(".cdx.json")
    sbom_path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    for p in parts:
        os.utime(p.path)
    return {
        "name": image.name,
        "arch": arch,
        "digest": manifest.digest,
        "ref": version,
        "layout": str(layout),
        "sbom": str(sbom_path),
        "compressed_bytes": sum(p.blob.size for p in parts),
        "layers": [
            {"what": p.what, "digest": p.blob.digest, "compressed_bytes": p.blob.size, "file": str(p.path)}
            for p in parts
        ],
        "seconds": round(time.monotonic() - started, 1),
    }


def prune(cache: Path) -> None:
    now = time.time()
    # layers: unpacked by the tests (testworld.rootfs); verified: their reproducibility stamps
    for sub in ("base", "deps", "app", "oci", "layers", "verified"):
        for p in (cache / sub).glob("*"):
            if not p.name.startswith(".") and now - p.stat().st_mtime > PRUNE_AFTER_S:
                shutil.rmtree(p) if p.is_dir() else p.unlink()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hack/build-images.sh", description=__doc__)
    ap.add_argument("images", nargs="*", help=f"default: all of {', '.join(images.IMAGES)}")
    ap.add_argument("--arch", action="append", choices=sorted(images.ARCHES),
                    help="repeatable; default: this machine's; images skip arches they do not support")  # fmt: skip
    ap.add_argument("--out", type=Path, help="also write <name>-<arch>.oci.tar archives and SBOMs here")
    ap.add_argument("--cache", type=Path, help="default: $ADAPTEROPS_CACHE/images (~/.cache/adapterops/images)")
    args = ap.parse_args(argv)
    unknown = [n for n in args.images if n not in images.IMAGES]
    if unknown:
        ap.error(f"unknown image {', '.join(unknown)}; known: {', '.join(images.IMAGES)} (trainer-nemo is built "
                 "with Docker from training-jobs/Dockerfile.nemo, on NVIDIA's NeMo container)")  # fmt: skip
    default_cache = Path(os.environ.get("ADAPTEROPS_CACHE") or Path.home() / ".cache/adapterops") / "images"
    cache: Path = args.cache or default_cache
    cache.mkdir(parents=True, exist_ok=True)
    # The config's and annotations' time: SOURCE_DATE_EPOCH, else the commit's (layers have their own fixed time).
    meta = {
        "version": os.environ.get("ADAPTEROPS_VERSION") or project_version(),
        "revision": os.environ.get("ADAPTEROPS_REVISION") or git("rev-parse", "HEAD"),
        "created": int(os.environ.get("SOURCE_DATE_EPOCH") or git("log", "-1", "--format=%ct")),
        "source": os.environ.get("ADAPTEROPS_SOURCE_URL", "https://github.com/adapterops/adapterops"),
    }
    results = []
    for arch in args.arch or [host_arch()]:
        for name in args.images or list(images.IMAGES):
            image = images.IMAGES[name]
            if arch not in image.arches:
                layers.log(f"{name}: not built for {arch} (its lock resolves for {', '.join(image.arches)} only)")
                continue
            result = build_one(cache, image, arch, meta)
            if args.out:
                args.out.mkdir(parents=True, exist_ok=True)
                archive = args.out / f"{name}-{arch}.oci.tar"
                oci.write_archive(Path(result["layout"]), archive, layers.LAYER_EPOCH)
                shutil.copyfile(result["sbom"], args.out / f"{name}-{arch}.cdx.json")
                result["archive"] = str(archive)
            print(json.dumps(result, sort_keys=True), flush=True)
            results.append(result)
    prune(cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
