"""hack/build-images.sh: reproducible digests, a cache that rebuilds only what changed, OCI annotations, a
non-root user, SBOMs that list what is installed, and the operator image without the trainer's stack."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from generators import requirements
from testworld import rootfs

# Cold (nothing cached), the first test also builds every image: minutes on 2 contended cores.
pytestmark = [pytest.mark.images, pytest.mark.timeout(3600)]

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "hack" / "build-images.sh"
# Budgets (compressed, as a registry stores them): the operator and the fetcher are Debian + Python + their
# locks; the trainer carries torch and the CUDA libraries PyPI's wheels bundle.
SITE = "usr/local/lib/python3.11/dist-packages"
SIZE_BUDGET_MB = {"operator": 80, "adapter-fetcher": 75, "trainer-hf": 4500}


def _blob(layout: Path, digest: str) -> Any:
    return json.loads((layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_text())


def _manifest(image: rootfs.BuiltImage) -> tuple[dict[str, Any], dict[str, Any]]:
    index = json.loads((image.layout / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["digest"] == image.digest
    manifest = _blob(image.layout, image.digest)
    return manifest, _blob(image.layout, manifest["config"]["digest"])


def _layer_files(result: dict[str, Any]) -> list[Path]:
    """The cached layer files (and their .json notes) an image was assembled from: their names are their keys."""
    files = [Path(layer["file"]) for layer in result["layers"]]
    return [g for f in files for g in (f, f.with_suffix(".json"))]


def test_an_empty_cache_rebuilds_the_same_digests(built: dict[str, rootfs.BuiltImage], tmp_path: Path) -> None:
    """The operator's and the fetcher's layers built again in a fresh cache (Debian base by mmdebstrap, the locks
    by uv, the project's wheels) are byte-identical, and so are the manifests. A layer whose key (every input,
    the code that makes it included) was already rebuilt this way and matched is not rebuilt again: its name
    is stamped in the cache's verified/ folder, and the fresh cache gets a link to it. So the Debian base and
    the locks are rebuilt once per change of their inputs, the project's layers on every run. The trainer's
    torch + CUDA layer is not rebuilt (minutes of compression on 2 cores); it is made by the same function
    as the two locks' layers checked here."""
    fresh = tmp_path / "cache"
    verified = rootfs.CACHE / "verified"
    verified.mkdir(parents=True, exist_ok=True)
    used = sorted({f for name in ("operator", "adapter-fetcher") for f in _layer_files(built[name].build)})
    for f in used:
        if (verified / f.name).exists() and f.parent.name != "app":
            (fresh / f.parent.name).mkdir(parents=True, exist_ok=True)
            os.link(f, fresh / f.parent.name / f.name)
    out = subprocess.run(
        [str(BUILD), "operator", "adapter-fetcher", "--cache", str(fresh)],
        cwd=REPO, check=True, capture_output=True, text=True,
    )  # fmt: skip
    again = {r["name"]: r for r in map(json.loads, out.stdout.splitlines())}
    for name in ("operator", "adapter-fetcher"):
        first = built[name].build
        assert [layer["digest"] for layer in again[name]["layers"]] == [layer["digest"] for layer in first["layers"]]
        assert again[name]["digest"] == first["digest"], name
    assert "building training-jobs/common" in out.stderr  # the project's layers are always rebuilt
    for f in used:
        (verified / f.name).touch()


def test_a_second_build_reuses_every_layer(built: dict[str, rootfs.BuiltImage]) -> None:
    out = subprocess.run([str(BUILD), "operator"], cwd=REPO, check=True, capture_output=True, text=True)
    (result,) = map(json.loads, out.stdout.splitlines())
    assert result["digest"] == built["operator"].digest
    assert not re.search(r"building|installing", out.stderr), out.stderr


def test_images_are_annotated_and_run_as_a_non_root_user(
    built: dict[str, rootfs.BuiltImage], build_meta: dict[str, str]
) -> None:
    revision = build_meta["ADAPTEROPS_REVISION"]
    version = requirements.tomllib.loads((REPO / "operator/pyproject.toml").read_text())["project"]["version"]
    for name, image in built.items():
        manifest, config = _manifest(image)
        notes = manifest["annotations"]
        assert notes["org.opencontainers.image.revision"] == revision, name
        assert notes["org.opencontainers.image.version"] == version
        assert notes["org.opencontainers.image.licenses"] == "Apache-2.0"
        assert notes["org.opencontainers.image.source"].startswith("https://github.com/")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", notes["org.opencontainers.image.created"])
        assert config["config"]["User"] == "65532:65532" and image.user == (65532, 65532)
        assert config["config"]["Entrypoint"][:2] == ["python", "-m"]
        assert len(config["rootfs"]["diff_ids"]) == len(manifest["layers"]) == 3
        passwd = image.path("etc/passwd").read_text()
        assert "nonroot:x:65532:65532:" in passwd


