#!/usr/bin/env bash
# Builds actionlint (the GitHub Actions workflow checker) from the Go module proxy into the per-user cache,
# keyed by the pinned versions (hack/actionlint/go.mod + go.sum + this script). A second run builds nothing.
# Prints the binary's path on stdout (progress goes to stderr).
#
#   hack/build-actionlint.sh && "$(hack/build-actionlint.sh)" .github/workflows/*.yml
#   ADAPTEROPS_CACHE=/path ...     put the cache elsewhere (default: ${XDG_CACHE_HOME:-~/.cache}/adapterops)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mod="$root/hack/actionlint"
# -mod=readonly: build exactly what go.mod and go.sum pin (modules still download from the module proxy).
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly

version=v1.7.12   # github.com/rhysd/actionlint in hack/actionlint/go.mod

key="$(cat "$mod/go.mod" "$mod/go.sum" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)"
cache="${ADAPTEROPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/adapterops}"
bin="$cache/actionlint-$key/bin"
mkdir -p "$bin"

if [[ ! -x "$bin/actionlint" ]]; then
  echo "building actionlint $version" >&2
  start=$SECONDS
  cd "$mod"
  go build -trimpath -ldflags "-s -w -X github.com/rhysd/actionlint.version=$version" -o "$bin/.actionlint.$$" \
    github.com/rhysd/actionlint/cmd/actionlint
  mv "$bin/.actionlint.$$" "$bin/actionlint"
  echo "built actionlint in $((SECONDS - start))s" >&2
fi
echo "$bin/actionlint"
