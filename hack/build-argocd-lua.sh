#!/usr/bin/env bash
# Builds the Argo CD Lua test harness (hack/argocd-lua: gopher-lua as Argo CD sets it up) into the
# per-user cache, keyed by its sources (go.mod, go.sum, *.go and this script), then links
# ./.tools/argocd-lua to it. A second run builds nothing. Prints the binary's path on stdout (progress
# goes to stderr).
#
#   hack/build-argocd-lua.sh       build the harness if missing
#   ADAPTEROPS_CACHE=/path ...     put the cache elsewhere (default: ${XDG_CACHE_HOME:-~/.cache}/adapterops)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mod="$root/hack/argocd-lua"
# -mod=readonly: build exactly what go.mod and go.sum pin; a missing or different checksum fails the build
# instead of being written into go.sum (modules still download from the module proxy).
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly

key="$(cat "$mod/go.mod" "$mod/go.sum" "$mod"/*.go "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)"
cache="${ADAPTEROPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/adapterops}"
bin="$cache/argocd-lua-$key/bin"
mkdir -p "$bin" "$root/.tools"
ln -sfn "$bin" "$root/.tools/argocd-lua"

if [[ ! -x "$bin/argocd-lua" ]]; then
  echo "building argocd-lua" >&2
  start=$SECONDS
  cd "$mod"
  # Build to a temporary name so an interrupted build never leaves a half-written binary behind.
  go build -trimpath -ldflags "-s -w" -o "$bin/.argocd-lua.$$.tmp" .
  mv "$bin/.argocd-lua.$$.tmp" "$bin/argocd-lua"
  echo "built argocd-lua in $((SECONDS - start))s" >&2
fi
echo "$bin/argocd-lua"
