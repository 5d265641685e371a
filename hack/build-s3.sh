#!/usr/bin/env bash
# Builds versitygw (the S3-compatible gateway the tests use as a real local S3 server) from the Go
# module proxy into the per-user cache, keyed by the pinned versions (hack/s3/go.mod + go.sum + this
# script), then links ./.tools/s3 to it. A second run builds nothing. Prints the binary's path on
# stdout (progress goes to stderr).
#
#   hack/build-s3.sh               build versitygw if missing
#   ADAPTEROPS_CACHE=/path ...     put the cache elsewhere (default: ${XDG_CACHE_HOME:-~/.cache}/adapterops)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mod="$root/hack/s3"
# -mod=readonly: build exactly what go.mod and go.sum pin; a missing or different checksum fails the build
# instead of being written into go.sum (modules still download from the module proxy).
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly

version=v1.8.0   # github.com/versity/versitygw in hack/s3/go.mod

key="$(cat "$mod/go.mod" "$mod/go.sum" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)"
cache="${ADAPTEROPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/adapterops}"
bin="$cache/s3-$key/bin"
mkdir -p "$bin" "$root/.tools"
ln -sfn "$bin" "$root/.tools/s3"

if [[ ! -x "$bin/versitygw" ]]; then
  echo "building versitygw $version" >&2
  start=$SECONDS
  cd "$mod"
  # Build to a temporary name so an interrupted build never leaves a half-written binary behind.
  go build -trimpath -ldflags "-s -w -X main.Version=$version" -o "$bin/.versitygw.$$.tmp" \
    github.com/versity/versitygw/cmd/versitygw
  mv "$bin/.versitygw.$$.tmp" "$bin/versitygw"
  echo "built versitygw in $((SECONDS - start))s" >&2
fi
echo "$bin/versitygw"