def _installed(image: rootfs.BuiltImage) -> set[tuple[str, str]]:
    """What the unpacked root filesystem holds: dpkg's installed packages and Python's distributions."""
    found = set()
    status = image.path("var/lib/dpkg/status").read_text()
    for para in status.split("\n\n"):
        fields = dict(re.findall(r"^([\w-]+): (.*)$", para, re.M))
        if fields.get("Status", "").endswith(" installed"):
            found.add((fields["Package"], fields["Version"]))
    for meta in image.glob(f"{SITE}/*.dist-info/METADATA"):
        head = meta.read_text(errors="replace").split("\n\n", 1)[0]
        fields = dict(re.findall(r"^(Name|Version): (.*)$", head, re.M))
        found.add((fields["Name"], fields["Version"]))
    return found


def test_each_sbom_lists_exactly_what_the_image_holds(built: dict[str, rootfs.BuiltImage]) -> None:
    for name, image in built.items():
        sbom = json.loads(image.sbom.read_text())
        assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.5"
        assert sbom["metadata"]["component"]["bom-ref"] == image.digest
        listed = {(c["name"], c["version"]) for c in sbom["components"]}
        assert listed == _installed(image), name
        # ... which is the image's lock, at the lock's versions (plus the project's own distributions).
        lock = requirements.parse_lock((REPO / f"hack/requirements/{_lock(name)}").read_text(), name)
        pypi = [c for c in sbom["components"] if c["purl"].startswith("pkg:pypi/")]
        python = {(c["name"].lower().replace("_", "-"), c["version"]) for c in pypi}
        locked = {(str(n), p.version) for n, p in lock.items()}
        assert locked <= python, sorted(locked - python)
        assert {n for n, _ in python - locked} <= {"adapterops", "adapterops-common", "adapterops-train"}


def _lock(name: str) -> str:
    return {"operator": "operator.lock", "adapter-fetcher": "fetcher.lock", "trainer-hf": "trainer-hf.lock"}[name]


def test_the_operator_image_has_no_torch_and_no_trainer(built: dict[str, rootfs.BuiltImage]) -> None:
    image = built["operator"]
    assert image.path(f"{SITE}/adapterops").is_dir() and image.path(f"{SITE}/lightkube").is_dir()
    forbidden = ("torch", "adapterops_train", "nvidia")
    assert not [p.name for p in image.glob(f"{SITE}/*") if p.name.split("-")[0] in forbidden]
    probe = rootfs.RootfsRun(image).run(["python", "-c", "import torch"])
    assert probe.returncode == 1 and "No module named 'torch'" in probe.stderr
    probe = rootfs.RootfsRun(image).run(["python", "-c", "import adapterops_train"])
    assert probe.returncode == 1 and "No module named 'adapterops_train'" in probe.stderr


def test_image_sizes_are_within_budget(built: dict[str, rootfs.BuiltImage], capsys: pytest.CaptureFixture[str]) -> None:
    rows = []
    for name, image in built.items():
        mb = image.build["compressed_bytes"] / 1e6
        files = [f for layer in image.layers for f in layer.rglob("*") if f.is_file() and not f.is_symlink()]
        unpacked = sum(f.stat().st_size for f in files) / 1e6
        rows.append(f"{name:16} {mb:8.1f} MB compressed  {unpacked:8.1f} MB unpacked  {image.digest}")
        assert mb < SIZE_BUDGET_MB[name], (name, mb)
    with capsys.disabled():
        print("\nimage sizes:\n" + "\n".join(rows))


def test_the_release_archive_is_the_layout_as_a_tar(built: dict[str, rootfs.BuiltImage], tmp_path: Path) -> None:
    out = subprocess.run(
        [str(BUILD), "adapter-fetcher", "--out", str(tmp_path)], cwd=REPO, check=True, capture_output=True, text=True
    )
    (result,) = map(json.loads, out.stdout.splitlines())
    with tarfile.open(result["archive"]) as tar:
        names = set(tar.getnames())
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
    assert {"oci-layout", "index.json"} <= names
    assert index["manifests"][0]["digest"] == built["adapter-fetcher"].digest
    assert all(f"blobs/sha256/{layer['digest'].split(':')[1]}" in names for layer in result["layers"])
    assert (tmp_path / "adapter-fetcher-amd64.cdx.json").exists()


def test_umoci_unpacks_the_same_tree(built: dict[str, rootfs.BuiltImage], tmp_path: Path) -> None:
    """umoci (another OCI implementation: it checks every blob, applies the layers) reads the layout the builder
    wrote and gets the tree the tests run: same files, sizes, modes and owners."""
    image = built["adapter-fetcher"]
    theirs = rootfs.umoci_unpack(image, tmp_path / "rootfs")

    def tree(roots: list[Path]) -> dict[str, tuple[int, int, int, int]]:
        out = {}
        for root in roots:
            for f in root.rglob("*"):
                st = f.lstat()
                size = 0 if f.is_dir() else st.st_size
                out[f.relative_to(root).as_posix()] = (st.st_mode, st.st_uid, st.st_gid, size)
        return out

    ours = tree(list(image.layers))
    umoci = tree([theirs])
    assert ours.keys() == umoci.keys()
    assert {k: v for k, v in ours.items() if umoci[k] != v} == {}


def test_an_unknown_image_is_refused_naming_the_known_ones() -> None:
    out = subprocess.run([str(BUILD), "trainer-nemo"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2
    assert "unknown image trainer-nemo; known: operator, adapter-fetcher, trainer-hf" in out.stderr
    assert "Dockerfile.nemo" in out.stderr
