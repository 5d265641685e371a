"""AdapterOps' pods in a namespace that enforces the restricted Pod Security Standard
(`pod-security.kubernetes.io/enforce: restricted`), judged by the real PodSecurity admission plugin of the
local kube-apiserver (on by default: hack/cluster.sh enables kwokctl's kubeAdmission, the API server's
default admission plugins). Every pod kind is admitted (server-side dry run, so JobSet and PyTorchJob pods
are judged without their controllers), and the same pods without runAsNonRoot are refused; then a sweep
and a canary run there end to end.

The kubelet stand-in runs pod processes on this machine: it does not switch users, apply seccomp, drop
capabilities, bound emptyDirs or make a root filesystem read-only. What is checked here is admission;
tests/unit/test_pod_security.py checks the pods' settings themselves."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_finetune_e2e import condition, ftj, sweep, workspace
from test_modeldeployment_e2e import change, cond, deployment, fake_adapter, mdep
from test_modeldeployment_e2e import world as world  # the fixture: a PVC and the canary prompts

from adapterops.api.finetunejob import FineTuneJobSpec
from adapterops.api.modeldeployment import ModelDeploymentSpec
from adapterops.config import Config
from adapterops.deploy import builders as serving
from adapterops.finetune import builders as trials
from adapterops.finetune.plan import plan
from testworld.cluster import LocalCluster, OperatorProcess, wait_for
from testworld.kubelet import Kubelet

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
}
REFUSED = "violates PodSecurity"


@pytest.fixture
def restricted(cluster: LocalCluster, namespace: str) -> str:
    cluster.ensure_namespace(namespace, RESTRICTED)
    return namespace


def chart_config(cluster: LocalCluster, namespace: str, tmp_path: Path) -> Config:
    """The operator's configuration as the installed chart declares it (its Deployment's env, its GPU classes)."""
    pod = cluster.get("deployment", "adapterops", "-n", namespace)["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"] if "value" in e}
    volume = next(v for v in pod["volumes"] if v["name"] == "gpu-classes")
    classes = tmp_path / "gpu-classes.yaml"
    data = cluster.get("configmap", volume["configMap"]["name"], "-n", namespace)["data"]
    classes.write_text(data["gpu-classes.yaml"])
    return Config.from_env({**env, "ADAPTEROPS_GPU_CLASSES_FILE": str(classes)})


OWNER: dict[str, Any] = {"apiVersion": "adapterops.io/v1alpha1", "metadata": {"namespace": "x", "uid": "0123456789"}}


def trial_template(config: Config, build: Callable[..., dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    doc = sweep("kinds", **overrides)
    spec = FineTuneJobSpec.model_validate(doc["spec"])
    owner = {**OWNER, "kind": "FineTuneJob", "metadata": {**OWNER["metadata"], "name": "kinds"}}
    return build(owner, plan("kinds", spec)[0], spec, config)


def pod_kinds(config: Config) -> dict[str, dict[str, Any]]:
    """Each kind of pod AdapterOps creates, as the pod template its controller would create pods from."""
    multi = {"resources": {"gpuType": "H100", "gpusPerTrial": 8, "nodes": 2}}
    identity = {
        "backend": "nemo",
        "serviceAccountName": "trainer",
        "storageSecretRef": {"name": "s3"},
        "objective": {"metric": "judgeScore", "goal": "maximize"},
        "evaluation": {
            "dataset": "pvc://work/data/challenge.jsonl",
            "judge": {"endpoint": "http://j/v1", "model": "m", "apiKeySecretRef": {"name": "judge", "key": "k"}},
        },
    }
    jobset = trial_template(config, trials.trial_jobset, **multi)["spec"]["replicatedJobs"][0]["template"]["spec"]
    pytorch = trial_template(config, trials.trial_pytorchjob, **multi)["spec"]["pytorchReplicaSpecs"]
    kinds = {
        "trial-job": trial_template(config, trials.trial_job)["spec"]["template"],
        "trial-job-nemo-identity-secrets": trial_template(config, trials.trial_job, **identity)["spec"]["template"],
        "trial-jobset": jobset["template"],
        "trial-pytorchjob-master": pytorch["Master"]["template"],
        "trial-pytorchjob-worker": pytorch["Worker"]["template"],
    }
    owner = {**OWNER, "kind": "ModelDeployment", "metadata": {**OWNER["metadata"], "name": "kinds"}}
    for engine in ("nim", "vllm"):
        md = deployment("kinds", "pvc://work/adapters/v1", engine=engine)["spec"]
        md["baseModel"]["uri"] = "pvc://work/models/tiny"
        spec = ModelDeploymentSpec.model_validate(md)
        adapters = {"commerce": "pvc://work/adapters/v1"}
        built = serving.revision_deployment(owner, spec, adapters, "0123456789", 1, config)
        kinds[f"serving-{engine}"] = built["spec"]["template"]
    return kinds


def dry_run(cluster: LocalCluster, namespace: str, name: str, template: dict[str, Any]) -> str:
    """Create the template as a Pod, server-side dry run: admission decides, nothing is stored. '' if admitted."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": template["spec"]}
    proc = cluster.kubectl(
        "create", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump(pod), check=False
    )
    # Admitted with a warning ("would violate PodSecurity", the warn label) counts as refused too.
    return "" if proc.returncode == 0 and "PodSecurity" not in proc.stderr else proc.stderr.strip()


