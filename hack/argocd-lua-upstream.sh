#!/usr/bin/env bash
# Builds hack/argocd-lua/upstream (AdapterOps' Argo CD checks run by Argo CD v3.6.1's own util/lua and
# util/settings) into the per-user cache, keyed by its sources, links ./.tools/argocd-lua-upstream to
# it, and prints the binary's path. Argo CD v3.6 needs Go 1.27: this script (and only this one) uses
# GOTOOLCHAIN=go1.27.3, which the go command fetches from the Go module proxy once per machine. The
# first build takes minutes (Argo CD's dependency tree); a second run builds nothing.
#
#   hack/argocd-lua-upstream.sh                  build if missing, print the path
#   hack/argocd-lua-upstream.sh run              build if missing, then check manifests/argocd
#   ADAPTEROPS_CACHE=/path ...                   put the cache elsewhere (default: ${XDG_CACHE_HOME:-~/.cache}/adapterops)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mod="$root/hack/argocd-lua/upstream"
# -mod=readonly: build exactly what go.mod and go.sum pin; a missing or different checksum fails the build
# instead of being written into go.sum (modules still download from the module proxy).
export GOTOOLCHAIN=go1.27.3 CGO_ENABLED=0 GOFLAGS=-mod=readonly

key="$(cat "$mod/go.mod" "$mod/go.sum" "$mod"/*.go "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)"
cache="${ADAPTEROPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/adapterops}"
bin="$cache/argocd-lua-upstream-$key/bin"
mkdir -p "$bin" "$root/.tools"
ln -sfn "$bin" "$root/.tools/argocd-lua-upstream"

if [[ ! -x "$bin/argocd-lua-upstream" ]]; then
  echo "building argocd-lua-upstream (Argo CD v3.6.1 util/lua, Go 1.27.3)" >&2
  start=$SECONDS
  cd "$mod"
  go build -trimpath -ldflags "-s -w" -o "$bin/.argocd-lua-upstream.$$.tmp" .
  mv "$bin/.argocd-lua-upstream.$$.tmp" "$bin/argocd-lua-upstream"
  echo "built argocd-lua-upstream in $((SECONDS - start))s" >&2
fi
if [[ "${1:-}" == run ]]; then
  exec "$bin/argocd-lua-upstream" "$root/manifests/argocd"
fi
echo "$bin/argocd-lua-upstream"
