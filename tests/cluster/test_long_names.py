"""Two objects with 60-character names that differ only in their last character, in one namespace, get
their own children: the real API server accepts every derived name, and no child is shared."""

from __future__ import annotations

from typing import Any

from testworld.cluster import LocalCluster, OperatorProcess, wait_for

PREFIX = "a" + "-long-tenant-name" * 3 + "-x" * 4  # 60 characters
TWINS = (PREFIX[:59] + "a", PREFIX[:59] + "b")


def finetunejob(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "adapterops.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "baseModel": {"name": "tiny", "uri": "/models/tiny"},
            "backend": "hf",  # any base model (nemo takes the families of its recipe table only)
            "dataset": {"train": "/data/train.jsonl"},
            "training": {"maxSteps": 10},
            "objective": {"metric": "validationLoss", "goal": "minimize"},
            "output": {"uri": "pvc://adapters/out"},
            "sweep": {"maxTrials": 2, "parallelism": 2, "parameters": {"training.seed": {"values": [1, 2]}}},
        },
    }


def modeldeployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "adapterops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"baseModel": {"name": "tiny-llama"}, "adapters": [{"name": "commerce", "uri": "s3://bucket/a"}]},
    }


def owned(cluster: LocalCluster, kind: str, namespace: str, uid: str) -> set[str]:
    """Names of the `kind` objects in `namespace` whose controller is the object with `uid`."""
    items = cluster.get(kind, "-n", namespace)["items"]
    return {
        o["metadata"]["name"]
        for o in items
        if any(ref.get("controller") and ref["uid"] == uid for ref in o["metadata"].get("ownerReferences", []))
    }


def children(cluster: LocalCluster, kinds: tuple[str, ...], namespace: str, uid: str, expected: int) -> set[str]:
    def all_there() -> set[str] | None:
        found = {f"{kind}/{name}" for kind in kinds for name in owned(cluster, kind, namespace, uid)}
        return found if len(found) >= expected else None

    return set(wait_for(all_there, 60, f"{expected} children of {uid}"))


def test_two_long_finetunejobs_get_distinct_trials_and_configmaps(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    uids = []
    for name in TWINS:
        cluster.apply(finetunejob(name), namespace)
        uids.append(cluster.get("ftj", name, "-n", namespace)["metadata"]["uid"])
    # Each: one trials ConfigMap and two trial Jobs.
    a, b = (children(cluster, ("configmaps", "jobs"), namespace, uid, 3) for uid in uids)
    assert len(a) == len(b) == 3 and not a & b, (a, b)
    for name in TWINS:
        status = cluster.get("ftj", name, "-n", namespace)["status"]
        accepted = next(c for c in status["conditions"] if c["type"] == "Accepted")
        assert accepted["status"] == "True", accepted


def test_two_long_modeldeployments_get_distinct_deployments_and_services(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    uids = []
    for name in TWINS:
        cluster.apply(modeldeployment(name), namespace)
        uids.append(cluster.get("mdep", name, "-n", namespace)["metadata"]["uid"])
    # Each: the stable Service, and the first revision's Deployment and Service.
    a, b = (children(cluster, ("deployments", "services"), namespace, uid, 3) for uid in uids)
    assert len(a) == len(b) == 3 and not a & b, (a, b)
    assert {f"services/{TWINS[0]}", f"services/{TWINS[1]}"} <= a | b  # the stable Services: the objects' names
