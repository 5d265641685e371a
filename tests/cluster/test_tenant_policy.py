"""The tenant policy and the aggregated roles on the real API server (docs/security.md).

A tenant is a ServiceAccount of namespace `tenant-a` bound there only to the built-in `edit` role (which
aggregates `<release>-edit`), acting with its own TokenRequest token. It tries every escape the policy
closes and is refused at admission, with the field, the value and the policy's allowance in the message;
the same tenant creates a compliant FineTuneJob, cannot write status, and a viewer can read but not create.

The session's release gets this module's policy values for the module (helm upgrade), and its own values
back afterwards.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testworld.cluster import CHART, LocalCluster, wait_for

RELEASE = "adapterops"
TENANT = "tenant-a"
QUEUED = "tenant-q"  # has a default queue
EXCLUDED = "tenant-platform"  # tenantPolicy.excludeNamespaces
ALLOWED_TOLERATION = "team-a.example.com/gpu"
POLICY: dict[str, Any] = {
    "priorityClassNames": ["ml-training"],
    "tolerationKeys": [ALLOWED_TOLERATION],
    "images": {"trainer": ["registry.team-a.example/trainers/"], "serving": ["nvcr.io/nim/"]},
    "serviceAccountNames": ["trainer"],
    "requireQueue": True,
    "defaultQueues": {QUEUED: "team-q-gpus"},
    "excludeNamespaces": [EXCLUDED],
}
# Before the module tightens it: the same, but AdapterOps' own trainer registry allowed and no queue
# required, so that an object admitted then is refused by the tightened policy (the grandfather test).
LOOSER = {**POLICY, "images": {**POLICY["images"], "trainer": ["ghcr.io/adapterops/"]}, "requireQueue": False}
OLD_IMAGE = "ghcr.io/adapterops/trainer-hf:0.1.0"


def finetunejob(name: str, **overrides: Any) -> dict[str, Any]:
    """A FineTuneJob compliant with POLICY; `overrides` merge into its spec (None removes a field)."""
    spec: dict[str, Any] = {
        "baseModel": {"name": "tiny", "uri": "pvc://models/tiny"},
        "backend": "hf",  # any base model (nemo takes the families of its recipe table only)
        "dataset": {"train": "pvc://data/train.jsonl"},
        "training": {"maxSteps": 10},
        "objective": {"metric": "validationLoss", "goal": "minimize"},
        "output": {"uri": "pvc://adapters/runs"},
        "image": "registry.team-a.example/trainers/hf:1.2",
        "serviceAccountName": "trainer",
        "resources": {
            "gpuType": "H100",
            "queueName": "team-a-gpus",
            "priorityClassName": "ml-training",
            "tolerations": [{"key": ALLOWED_TOLERATION, "operator": "Exists", "effect": "NoSchedule"}],
        },
    }
    return {
        "apiVersion": "adapterops.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": merge(spec, overrides),
    }


def servingprofile(name: str, *candidates: dict[str, Any]) -> dict[str, Any]:
    """A ServingProfile compliant with POLICY but for what `candidates` set (NIM on H100 by default)."""
    listed = list(candidates) or [{"gpuType": "H100"}]
    return {
        "apiVersion": "adapterops.io/v1alpha1",
        "kind": "ServingProfile",
        "metadata": {"name": name},
        "spec": {
            "baseModel": {"name": "tiny"},
            "runtime": {"image": "nvcr.io/nim/nvidia/llama-3.1-nemotron-nano-8b-v1:1.8"},
            "candidates": [{"engine": "nim", **c} for c in listed],
            "load": {"prompts": "configmap://prompts/p.jsonl", "requestsPerSecond": 5},
            "slo": {"latency": {"maxSeconds": 2}},
        },
    }


def modeldeployment(name: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "baseModel": {"name": "tiny"},
        # An image the test world's NIM profile table knows (conftest: chart value nimProfiles).
        "runtime": {"engine": "nim", "image": "nvcr.io/nim/nvidia/llama-3.1-nemotron-nano-8b-v1:1.8"},
        "adapters": [{"name": "a", "uri": "pvc://adapters/a"}],
    }
    return {
        "apiVersion": "adapterops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": merge(spec, overrides),
    }


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


class Kubectl:
    """kubectl under one identity (a kubeconfig)."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def __call__(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", *args],
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def create(self, obj: dict[str, Any], namespace: str, *flags: str) -> subprocess.CompletedProcess[str]:
        return self("create", "-n", namespace, *flags, "-f", "-", input=yaml.safe_dump(obj))


