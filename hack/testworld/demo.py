"""The local demo behind hack/demo.sh (the README's first command)."""

from __future__ import annotations

import sys

from testworld.cluster import REPO, LocalCluster, OperatorProcess

NAMESPACE = "ml-team"


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def main() -> int:
    banner("local GPU cluster (kwok nodes: 4x 8xH100, 2x 8xB200, 1 CPU node)")
    cluster = LocalCluster("adapterops").up()
    print(cluster.kubectl("get", "nodes", "-L", "nvidia.com/gpu.product", "-L", "nvidia.com/gpu.count").stdout)

    banner("helm install adapterops (CRDs, RBAC, operator Deployment, GPU classes)")
    cluster.install_chart()
    print(cluster.helm("list", "-n", "adapterops-system").stdout)

    banner("operator: python -m adapterops under the chart's ServiceAccount")
    operator = OperatorProcess(cluster).start()
    print(f"live on :{operator.health_port}/healthz, metrics on :{operator.metrics_port}/metrics")
    print(f"log: {operator.log_path}")
    try:
        banner(f"kubectl apply -f manifests/examples/ -n {NAMESPACE}")
        cluster.ensure_namespace(NAMESPACE)
        print(cluster.kubectl("apply", "-n", NAMESPACE, "-f", str(REPO / "manifests" / "examples")).stdout)
        for kind, name in (("ftj", "nemotron-commerce-sft"), ("mdep", "commerce-agent")):
            cluster.kubectl("wait", "--for=condition=Accepted", f"{kind}/{name}", "-n", NAMESPACE, "--timeout=60s")

        banner("kubectl get ftj,mdep")
        print(cluster.kubectl("get", "ftj,mdep", "-n", NAMESPACE, "-o", "wide").stdout)
        jsonpath = (
            '{range .items[*]}{.kind}/{.metadata.name}:{"\\n"}'
            '{range .status.conditions[*]}  {.type}={.status} ({.reason}) {.message}{"\\n"}{end}{end}'
        )
        print(cluster.kubectl("get", "ftj,mdep", "-n", NAMESPACE, "-o", f"jsonpath={jsonpath}").stdout)
    finally:
        operator.stop()
    banner("done")
    print(
        f"The cluster is still up:\n  export KUBECONFIG={cluster.kubeconfig}\n  kubectl get ftj,mdep -A\n"
        "Remove it with: hack/cluster.sh down"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