def without_run_as_non_root(template: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(template)
    spec = stripped["spec"]
    spec["securityContext"].pop("runAsNonRoot")
    for c in spec.get("initContainers", []) + spec["containers"]:
        c["securityContext"].pop("runAsNonRoot")
    return stripped


def test_every_pod_kind_is_admitted_where_restricted_is_enforced_and_refused_without_run_as_non_root(
    cluster: LocalCluster, chart: str, restricted: str, tmp_path: Path
) -> None:
    cluster.kubectl("create", "serviceaccount", "trainer", "-n", restricted)  # admission looks it up
    kinds = pod_kinds(chart_config(cluster, chart, tmp_path))
    refused = {kind: why for kind, template in kinds.items() if (why := dry_run(cluster, restricted, kind, template))}
    assert refused == {}, refused
    for kind, template in kinds.items():
        why = dry_run(cluster, restricted, kind, without_run_as_non_root(template))
        assert REFUSED in why and "runAsNonRoot" in why, f"{kind} without runAsNonRoot was admitted: {why!r}"


def pod_security_refusals(cluster: LocalCluster, namespace: str) -> list[str]:
    """What the controllers were refused (their FailedCreate Events name the PodSecurity violation)."""
    return [e["message"] for e in cluster.get("events", "-n", namespace)["items"] if REFUSED in e.get("message", "")]


def unless_refused(cluster: LocalCluster, namespace: str, done: Callable[[], Any], timeout: float, what: str) -> None:
    """Wait for `done`; a pod refused by PodSecurity ends the wait at once, and the test with the refusal."""
    wait_for(lambda: pod_security_refusals(cluster, namespace) or done(), timeout, what, interval=1)
    assert not pod_security_refusals(cluster, namespace)


def test_a_sweep_runs_to_its_champion_where_restricted_is_enforced(
    cluster: LocalCluster, operator: OperatorProcess, kubelet: Kubelet, restricted: str, tiny_model: Path
) -> None:
    workspace(cluster, restricted, tiny_model)
    two = {"maxTrials": 2, "parallelism": 2, "parameters": {"training.learningRate": {"values": [5e-4, 2e-3]}}}
    cluster.apply(sweep("strict", sweep=two), restricted)
    succeeded = lambda: condition(ftj(cluster, "strict", restricted), "Succeeded").get("status") == "True"  # noqa: E731
    unless_refused(cluster, restricted, succeeded, 600, "the sweep to succeed")
    status = ftj(cluster, "strict", restricted)["status"]
    assert status["trialCounts"]["succeeded"] == 2 and status["champion"]["trial"]
    pods = cluster.get("pods", "-n", restricted, "-l", "adapterops.io/finetunejob=strict")["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert pod["spec"]["automountServiceAccountToken"] is False
        # No token volume was added by the ServiceAccount admission plugin.
        assert not [v for v in pod["spec"]["volumes"] if "projected" in v]


def test_a_canary_is_promoted_where_restricted_is_enforced(cluster: LocalCluster, world: Path, restricted: str) -> None:
    md = deployment("strict", fake_adapter(world, "v1"), replicas=1)
    md["spec"]["canary"]["analysis"] = {"failureLimit": 1}  # no metrics: steps pass on their interval
    md["spec"]["canary"]["interval"] = "5s"
    cluster.apply(md, restricted)
    ready = lambda: cond(mdep(cluster, "strict", restricted), "Ready").get("status") == "True"  # noqa: E731
    unless_refused(cluster, restricted, ready, 120, "the first revision to be Ready")
    first = mdep(cluster, "strict", restricted)["status"]["stable"]["revision"]
    change(cluster, "strict", restricted, {"adapters": [{"name": "commerce", "uri": fake_adapter(world, "v2")}]})

    def promoted() -> bool:
        status = mdep(cluster, "strict", restricted)["status"]
        return bool(status["stable"]["revision"] != first and "canary" not in status)

    unless_refused(cluster, restricted, promoted, 180, "the canary to be promoted")
    assert mdep(cluster, "strict", restricted)["status"]["history"][0]["outcome"] == "Promoted"
    for pod in cluster.get("pods", "-n", restricted, "-l", "adapterops.io/modeldeployment=strict")["items"]:
        assert pod["spec"]["initContainers"][0]["securityContext"]["runAsNonRoot"] is True
        assert pod["spec"]["automountServiceAccountToken"] is False