def install_policy(cluster: LocalCluster, values: dict[str, Any], policy: dict[str, Any]) -> None:
    cluster.install_chart(release=RELEASE, values={**values, "tenantPolicy": policy})
    # The API server reads the parameters through its own watch: in force once a probe says so.
    allowed = ", ".join(policy["images"]["trainer"])
    probe = finetunejob("probe", image="example.invalid/probe:1")

    def in_force() -> bool:
        out = cluster.kubectl(
            "create", "--dry-run=server", "-n", TENANT, "-f", "-", input=yaml.safe_dump(probe), check=False
        )
        return f"allows images starting with {allowed}" in out.stderr

    wait_for(in_force, 30, f"the tenant policy allowing trainer images {allowed} to be in force")


@pytest.fixture(scope="module")
def policy(cluster: LocalCluster, chart: str) -> Iterator[dict[str, Any]]:
    original = yaml.safe_load(cluster.helm("get", "values", RELEASE, "-n", chart, "-o", "yaml").stdout) or {}
    values = {k: v for k, v in original.items() if k != "tenantPolicy"}
    for ns in (TENANT, QUEUED, EXCLUDED):
        cluster.ensure_namespace(ns)
    cluster.kubectl("delete", "finetunejobs,modeldeployments", "--all", "-n", TENANT, "--wait=true")
    try:
        install_policy(cluster, values, LOOSER)
        # Suspended: an operator running in this session starts no trials for it.
        old = finetunejob("admitted-before", image=OLD_IMAGE, suspend=True, resources={"queueName": None})
        cluster.apply(old, TENANT)
        install_policy(cluster, values, POLICY)
        yield POLICY
    finally:
        cluster.kubectl("delete", "finetunejobs,modeldeployments", "--all", "-n", TENANT, "--wait=false")
        cluster.install_chart(release=RELEASE, values=original)


@pytest.fixture(scope="module")
def identities(
    cluster: LocalCluster, policy: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Kubectl]:
    """alice holds `edit` in tenant-a, bob `view`: RoleBindings to the built-in roles only."""
    home = tmp_path_factory.mktemp("tenants")
    out = {}
    for account, role in (("alice", "edit"), ("bob", "view")):
        cluster.kubectl("create", "serviceaccount", account, "-n", TENANT, check=False)
        cluster.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": f"{account}-{role}", "namespace": TENANT},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": TENANT}],
            }
        )
        out[account] = Kubectl(cluster.service_account_kubeconfig(account, TENANT, home / f"{account}.kubeconfig"))

    # The clusterrole-aggregation controller folds <release>-edit and -view into the built-in roles.
    def aggregated() -> bool:
        return all(
            any("finetunejobs" in r.get("resources", []) for r in cluster.get("clusterrole", role).get("rules") or [])
            for role in ("edit", "view", "admin")
        )

    wait_for(aggregated, 60, "the built-in admin, edit and view roles to aggregate AdapterOps' kinds")
    return out


