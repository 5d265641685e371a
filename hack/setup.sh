#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine, building only what is missing:
#   - Debian packages: prometheus (and promtool), for the canary analysis and alert-rule tests; mmdebstrap and
#     pigz (hack/build-images.sh), umoci (the image tests unpack images with it), shellcheck (actionlint runs it
#     on the workflows' scripts);
#   - the Python environment (.venv, from hack/requirements.lock, hash-checked, with uv; wheels come from uv's
#     cache), with the three distributions installed editable: adapterops-common, adapterops-train, adapterops;
#   - the local control plane, kwok and helm (hack/build-tools.sh) and the local S3 server (hack/build-s3.sh),
#     into ~/.cache/adapterops, keyed by their pinned versions.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { echo "==> $*" >&2; }

# command -> Debian package
debs=(prometheus:prometheus promtool:prometheus mmdebstrap:mmdebstrap pigz:pigz umoci:umoci shellcheck:shellcheck)
missing=()
for pair in "${debs[@]}"; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  step "installing Debian packages: ${missing[*]}"
  sudo_cmd=""; [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v uv >/dev/null; then
  step "installing uv"
  python3 -m pip install -q --user "uv==0.13.8"
  export PATH="$HOME/.local/bin:$PATH"
fi

# The three distributions, installed editable; their dependencies come from the lock only (--no-deps).
packages=(training-jobs/common training-jobs operator)
lock_stamp="$(cat hack/requirements.lock pyproject.toml "${packages[@]/%//pyproject.toml}" | sha256sum | cut -c1-16)"
if [[ "$(cat .venv/.adapterops-lock 2>/dev/null)" != "$lock_stamp" ]]; then
  step "creating .venv from hack/requirements.lock"
  [[ -x .venv/bin/python ]] || uv venv -q --python 3.11 .venv
  # sync removes what the lock does not list, including a previous layout's editable installs; the root
  # was one distribution before the split, and its metadata there would shadow `adapterops`'s.
  rm -rf adapterops.egg-info
  # --require-hashes: every package must be pinned and match one of the lock's hashes (uv checks the hashes
  # it is given anyway; this also refuses an entry without one).
  uv pip sync -q --require-hashes --python .venv/bin/python hack/requirements.lock
  # Built with the venv's own setuptools (locked, hash-checked above) instead of build tools fetched
  # unpinned into an isolated build environment.
  editables=(); for p in "${packages[@]}"; do editables+=(-e "$p"); done
  uv pip install -q --python .venv/bin/python --no-deps --no-build-isolation "${editables[@]}"
  echo "$lock_stamp" >.venv/.adapterops-lock
fi

step "building the local cluster's binaries (only what is missing)"
hack/build-tools.sh >/dev/null
hack/build-s3.sh >/dev/null
hack/build-actionlint.sh >/dev/null
