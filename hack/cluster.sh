#!/usr/bin/env bash
# The project's local GPU cluster: a real control plane (etcd, kube-apiserver with RBAC and admission,
# kube-controller-manager, kube-scheduler) started by kwokctl from binaries built by hack/build-tools.sh,
# and kwok playing the kubelets of fake GPU nodes. Everything listens on loopback.
#
#   hack/cluster.sh up      bring the cluster up (idempotent), print how to use it
#   hack/cluster.sh down    stop every process and delete the cluster's state
#   hack/cluster.sh kubeconfig   print the kubeconfig path
#   hack/cluster.sh crash COMPONENT...   kill -9 components (etcd, kube-apiserver, ...): a crash, no cleanup
#   hack/cluster.sh start   start every component that is not running (what a kubelet does for static
#                           pods) and wait until the API server serves; the state in etcd is kept
#
# Environment: ADAPTEROPS_CLUSTER (name, default "adapterops"), ADAPTEROPS_H100_NODES (4),
# ADAPTEROPS_B200_NODES (2), ADAPTEROPS_CPU_NODES (1), ADAPTEROPS_KWOK_POD_COMPLETE (a kwok Stage file
# replacing kwok's pod-complete stage; read when the cluster is created), ADAPTEROPS_AUDIT_POLICY (an audit
# policy file: the API server logs to $KWOK_WORKDIR/clusters/NAME/logs/audit.log), ADAPTEROPS_KCM_API_QPS
# (kube-controller-manager's client rate, burst twice that; its default 20/30 caps how fast Jobs get pods).
#
# Addresses: node IP 127.0.0.1, pod IPs from 127.1.0.0/16, Service cluster IPs from 127.2.0.0/16:
# nothing in the project connects to any address outside 127.0.0.0/8. Pods labelled
# kwok.adapterops.io/kubelet=harness are left alone by kwok so that a test harness can play their
# kubelet (run the real process on the pod's loopback IP and write the pod status).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="${ADAPTEROPS_CLUSTER:-adapterops}"
state="$root/.tools/clusters"
kubeconfig="$state/$name.kubeconfig"
export KWOK_WORKDIR="${KWOK_WORKDIR:-$root/.tools/kwok}"
# -mod=readonly: `go list` and `go mod download` below read hack/tools' go.mod and go.sum, never rewrite them
# (a missing or different checksum is an error, as in hack/build-tools.sh).
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly

bin="$("$root/hack/build-tools.sh")"
gateway_api_version=v1.6.3
kwokctl="$bin/kwokctl"

kcm_rate() {
  if [[ -n "${ADAPTEROPS_KCM_API_QPS:-}" ]]; then
    printf '  - key: kube-api-qps\n    value: "%s"\n  - key: kube-api-burst\n    value: "%s"\n' \
      "$ADAPTEROPS_KCM_API_QPS" "$((ADAPTEROPS_KCM_API_QPS * 2))"
  fi
}

kwok_config() {
  local kwok_dir
  kwok_dir="$(cd "$root/hack/tools" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
  cat <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeApiserverBinary: $bin/kube-apiserver
  kubeControllerManagerBinary: $bin/kube-controller-manager
  kubeSchedulerBinary: $bin/kube-scheduler
  kwokControllerBinary: $bin/kwok
  etcdBinary: $bin/etcd
  kubectlBinary: $(command -v kubectl)
  kubeAuthorization: true
  kubeAdmission: true
  securePort: true
  nodeLeaseDurationSeconds: 40
${ADAPTEROPS_AUDIT_POLICY:+  kubeAuditPolicy: $ADAPTEROPS_AUDIT_POLICY}
componentsPatches:
- name: kube-apiserver
  extraArgs:
  - key: service-cluster-ip-range
    value: 127.2.0.0/16
  - key: advertise-address
    value: 127.0.0.1
- name: kube-controller-manager
  extraArgs:
  - key: service-cluster-ip-range
    value: 127.2.0.0/16
  # One instance of each controller, and nothing here restarts one that exits: they do not elect a leader
  # (one that cannot renew its lease through an API server outage exits, and the cluster would stall).
  - key: leader-elect
    value: "false"
$(kcm_rate)
- name: kube-scheduler
  extraArgs:
  - key: leader-elect
    value: "false"
---
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  cidr: 127.1.0.0/16
  nodeIP: 127.0.0.1
  disregardStatusWithLabelSelector: kwok.adapterops.io/kubelet=harness
  # kwok's defaults, spelled out (a KwokConfiguration document replaces them), with more parallelism
  # for the benchmark's hundreds of nodes.
  podPlayStageParallelism: 16
  nodePlayStageParallelism: 16
  nodeLeaseParallelism: 16
  podsOnNodeSyncParallelism: 1
  enablePodsOnNodeSyncListPager: true
  enablePodsOnNodeSyncStreamWatch: false
EOF
  # kwok's own stage definitions at the pinned version: nodes become Ready and heartbeat,
  # pods start at once and pods owned by Jobs complete.
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"
    if [[ "$f" == pod/fast/pod-complete.yaml && -n "${ADAPTEROPS_KWOK_POD_COMPLETE:-}" ]]; then
      cat "$ADAPTEROPS_KWOK_POD_COMPLETE"  # e.g. the benchmark's trial pods that finish with a result
    else
      cat "$kwok_dir/kustomize/stage/$f"
    fi
  done
}