def refused(proc: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert proc.returncode != 0, f"admitted, expected a refusal naming {phrases}: {proc.stdout}"
    assert "Forbidden" in proc.stderr and f"ValidatingAdmissionPolicy '{RELEASE}-tenant-policy'" in proc.stderr
    for phrase in phrases:
        assert phrase in proc.stderr, proc.stderr


ESCAPES = [
    pytest.param(
        finetunejob("system-priority", resources={"priorityClassName": "system-node-critical"}),
        "spec.resources.priorityClassName: 'system-node-critical' is not allowed",
        "(tenantPolicy.priorityClassNames) allows ml-training",
        id="system-priority-class",
    ),
    pytest.param(
        finetunejob("keyless-exists", resources={"tolerations": [{"operator": "Exists"}]}),
        "spec.resources.tolerations[0]: a toleration without a key (operator Exists) would tolerate every taint",
        f"(tenantPolicy.tolerationKeys) allows the keys {ALLOWED_TOLERATION}",
        id="keyless-exists-toleration",
    ),
    pytest.param(
        finetunejob(
            "other-pool",
            resources={
                "tolerations": [
                    {"key": ALLOWED_TOLERATION, "operator": "Exists"},
                    {"key": "team-b.example.com/gpu", "operator": "Exists"},
                ]
            },
        ),
        "spec.resources.tolerations[1]: key 'team-b.example.com/gpu' is not allowed",
        f"(tenantPolicy.tolerationKeys) allows the keys {ALLOWED_TOLERATION}",
        id="another-pools-toleration",
    ),
    pytest.param(
        finetunejob("foreign-trainer", image="docker.io/attacker/miner:latest"),
        "spec.image: 'docker.io/attacker/miner:latest' is not allowed",
        "(tenantPolicy.images.trainer) allows images starting with registry.team-a.example/trainers/",
        id="foreign-trainer-image",
    ),
    pytest.param(
        # A prefix match, not a substring one: the allowed registry's name inside another's is refused.
        finetunejob("lookalike-trainer", image="registry.team-a.example.attacker.io/trainers/hf:1"),
        "spec.image: 'registry.team-a.example.attacker.io/trainers/hf:1' is not allowed",
        "(tenantPolicy.images.trainer)",
        id="lookalike-trainer-registry",
    ),
    pytest.param(
        modeldeployment("foreign-serving", runtime={"image": "docker.io/attacker/server:1"}),
        "spec.runtime.image: 'docker.io/attacker/server:1' is not allowed",
        "(tenantPolicy.images.serving) allows images starting with nvcr.io/nim/",
        id="foreign-serving-image",
    ),
    pytest.param(
        # A ServingProfile runs serving pods of each candidate's image: each one is a serving image.
        servingprofile(
            "foreign-candidate", {"gpuType": "H100"}, {"gpuType": "B200", "image": "docker.io/attacker/server:1"}
        ),
        "spec.candidates[1].image: 'docker.io/attacker/server:1' is not allowed",
        "(tenantPolicy.images.serving) allows images starting with nvcr.io/nim/",
        id="foreign-candidate-image",
    ),
    pytest.param(
        finetunejob("foreign-account", serviceAccountName="ci-deployer"),
        "spec.serviceAccountName: 'ci-deployer' is not allowed",
        "(tenantPolicy.serviceAccountNames) allows trainer",
        id="foreign-service-account",
    ),
    pytest.param(
        finetunejob("no-queue", resources={"queueName": None}),
        "spec.resources.queueName: required",
        "(tenantPolicy.requireQueue)",
        id="missing-queue",
    ),
]


@pytest.mark.parametrize(("obj", "field_and_value", "allowance"), ESCAPES)
def test_a_tenant_is_refused_each_escape_at_admission(
    cluster: LocalCluster, identities: dict[str, Kubectl], obj: dict[str, Any], field_and_value: str, allowance: str
) -> None:
    proc = identities["alice"].create(obj, TENANT)
    refused(proc, field_and_value, allowance)
    kind, name = obj["kind"].lower(), obj["metadata"]["name"]
    assert cluster.kubectl("get", kind, name, "-n", TENANT, check=False).returncode != 0, "stored although refused"


def test_a_tenant_creates_a_compliant_finetunejob_and_passes_admission_with_a_compliant_modeldeployment(
    cluster: LocalCluster, identities: dict[str, Kubectl]
) -> None:
    alice = identities["alice"]
    job = finetunejob("compliant")
    proc = alice.create(job, TENANT)
    assert proc.returncode == 0, proc.stderr
    live = cluster.get("finetunejob", "compliant", "-n", TENANT)
    assert live["spec"] == merge(live["spec"], job["spec"])  # stored as written
    # Server-side dry run: the whole admission chain, policy included, but no serving pods to start.
    proc = alice.create(modeldeployment("compliant"), TENANT, "--dry-run=server")
    assert proc.returncode == 0, proc.stderr
    candidate = {"gpuType": "B200", "image": "nvcr.io/nim/nvidia/llama-3.1-nemotron-nano-8b-v1:2.0.6"}
    proc = alice.create(servingprofile("compliant", {"gpuType": "H100"}, candidate), TENANT, "--dry-run=server")
    assert proc.returncode == 0, proc.stderr


def test_a_tenant_cannot_write_status(cluster: LocalCluster, identities: dict[str, Kubectl]) -> None:
    alice = identities["alice"]
    name = "status-probe"
    assert alice.create(finetunejob(name), TENANT).returncode == 0
    fake = json.dumps({"status": {"state": "Succeeded", "progress": "20/20"}})
    proc = alice("patch", "finetunejob", name, "-n", TENANT, "--subresource=status", "--type=merge", "-p", fake)
    # kubectl reads the subresource before it patches: refused at that read already.
    assert proc.returncode != 0 and 'resource "finetunejobs/status"' in proc.stderr, proc.stderr
    for kind in ("finetunejobs", "modeldeployments", "servingprofiles"):
        for verb in ("update", "patch"):
            can = alice("auth", "can-i", verb, f"{kind}.adapterops.io", "--subresource=status", "-n", TENANT)
            assert can.stdout.strip() == "no", (kind, verb, can.stdout, can.stderr)
    # Through the main resource the status stanza is ignored (the CRDs' status subresource).
    assert alice("patch", "finetunejob", name, "-n", TENANT, "--type=merge", "-p", fake).returncode == 0
    assert (cluster.get("finetunejob", name, "-n", TENANT).get("status") or {}).get("progress") != "20/20"


def test_a_viewer_reads_but_cannot_create(identities: dict[str, Kubectl]) -> None:
    bob = identities["bob"]
    for kind in ("finetunejobs", "modeldeployments", "servingprofiles"):
        proc = bob("get", kind, "-n", TENANT, "-o", "name")
        assert proc.returncode == 0, proc.stderr
    proc = bob.create(finetunejob("by-viewer"), TENANT)
    assert proc.returncode != 0 and 'cannot create resource "finetunejobs"' in proc.stderr, proc.stderr
    proc = bob("delete", "finetunejob", "admitted-before", "-n", TENANT)
    assert proc.returncode != 0 and 'cannot delete resource "finetunejobs"' in proc.stderr, proc.stderr


def test_an_object_admitted_before_the_policy_tightened_stays_editable_but_cannot_change_to_a_refused_value(
    cluster: LocalCluster, identities: dict[str, Kubectl]
) -> None:
    alice = identities["alice"]
    name = "admitted-before"  # image from ghcr.io/adapterops/ and no queue: both refused now
    for patch in ({"spec": {"sweep": {"parallelism": 2}}}, {"metadata": {"labels": {"team": "a"}}}):
        proc = alice("patch", "finetunejob", name, "-n", TENANT, "--type=merge", "-p", json.dumps(patch))
        assert proc.returncode == 0, (patch, proc.stderr)
    proc = alice("patch", "finetunejob", name, "-n", TENANT, "--type=merge", "-p", '{"spec":{"image":"evil.io/x:1"}}')
    refused(proc, "spec.image: 'evil.io/x:1' is not allowed")
    assert cluster.get("finetunejob", name, "-n", TENANT)["spec"]["image"] == OLD_IMAGE


def test_a_queue_once_named_cannot_be_removed(identities: dict[str, Kubectl]) -> None:
    alice = identities["alice"]
    assert alice.create(finetunejob("keeps-queue"), TENANT).returncode == 0
    remove = '[{"op": "remove", "path": "/spec/resources/queueName"}]'
    proc = alice("patch", "finetunejob", "keeps-queue", "-n", TENANT, "--type=json", "-p", remove)
    refused(proc, "spec.resources.queueName: required", f"namespace '{TENANT}' has no default queue")


def test_a_namespace_default_queue_stands_in_for_a_missing_queue_on_both_sides(
    cluster: LocalCluster, chart: str, policy: dict[str, Any]
) -> None:
    obj = finetunejob("default-queued", resources={"queueName": None})
    proc = cluster.kubectl(
        "create", "--dry-run=server", "-n", QUEUED, "-f", "-", input=yaml.safe_dump(obj), check=False
    )
    assert proc.returncode == 0, proc.stderr
    # The operator gets the same map, and puts such a job's trials in that queue (tests/unit/test_default_queue.py).
    deploy = cluster.get("deployment", RELEASE, "-n", chart)
    env = {e["name"]: e.get("value") for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert json.loads(env["ADAPTEROPS_DEFAULT_QUEUES"]) == POLICY["defaultQueues"]


def test_an_excluded_namespace_is_not_checked(cluster: LocalCluster, policy: dict[str, Any]) -> None:
    obj = finetunejob("platform", resources={"priorityClassName": "system-cluster-critical"})
    proc = cluster.kubectl(
        "create", "--dry-run=server", "-n", EXCLUDED, "-f", "-", input=yaml.safe_dump(obj), check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_without_its_parameters_the_policy_refuses_everything(
    cluster: LocalCluster, chart: str, policy: dict[str, Any]
) -> None:
    name = f"{RELEASE}-tenant-policy"
    saved = cluster.get("configmap", name, "-n", chart)
    saved["metadata"] = {
        k: saved["metadata"][k] for k in ("name", "namespace", "labels", "annotations") if k in saved["metadata"]
    }
    compliant = yaml.safe_dump(finetunejob("while-missing"))

    def dry_run() -> subprocess.CompletedProcess[str]:
        return cluster.kubectl("create", "--dry-run=server", "-n", TENANT, "-f", "-", input=compliant, check=False)

    cluster.kubectl("delete", "configmap", name, "-n", chart)
    try:
        proc = wait_for(
            lambda: (p := dry_run()).returncode != 0 and p, 30, "the policy to refuse without its ConfigMap"
        )
        assert f"ValidatingAdmissionPolicy '{name}'" in proc.stderr, proc.stderr
    finally:
        cluster.apply(saved)
    wait_for(lambda: dry_run().returncode == 0, 30, "the policy to admit again once its ConfigMap is back")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('tenantPolicy.priorityClassNames=["system-node-critical"]', "/tenantPolicy/priorityClassNames/0"),
        ('tenantPolicy.images.trainer=["ghcr.io/adapterops"]', "/tenantPolicy/images/trainer/0"),
        ('tenantPolicy.validationActions=["Deny","Warn"]', "/tenantPolicy/validationActions"),
        ('tenantPolicy.defaultQueues={"Team_A":"q"}', "invalid propertyName 'Team_A'"),
    ],
)
def test_values_schema_refuses_unsafe_policy_values(cluster: LocalCluster, setting: str, message: str) -> None:
    proc = cluster.helm("template", "x", str(CHART), "--set-json", setting, check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
