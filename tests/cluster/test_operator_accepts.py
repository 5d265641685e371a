"""The operator, running under the chart's ServiceAccount, validates what CEL cannot and reports it in
the Accepted condition with observedGeneration; it is live and exports metrics."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from testworld.cluster import REPO, LocalCluster, OperatorProcess, wait_for

PAPER_FTJ = yaml.safe_load((REPO / "manifests/examples/finetunejob-nemotron-sweep.yaml").read_text())
NIM_MDEP = yaml.safe_load((REPO / "manifests/examples/modeldeployment-nim.yaml").read_text())


def condition(cluster: LocalCluster, kind: str, name: str, namespace: str, type_: str) -> dict[str, Any] | None:
    obj = cluster.get(kind, name, "-n", namespace)
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), None)


def with_name(doc: dict[str, Any], name: str, namespace: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["metadata"] = {"name": name, "namespace": namespace}
    return out


def test_paper_sweep_is_accepted_with_its_plan(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    cluster.apply(with_name(PAPER_FTJ, "paper", namespace))
    cond = wait_for(lambda: condition(cluster, "ftj", "paper", namespace, "Accepted"), 30, "Accepted on paper")
    assert cond["status"] == "True" and cond["message"] == "sweep planned: 20 trials and a baseline"
    obj = cluster.get("ftj", "paper", "-n", namespace)
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"] == cond["observedGeneration"]
    cluster.kubectl("wait", "--for=condition=Accepted", "ftj/paper", "-n", namespace, "--timeout=10s")


def test_unknown_gpu_class_is_not_accepted_and_says_why(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    ftj = with_name(PAPER_FTJ, "a100", namespace)
    ftj["spec"]["resources"]["gpuType"] = "A100"
    cluster.apply(ftj)
    cond = wait_for(lambda: condition(cluster, "ftj", "a100", namespace, "Accepted"), 30, "Accepted on a100")
    assert cond["status"] == "False" and cond["reason"] == "UnknownGpuClass"
    assert cond["message"] == "spec.resources.gpuType: unknown GPU class 'A100'; this cluster has: B200, H100"
    events = wait_for(
        lambda: [e for e in cluster.get("events", "-n", namespace)["items"] if e["reason"] == "UnknownGpuClass"],
        20,
        "event",
    )
    assert events[0]["type"] == "Warning" and events[0]["involvedObject"]["name"] == "a100"


def test_grid_larger_than_max_trials_is_not_accepted(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    ftj = with_name(PAPER_FTJ, "too-big", namespace)
    ftj["spec"]["sweep"]["parameters"]["lora.rank"]["values"] = [8, 16, 32]
    cluster.apply(ftj)
    cond = wait_for(lambda: condition(cluster, "ftj", "too-big", namespace, "Accepted"), 30, "Accepted on too-big")
    assert cond["status"] == "False" and cond["reason"] == "InvalidSweep"
    assert "expands to 30 trials, more than spec.sweep.maxTrials (20)" in cond["message"]


def test_fixing_a_refused_spec_is_accepted_at_the_new_generation(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    mdep = with_name(NIM_MDEP, "serve", namespace)
    del mdep["spec"]["runtime"]["fromProfile"]  # the example's runtime comes from a profile: here, its own
    mdep["spec"]["runtime"]["gpuType"] = "L4"
    cluster.apply(mdep)
    cond = wait_for(lambda: condition(cluster, "mdep", "serve", namespace, "Accepted"), 30, "Accepted on serve")
    assert cond["status"] == "False" and "spec.runtime.gpuType: unknown GPU class 'L4'" in cond["message"]
    cluster.kubectl(
        "patch", "mdep", "serve", "-n", namespace, "--type=merge", "-p", '{"spec": {"runtime": {"gpuType": "B200"}}}'
    )
    cond = wait_for(
        lambda: (c := condition(cluster, "mdep", "serve", namespace, "Accepted")) and c["status"] == "True" and c,
        30,
        "Accepted=True after the fix",
    )
    assert cond["observedGeneration"] == 2


def test_operator_is_live_exports_metrics_and_is_never_forbidden(
    cluster: LocalCluster, operator: OperatorProcess
) -> None:
    assert operator.healthy()
    text = operator.metrics()
    assert "adapterops_reconcile_duration_seconds_count" in text
    assert "Forbidden" not in operator.log_path.read_text(), "the chart's RBAC lacks a permission the operator uses"