gpu_node() { # name product gpus memGiB
  cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $1
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    type: kwok
    kubernetes.io/hostname: $1
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    node.kubernetes.io/instance-type: $5
    nvidia.com/gpu.present: "true"
    nvidia.com/gpu.product: $2
    nvidia.com/gpu.count: "$3"
    nvidia.com/gpu.memory: "$4"
spec:
  taints:
  - key: nvidia.com/gpu
    value: present
    effect: NoSchedule
status:
  addresses: [{type: InternalIP, address: 127.0.0.1}, {type: Hostname, address: $1}]
  allocatable: {cpu: "$6", memory: "$7", ephemeral-storage: 28Ti, nvidia.com/gpu: "$3", pods: "110"}
  capacity: {cpu: "$6", memory: "$7", ephemeral-storage: 28Ti, nvidia.com/gpu: "$3", pods: "110"}
EOF
}

cpu_node() {
  cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $1
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    type: kwok
    kubernetes.io/hostname: $1
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    node.kubernetes.io/instance-type: m7i.4xlarge
status:
  addresses: [{type: InternalIP, address: 127.0.0.1}, {type: Hostname, address: $1}]
  allocatable: {cpu: "16", memory: 64Gi, pods: "110"}
  capacity: {cpu: "16", memory: 64Gi, pods: "110"}
EOF
}

nodes() {
  local i
  for ((i = 0; i < ${ADAPTEROPS_H100_NODES:-4}; i++)); do
    gpu_node "gpu-h100-$i" NVIDIA-H100-80GB-HBM3 8 81559 p5.48xlarge 192 2000Gi
  done
  for ((i = 0; i < ${ADAPTEROPS_B200_NODES:-2}; i++)); do
    gpu_node "gpu-b200-$i" NVIDIA-B200 8 183359 p6-b200.48xlarge 192 2000Gi
  done
  for ((i = 0; i < ${ADAPTEROPS_CPU_NODES:-1}; i++)); do
    cpu_node "cpu-$i"
  done
}

up() {
  mkdir -p "$state"
  if "$kwokctl" get clusters 2>/dev/null | grep -qx "$name"; then
    # Idempotent: restart stopped components of an existing cluster.
    "$kwokctl" start cluster --name "$name" --timeout 120s >&2
  else
    local cfg="$state/$name.kwok.yaml"
    kwok_config >"$cfg"
    rm -f "$kubeconfig"
    "$kwokctl" create cluster --name "$name" --config "$cfg" --kubeconfig "$kubeconfig" \
      --wait 120s --timeout 180s >&2
  fi
  "$kwokctl" get kubeconfig --name "$name" >"$kubeconfig"
  nodes | kubectl --kubeconfig "$kubeconfig" apply -f - >/dev/null
  # Gateway API's standard CRDs (HTTPRoute weights split canary traffic), from the pinned module.
  local gw_dir
  gw_dir="$(cd "$root/hack/tools" && go mod download -json "sigs.k8s.io/gateway-api@$gateway_api_version" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  kubectl --kubeconfig "$kubeconfig" apply --server-side -f "$gw_dir/config/crd/standard/" >/dev/null
  kubectl --kubeconfig "$kubeconfig" wait --for=condition=Ready node --all --timeout=600s >/dev/null
  echo "Cluster '$name' is up: $(kubectl --kubeconfig "$kubeconfig" get nodes --no-headers | wc -l) nodes." >&2
  echo "  export KUBECONFIG=$kubeconfig" >&2
  echo "  kubectl get nodes -L nvidia.com/gpu.product" >&2
}

down() {
  if "$kwokctl" get clusters 2>/dev/null | grep -qx "$name"; then
    "$kwokctl" delete cluster --name "$name" >&2
  fi
  rm -f "$kubeconfig" "$state/$name.kwok.yaml"
  echo "Cluster '$name' is down." >&2
}

pids="$KWOK_WORKDIR/clusters/$name/pids"

alive() { # pid: running, not a zombie (PID 1 here may be slow to reap, and kill -0 succeeds on a zombie)
  [[ -r "/proc/$1/stat" ]] && [[ "$(awk '{print $3}' "/proc/$1/stat")" != Z ]]
}

crash() {
  local component pid
  for component in "$@"; do
    [[ -f "$pids/$component.pid" ]] || { echo "no running component '$component' in cluster '$name'" >&2; exit 1; }
    pid="$(cat "$pids/$component.pid")"
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pids/$component.pid"  # kwokctl starts a component whose pid file is gone
  done
}

start() {
  local f pid
  for f in "$pids"/*.pid; do
    [[ -e "$f" ]] || continue
    pid="$(cat "$f")"
    alive "$pid" || rm -f "$f"  # exited on its own (e.g. a controller that lost its lease): start it again
  done
  "$kwokctl" start cluster --name "$name" --timeout 120s >&2
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  kubeconfig) echo "$kubeconfig" ;;
  crash) shift; crash "$@" ;;
  start) start ;;
  *) echo "usage: $0 up|down|kubeconfig|crash COMPONENT...|start" >&2; exit 2 ;;
esac
