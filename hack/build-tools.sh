#!/usr/bin/env bash
# Builds the local control plane and tools from the Go module proxy into a per-user cache keyed by
# the pinned versions (hack/tools/go.mod + go.sum), then links ./.tools/bin to it. Each binary is
# rebuilt only when its package or flags change (a stamp file beside it). A second run builds nothing.
# Prints the bin directory on stdout (progress goes to stderr).
#
#   hack/build-tools.sh            build whatever is missing
#   ADAPTEROPS_CACHE=/path ...     put the cache elsewhere (default: ${XDG_CACHE_HOME:-~/.cache}/adapterops)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/hack/tools"
# -mod=readonly: build exactly what go.mod and go.sum pin; a missing or different checksum fails the build
# instead of being written into go.sum (modules still download from the module proxy).
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly

kube_version=v1.36.3   # k8s.io/kubernetes in hack/tools/go.mod
kwok_version=v0.8.0    # sigs.k8s.io/kwok
helm_version=v3.21.4   # helm.sh/helm/v3

key="$(cat "$tools/go.mod" "$tools/go.sum" | sha256sum | cut -c1-12)"
cache="${ADAPTEROPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/adapterops}"
bin="$cache/tools-$key/bin"
mkdir -p "$bin" "$root/.tools"
ln -sfn "$bin" "$root/.tools/bin"

kube_ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$kube_version \
 -X k8s.io/component-base/version.gitMajor=$(echo "$kube_version" | cut -d. -f1 | tr -d v) \
 -X k8s.io/component-base/version.gitMinor=$(echo "$kube_version" | cut -d. -f2) \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$kube_version"
kwok_ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${kwok_version#v} \
 -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${kube_version#v}"
# helm's defaults for `helm template` / lint (the Kubernetes version it assumes without a cluster)
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version \
 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=36 \
 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=36"

# name  package  ldflags
targets=(
  "etcd|adapterops.io/hack/tools/cmd/etcd|-s -w"
  "kwok|sigs.k8s.io/kwok/cmd/kwok|$kwok_ldflags"
  "kwokctl|sigs.k8s.io/kwok/cmd/kwokctl|$kwok_ldflags"
  "helm|helm.sh/helm/v3/cmd/helm|$helm_ldflags"
  "kube-scheduler|k8s.io/kubernetes/cmd/kube-scheduler|$kube_ldflags"
  "kube-controller-manager|k8s.io/kubernetes/cmd/kube-controller-manager|$kube_ldflags"
  "kube-apiserver|k8s.io/kubernetes/cmd/kube-apiserver|$kube_ldflags"
)

cd "$tools"
for t in "${targets[@]}"; do
  IFS='|' read -r name pkg ldflags <<<"$t"
  stamp="$(echo "$pkg $ldflags" | sha256sum | cut -c1-12)"
  if [[ -x "$bin/$name" && "$(cat "$bin/.$name.stamp" 2>/dev/null)" == "$stamp" ]]; then continue; fi
  echo "building $name ($pkg)" >&2
  start=$SECONDS
  # Build to a temporary name so an interrupted build never leaves a half-written binary behind.
  go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "$ldflags" -o "$bin/.$name.$$.tmp" "$pkg"
  mv "$bin/.$name.$$.tmp" "$bin/$name"
  echo "$stamp" >"$bin/.$name.stamp"
  echo "built $name in $((SECONDS - start))s" >&2
done
echo "$bin"
