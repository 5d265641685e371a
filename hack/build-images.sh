#!/usr/bin/env bash
# Builds the operator, adapter-fetcher and hf trainer images as OCI image layouts (and, with --out, archives),
# without a container daemon: a Debian base made by mmdebstrap from Debian's archive (no image registry), each
# image's part of the lock installed by uv (--require-hashes, wheels only), the project's distributions built
# from source; non-root (65532), OCI annotations, a CycloneDX SBOM of what was installed. Reproducible: the
# same inputs give the same digest (tests/images/test_images_build.py builds twice). Each layer is cached under
# a key of its inputs in ~/.cache/adapterops/images and rebuilt only when they change.
#
#   hack/build-images.sh                          all images, this machine's architecture
#   hack/build-images.sh operator --arch arm64    one image, another architecture (uv installs arm64 wheels;
#                                                 mmdebstrap needs qemu-user-static + binfmt for a foreign base)
#   hack/build-images.sh --out build/images       also write <name>-<arch>.oci.tar + <name>-<arch>.cdx.json
# Environment: SOURCE_DATE_EPOCH (the config's time; default: the commit's), ADAPTEROPS_VERSION (default: the
# package version), ADAPTEROPS_REVISION, ADAPTEROPS_SOURCE_URL, ADAPTEROPS_CACHE.
# The NeMo trainer is not built here: it derives from NVIDIA's NeMo container (training-jobs/Dockerfile.nemo).
# Prints one JSON line per image on stdout (progress on stderr).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v pigz >/dev/null || need+=(pigz)
[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || need+=(debian-archive-keyring)   # e.g. on Ubuntu
if ((${#need[@]})); then
  echo "==> installing Debian packages: ${need[*]}" >&2
  sudo_cmd=""; [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v uv >/dev/null; then
  [[ -x "$HOME/.local/bin/uv" ]] || python3 -m pip install -q --user "uv==0.13.8"
  export PATH="$HOME/.local/bin:$PATH"
fi

# The builder's Python: 3.11 (the images' version, so the bytecode it compiles is theirs) with the build lock's
# setuptools, hash-checked; kept in the cache under the lock's hash.
cache="${ADAPTEROPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/adapterops}"
env_dir="$cache/images/buildenv-$(sha256sum hack/requirements/build.lock | cut -c1-12)"
if [[ ! -x "$env_dir/bin/python" ]]; then
  tmp="$env_dir.$$"
  uv venv -q --python 3.11 "$tmp"
  uv pip install -q --python "$tmp/bin/python" --require-hashes --only-binary :all: -r hack/requirements/build.lock
  mv "$tmp" "$env_dir" 2>/dev/null || rm -rf "$tmp"   # another builder made it first
fi
export ADAPTEROPS_IMAGE_PYTHON="$env_dir/bin/python" ADAPTEROPS_CACHE="$cache"
PYTHONPATH="$root/hack" exec "$env_dir/bin/python" -m imagebuild "$@"
