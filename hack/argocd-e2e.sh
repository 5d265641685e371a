#!/usr/bin/env bash
# Builds what the Argo CD end-to-end test (tests/argocd/test_argocd_sync.py) runs as local processes, into
# the per-user cache keyed by its inputs, links ./.tools/argocd-e2e to it, and prints the bin directory:
#   argocd      Argo CD v3.6.1's one binary (github.com/argoproj/argo-cd/v3/cmd): the application
#               controller and the repo server (it dispatches on ARGOCD_BINARY_NAME or argv[0])
#   miniredis   an in-memory Redis on 127.0.0.1 for their caches (the one `argocd --core` runs in-process)
#   kustomize   v5.8.2 (Argo CD v3.6.1's image ships v5.8.3, whose go.mod needs
#               k8s.io/kube-openapi v0.0.0-20261001230523-97fa35140926, which the Go module proxy refuses:
#               403 "This module version is not available"; v5.8.2 needs the kube-openapi Argo CD builds with)
#   git-verify-wrapper.sh, gpg-wrapper.sh   Argo CD's scripts that its repo server image has on PATH
# and, beside bin/, crds/: Argo CD's Application and AppProject CRDs of the same version.
# Argo CD v3.6 needs Go 1.27: GOTOOLCHAIN=go1.27.3, which the go command fetches from the Go module proxy
# once per machine. The first build takes minutes (Argo CD's dependency tree); a second run builds nothing.
#
#   hack/argocd-e2e.sh              build what is missing, print the bin directory
#   ADAPTEROPS_CACHE=/path ...      put the cache elsewhere (default: ${XDG_CACHE_HOME:-~/.cache}/adapterops)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mod="$root/hack/argocd-e2e"
# -mod=readonly: build exactly what go.mod and go.sum pin; a missing or different checksum fails the build
# instead of being written into go.sum (modules still download from the module proxy).
export GOTOOLCHAIN=go1.27.3 CGO_ENABLED=0 GOFLAGS=-mod=readonly

kustomize_version=v5.8.2

key="$(cat "$mod/go.mod" "$mod/go.sum" "$mod"/miniredis/*.go "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)"
cache="${ADAPTEROPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/adapterops}"
bin="$cache/argocd-e2e-$key/bin"
mkdir -p "$bin" "$root/.tools"
ln -sfn "$bin" "$root/.tools/argocd-e2e"

build() { # name package
  local name="$1" pkg="$2"
  [[ -x "$bin/$name" ]] && return 0
  echo "building $name ($pkg)" >&2
  local start=$SECONDS
  # Build to a temporary name so an interrupted build never leaves a half-written binary behind.
  go build -trimpath -ldflags "-s -w" -o "$bin/.$name.$$.tmp" "$pkg"
  mv "$bin/.$name.$$.tmp" "$bin/$name"
  echo "built $name in $((SECONDS - start))s" >&2
}

cd "$mod"
build miniredis ./miniredis
build argocd github.com/argoproj/argo-cd/v3/cmd
# kustomize with its own go.mod (go install pkg@version), not Argo CD's dependency versions; its modules are
# checked against kustomize's own go.sum and the checksum database (GOSUMDB), as this module's are against go.sum.
if [[ ! -x "$bin/kustomize" ]]; then
  echo "building kustomize $kustomize_version" >&2
  start=$SECONDS
  tmp="$(mktemp -d)"
  GOBIN="$tmp" go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kustomize/api/provenance.version=kustomize/$kustomize_version" \
    "sigs.k8s.io/kustomize/kustomize/v5@$kustomize_version"
  mv "$tmp/kustomize" "$bin/kustomize"
  rmdir "$tmp"
  echo "built kustomize in $((SECONDS - start))s" >&2
fi
# From Argo CD's module at the same version: the CRDs (Application, AppProject), and the scripts its image
# puts on the repo server's PATH (git-verify-wrapper.sh: v3.6.1 runs it on every revision it checks out).
crds="$cache/argocd-e2e-$key/crds"
if [[ ! -s "$crds/application-crd.yaml" || ! -x "$bin/git-verify-wrapper.sh" ]]; then
  argocd_dir="$(go list -m -f '{{.Dir}}' github.com/argoproj/argo-cd/v3)"
  install -m 0755 "$argocd_dir/hack/git-verify-wrapper.sh" "$argocd_dir/hack/gpg-wrapper.sh" "$bin/"
  mkdir -p "$crds"
  cp "$argocd_dir/manifests/crds/application-crd.yaml" "$argocd_dir/manifests/crds/appproject-crd.yaml" "$crds/"
  chmod u+w "$crds"/*.yaml
fi
echo "$bin"
