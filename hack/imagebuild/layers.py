"""The three layers of every image, each built into the cache under a key of its inputs:

- base: Debian (mmdebstrap, essential variant + python3), a non-root user; keyed by the package list, the
  mmdebstrap version and the Debian archive's package indices (their SHA256 in the signed InRelease files), so
  a Debian security update rebuilds it and nothing else does;
- deps: the image's lock installed by uv (--require-hashes, wheels only, for the image's platform) and
  compiled to bytecode; keyed by the lock;
- app: the project's distributions, built from source into wheels and installed without dependencies;
  keyed by the sources' contents.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import images, oci

HERE = Path(__file__).resolve().parent
# Layers' file times: one fixed instant, so that a layer depends only on what is in it (the image's config
# carries the commit's time, SOURCE_DATE_EPOCH). 2024-01-01T00:00:00Z.
LAYER_EPOCH = 1704067200
LAYER_WRITER: tuple[Callable[..., Any], ...] = (oci.write_layer, oci.write_tar, oci._ordered)


def log(msg: str) -> None:
    print(f"==> {msg}", file=sys.stderr, flush=True)


def digest_of(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "big") + b)
    return h.hexdigest()[:16]


def code_digest(*functions: Callable[..., Any]) -> str:
    """The code that makes a layer is an input of it: the syntax trees of the functions given and of oci's layer
    writer, without docstrings, so that a comment or a reformatting rebuilds nothing. (The settings each layer
    reads from `images` are inputs of its key by value.)"""
    sources = [textwrap.dedent(inspect.getsource(f)) for f in (*functions, *LAYER_WRITER)]
    trees = []
    for source in sources:
        tree = ast.parse(source)
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            first = body[0] if isinstance(body, list) and body else None
            if isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str):
                body[0] = ast.Pass()  # type: ignore[index]
        trees.append(ast.dump(tree))
    return digest_of(*trees)


def tool_version(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip().splitlines()[0]


@dataclass(frozen=True)
class Layer:
    path: Path
    blob: oci.Blob
    what: str
    packages: list[dict[str, str]]  # for the SBOM: what this layer installed

    @staticmethod
    def load(path: Path) -> Layer | None:
        meta = path.with_suffix(".json")
        if not (path.exists() and meta.exists()):
            return None
        m = json.loads(meta.read_text())
        return Layer(path, oci.Blob(m["digest"], m["size"], m["diff_id"]), m["what"], m["packages"])

    def save(self) -> None:
        b = self.blob
        meta = {"digest": b.digest, "size": b.size, "diff_id": b.diff_id, "what": self.what, "packages": self.packages}
        self.path.with_suffix(".json").write_text(json.dumps(meta, indent=1, sort_keys=True))


# -- base ----------------------------------------------------------------------------------------------------


def index_fingerprint(arch: str) -> str:
    """The SHA256 lines of each suite's InRelease for main/binary-<arch>/Packages: they change exactly when a
    package of this architecture does. (mmdebstrap verifies InRelease's signature when it builds; here it
    only keys the cache.)"""
    deb_arch = images.ARCHES[arch][0]
    lines = []
    for url, suite in images.MIRRORS:
        with urllib.request.urlopen(f"{url}/dists/{suite}/InRelease", timeout=30) as r:
            text = r.read().decode()
        sha = text.split("SHA256:", 1)[1]
        wanted = f"main/binary-{deb_arch}/Packages"
        lines += [f"{suite} {ln.strip()}" for ln in sha.splitlines() if ln.strip().endswith(wanted)]
    return "\n".join(lines)


def base_layer(cache: Path, arch: str, epoch: int) -> Layer:
    mmdebstrap = tool_version("mmdebstrap", "--version")
    inputs = [images.SUITE, arch, *images.PACKAGES, *images.DPKG_OPTIONS, str(images.MIRRORS), images.KEYRING,
              images.USER, str(images.UID), str(images.ARCHES[arch]), mmdebstrap]  # fmt: skip
    try:
        inputs.append(index_fingerprint(arch))
    except OSError as exc:
        found = sorted((cache / "base").glob(f"base-{arch}-*.tar.gz"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise SystemExit(f"cannot read the Debian archive's indices ({exc}) and no base is cached") from exc
        log(f"Debian archive unreachable ({exc}): reusing the newest cached base {found[-1].name}")
        layer = Layer.load(found[-1])
        assert layer
        return layer
    key = digest_of(code_digest(base_layer, add_user, dpkg_packages), str(epoch), *inputs)
    path = cache / "base" / f"base-{arch}-{key}.tar.gz"
    if layer := Layer.load(path):
        return layer
    log(f"building the Debian {images.SUITE} base for {arch} (mmdebstrap)")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        rootfs = Path(tmp) / "rootfs"
        sources = [f"deb [signed-by={images.KEYRING}] {url} {suite} main" for url, suite in images.MIRRORS]
        mode = "root" if os.geteuid() == 0 else "unshare"
        argv = [
            "mmdebstrap", f"--mode={mode}", "--variant=essential", f"--architectures={images.ARCHES[arch][0]}",
            "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr", "--include=" + ",".join(images.PACKAGES),
            *(f"--dpkgopt={o}" for o in images.DPKG_OPTIONS), images.SUITE, str(rootfs), *sources,
        ]  # fmt: skip
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
        logfile = Path(tmp) / "mmdebstrap.log"
        with logfile.open("w") as out:
            rc = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
        if rc != 0:
            raise SystemExit(f"mmdebstrap failed ({rc}):\n" + "\n".join(logfile.read_text().splitlines()[-30:]))
        add_user(rootfs)
        # Left by dpkg and ldconfig runs: logs with times and a cache keyed by inode numbers.
        for p in ("var/log/dpkg.log", "var/log/alternatives.log", "var/cache/ldconfig/aux-cache",
                  "var/log/apt/eipp.log.xz", "var/log/apt/history.log", "var/log/apt/term.log"):  # fmt: skip
            (rootfs / p).unlink(missing_ok=True)
        packages = dpkg_packages(rootfs)
        blob = oci.write_layer(rootfs, path, epoch=epoch, keep_owners=True)
        shutil.rmtree(rootfs, ignore_errors=True)
    layer = Layer(path, blob, f"mmdebstrap {images.SUITE} essential + {' '.join(images.PACKAGES)}", packages)
    layer.save()
    return layer


def add_user(rootfs: Path) -> None:
    """The non-root user the images run as (65532, the chart's runAsUser), with its home."""
    u, uid = images.USER, images.UID
    with (rootfs / "etc/passwd").open("a") as f:
        f.write(f"{u}:x:{uid}:{uid}:{u}:/home/{u}:/usr/sbin/nologin\n")
    with (rootfs / "etc/group").open("a") as f:
        f.write(f"{u}:x:{uid}:\n")
    shadow = rootfs / "etc/shadow"
    if shadow.exists():
        mode = shadow.stat().st_mode
        with shadow.open("a") as f:
            f.write(f"{u}:!:{LAYER_EPOCH // 86400}::::::\n")
        shadow.chmod(mode)
    home = rootfs / "home" / u
    home.mkdir(parents=True)
    os.chown(home, uid, uid)


def dpkg_packages(rootfs: Path) -> list[dict[str, str]]:
    """Installed packages as dpkg records them (var/lib/dpkg/status), for the SBOM."""
    out = []
    for para in (rootfs / "var/lib/dpkg/status").read_text().split("\n\n"):
        fields: dict[str, str] = dict(re.findall(r"^([\w-]+): (.*)$", para, re.M))
        if fields.get("Status", "").endswith(" installed"):
            src = fields.get("Source", fields["Package"]).split(" ")[0]
            out.append({"type": "deb", "name": fields["Package"], "version": fields["Version"],
                        "arch": fields["Architecture"], "source": src})  # fmt: skip
    return sorted(out, key=lambda p: p["name"])


# -- Python layers -------------------------------------------------------------------------------------------


def _uv_install(target: Path, arch: str, args: list[str]) -> None:
    platform = images.ARCHES[arch][1]
    argv = ["uv", "pip", "install", "--quiet", "--target", str(target / images.SITE), "--python-platform", platform,
            "--python-version", "3.11", "--only-binary", ":all:", "--no-deps", *args]  # fmt: skip
    subprocess.run(argv, check=True)


def _record_line(path: str, data: bytes) -> str:
    """A wheel RECORD row (PEP 376/427): path, urlsafe base64 SHA-256 without padding, size."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}\n"


def _finish_python_tree(tree: Path, python: str) -> None:
    """Console scripts to /usr/local/bin with the image's interpreter (uv wrote this machine's); no
    direct_url.json (it names this machine's wheel path) nor uv_cache.json; bytecode compiled so that a
    read-only root filesystem starts fast: unchecked-hash pycs do not depend on file times, PYTHONHASHSEED
    fixes set ordering."""
    site = tree / images.SITE
    if (site / "bin").is_dir():
        dest = tree / "usr/local/bin"
        dest.mkdir(parents=True, exist_ok=True)
        moved: dict[str, str] = {}
        for script in sorted((site / "bin").iterdir()):
            data = script.read_bytes()
            if data.startswith(b"#!"):
                data = b"#!/usr/bin/python3" + data[data.index(b"\n") :]
            (dest / script.name).write_bytes(data)
            (dest / script.name).chmod(0o755)
            moved[f"bin/{script.name}"] = _record_line(os.path.relpath(dest / script.name, site), data)
        shutil.rmtree(site / "bin")
        # RECORD named each script where uv wrote it, hashed with this machine's shebang: the layer would
        # depend on the path of the checkout that built it.
        for record in site.glob("*.dist-info/RECORD"):
            lines = record.read_text().splitlines(keepends=True)
            fixed = [moved.get(ln.split(",", 1)[0], ln) for ln in lines]
            if fixed != lines:
                record.write_text("".join(fixed))
    # uv_cache.json: uv's note of when it built a local wheel (a time: the layer would differ per build).
    for local in [*site.glob("*.dist-info/direct_url.json"), *site.glob("*.dist-info/uv_cache.json")]:
        local.unlink()
        record = local.parent / "RECORD"
        lines = record.read_text().splitlines(keepends=True)
        record.write_text("".join(ln for ln in lines if not ln.startswith(f"{local.parent.name}/{local.name},")))
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    # rc 1 when a file does not compile (some packages ship templates that are not Python): those stay source.
    subprocess.run([python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                    "-s", str(tree), "-p", "/", str(site)], env=env, stdout=subprocess.DEVNULL)  # fmt: skip


def python_packages(tree: Path) -> list[dict[str, str]]:
    """Installed distributions as their metadata says (the SBOM's Python part)."""
    out = []
    for meta in sorted((tree / images.SITE).glob("*.dist-info/METADATA")):
        head = meta.read_text(errors="replace").split("\n\n", 1)[0]
        fields: dict[str, str] = {}
        for k, v in re.findall(r"^([\w-]+): (.*)$", head, re.M):
            fields.setdefault(k, v)
        lic = fields.get("License-Expression") or fields.get("License", "")
        out.append({"type": "pypi", "name": fields["Name"], "version": fields["Version"], "license": lic[:200]})
    return sorted(out, key=lambda p: p["name"].lower())


def build_python() -> str:
    """A Python 3.11 with the build lock's setuptools (hash-checked), for the project's wheels and bytecode."""
    return os.environ.get("ADAPTEROPS_IMAGE_PYTHON") or sys.executable


def deps_layer(cache: Path, root: Path, image: images.Image, arch: str) -> Layer:
    lock = (root / image.lock).read_bytes()
    code = code_digest(deps_layer, _uv_install, _finish_python_tree, _record_line, python_packages)
    settings = (images.SITE, str(images.ARCHES[arch]))
    key = digest_of(code, arch, *settings, lock, tool_version("uv", "--version"), sys.version)
    path = cache / "deps" / f"{image.name}-{arch}-{key}.tar.gz"
    if layer := Layer.load(path):
        return layer
    log(f"installing {image.lock} for {image.name} ({arch})")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        tree = Path(tmp)
        _uv_install(tree, arch, ["--require-hashes", "-r", str(root / image.lock)])
        _finish_python_tree(tree, build_python())
        packages = python_packages(tree)
        blob = oci.write_layer(tree, path, epoch=LAYER_EPOCH)
    layer = Layer(path, blob, f"uv pip install --require-hashes -r {image.lock}", packages)
    layer.save()
    return layer


def source_files(root: Path, source: str) -> list[str]:
    """The distribution's files as git sees them (tracked, or new and not ignored)."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "--", source], cwd=root,
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    nested = [s for s in images.all_sources() if s != source and s.startswith(source + "/")]
    return sorted(f for f in out if not any(f.startswith(n + "/") for n in nested) and (root / f).is_file())


def app_layer(cache: Path, root: Path, image: images.Image, arch: str) -> Layer:
    files = [f for s in image.sources for f in source_files(root, s)]
    code = code_digest(app_layer, source_files, _uv_install, _finish_python_tree, _record_line, python_packages)
    settings = (images.SITE, str(images.ARCHES[arch]), *image.sources)
    key = digest_of(code, arch, *settings, sys.version, *(f"{f}\0{digest_of((root / f).read_bytes())}" for f in files))
    path = cache / "app" / f"{image.name}-{arch}-{key}.tar.gz"
    if layer := Layer.load(path):
        return layer
    log(f"building {', '.join(image.sources)} for {image.name} ({arch})")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        work, tree, wheels = Path(tmp) / "src", Path(tmp) / "tree", Path(tmp) / "wheels"
        for f in files:  # a copy: setuptools writes build/ and *.egg-info next to the sources
            (work / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / f, work / f)
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(LAYER_EPOCH)}
        for s in image.sources:
            subprocess.run(["uv", "build", "--quiet", "--wheel", "--no-build-isolation", "--python", build_python(),
                            "--out-dir", str(wheels), str(work / s)], check=True, env=env)  # fmt: skip
        _uv_install(tree, arch, ["--no-index", *map(str, sorted(wheels.glob("*.whl")))])
        _finish_python_tree(tree, build_python())
        packages = python_packages(tree)
        blob = oci.write_layer(tree, path, epoch=LAYER_EPOCH)
    layer = Layer(path, blob, f"uv build + install --no-deps {' '.join(image.sources)}", packages)
    layer.save()
    return layer
