#!/usr/bin/env bash
# Builds the JobSet controller and Kueue from the Go module proxy into the per-user cache, keyed by the
# pinned versions (hack/controllers/<name>/go.mod + go.sum: one module each, as their controller-runtime
# versions differ), like hack/build-tools.sh builds the control plane. Each binary is rebuilt only when its
# package or flags change (a stamp file beside it); a second run builds nothing. hack/setup.sh runs it; the
# cluster tests that run a real JobSet or Kueue (testworld/controllers.py) ask for the binaries again.
# Prints the bin directory on stdout (progress goes to stderr).
#
#   hack/build-controllers.sh            build whatever is missing (cold: several minutes on 2 cores, Kueue most)
#   hack/build-controllers.sh jobset     only the named ones (jobset, kueue)
#   ADAPTEROPS_CACHE=/path ...     put the cache elsewhere (default: ${XDG_CACHE_HOME:-~/.cache}/adapterops)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# -mod=readonly: exactly what go.mod and go.sum pin; a missing or different checksum fails the build.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly

jobset_version=v0.11.1   # sigs.k8s.io/jobset in hack/controllers/jobset/go.mod
kueue_version=v0.17.0    # sigs.k8s.io/kueue in hack/controllers/kueue/go.mod

key="$(cat "$root"/hack/controllers/*/go.mod "$root"/hack/controllers/*/go.sum | sha256sum | cut -c1-12)"
cache="${ADAPTEROPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/adapterops}"
bin="$cache/controllers-$key/bin"
mkdir -p "$bin"

# name (also its module's folder)  package  ldflags (the version variables their Makefiles set)
targets=(
  "jobset|sigs.k8s.io/jobset|-s -w -X sigs.k8s.io/jobset/pkg/version.GitVersion=$jobset_version"
  "kueue|sigs.k8s.io/kueue/cmd/kueue|-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$kueue_version"
)

for t in "${targets[@]}"; do
  IFS='|' read -r name pkg ldflags <<<"$t"
  if [[ $# -gt 0 && " $* " != *" $name "* ]]; then continue; fi
  # One build of a binary at a time (hack/setup.sh and a test fixture may both ask): the other waits for the
  # lock, then finds it built.
  exec 9>"$bin/.$name.lock"
  flock 9
  stamp="$(echo "$pkg $ldflags" | sha256sum | cut -c1-12)"
  if [[ -x "$bin/$name" && "$(cat "$bin/.$name.stamp" 2>/dev/null)" == "$stamp" ]]; then continue; fi
  echo "building $name ($pkg)" >&2
  start=$SECONDS
  cd "$root/hack/controllers/$name"
  # A temporary name first, so an interrupted build never leaves a half-written binary behind.
  go build -trimpath -ldflags "$ldflags" -o "$bin/.$name.tmp" "$pkg"
  mv "$bin/.$name.tmp" "$bin/$name"
  echo "$stamp" >"$bin/.$name.stamp"
  echo "built $name in $((SECONDS - start))s" >&2
  exec 9>&-
done
echo "$bin"
