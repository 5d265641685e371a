"""What each image holds: the Debian base they share, then per image the part of the lock it installs and the
project distributions built from source (the same split as operator/Dockerfile and training-jobs/Dockerfile.*,
which stay the way to build with Docker; the NeMo trainer can only be built that way, on NVIDIA's container)."""

from __future__ import annotations

from dataclasses import dataclass

# Debian 12: its python3 is CPython 3.11, the version hack/requirements.lock is compiled for (cp311 wheels).
SUITE = "bookworm"
# apt checks the archive's signatures against Debian's keyring (named, so that a non-Debian host uses it too).
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
MIRRORS = (
    ("http://deb.debian.org/debian", SUITE),
    ("http://deb.debian.org/debian", f"{SUITE}-updates"),
    ("http://deb.debian.org/debian-security", f"{SUITE}-security"),
)
# The `essential` variant (what every Debian system has: dpkg, coreutils, bash, ...) plus these. python-is-python3:
# the operator's pod specs run `python -m ...`. libstdc++6: manylinux wheels (torch, pydantic-core) link it
# from the system. ca-certificates: truststore verifies TLS with the system's CAs (a judge endpoint, S3).
PACKAGES = ("python3", "python-is-python3", "ca-certificates", "libstdc++6")
# Documentation is left out like Debian's slim images do, except each package's copyright file (its licence).
DPKG_OPTIONS = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
)
SITE = "usr/local/lib/python3.11/dist-packages"  # on Debian python3.11's sys.path
USER, UID = "nonroot", 65532  # the chart's runAsUser

# GOARCH -> (Debian architecture, uv's --python-platform)
ARCHES = {
    "amd64": ("amd64", "x86_64-manylinux_2_36"),
    "arm64": ("arm64", "aarch64-manylinux_2_36"),
}
COMMON_ENV = (
    "PATH=/usr/local/bin:/usr/bin:/bin",
    "LANG=C.UTF-8",
    "PYTHONUNBUFFERED=1",
    # The bytecode is in the image (compiled at build time); the root filesystem is read-only in pods.
    "PYTHONDONTWRITEBYTECODE=1",
)


@dataclass(frozen=True)
class Image:
    name: str  # ghcr.io/adapterops/<name>
    lock: str  # the image's part of hack/requirements.lock
    sources: tuple[str, ...]  # project distributions, built into wheels and installed without dependencies
    entrypoint: tuple[str, ...]
    description: str
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    workdir: str = "/"
    # amd64 only where the lock does not resolve for arm64 (it is compiled on linux/x86_64; the CUDA wheels
    # torch pulls in differ per architecture).
    arches: tuple[str, ...] = ("amd64", "arm64")


IMAGES = {
    i.name: i
    for i in (
        Image(
            name="operator",
            lock="hack/requirements/operator.lock",
            sources=("training-jobs/common", "operator"),
            entrypoint=("python", "-m", "adapterops"),
            description="AdapterOps operator: adapterops + adapterops-common (no trainer, no torch)",
        ),
        Image(
            name="adapter-fetcher",
            lock="hack/requirements/fetcher.lock",
            sources=("training-jobs/common",),
            entrypoint=("python", "-m", "adapterops_common"),
            cmd=("fetch", "--help"),
            workdir="/tmp",
            description="AdapterOps adapter fetcher (serving pods' init container): adapterops-common only",
        ),
        Image(
            name="trainer-hf",
            lock="hack/requirements/trainer-hf.lock",
            sources=("training-jobs/common", "training-jobs"),
            entrypoint=("python", "-m", "adapterops_train"),
            cmd=("run",),
            env=("HF_HUB_OFFLINE=1", "TRANSFORMERS_NO_ADVISORY_WARNINGS=1", "ADAPTEROPS_WORKDIR=/tmp"),
            workdir="/tmp",
            description="AdapterOps trainer, hf backend (torch + transformers + PEFT + TRL; CUDA or CPU)",
            arches=("amd64",),
        ),
    )
}


def all_sources() -> set[str]:
    return {s for i in IMAGES.values() for s in i.sources}
