"""The Helm chart: lint, render, refuse bad values, install under restricted Pod Security, upgrade
its CRDs, and ship the same objects as the kustomize base."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

import generate
from testworld.cluster import CHART, REPO, LocalCluster


def rendered(cluster: LocalCluster, *args: str) -> list[dict]:
    out = cluster.helm("template", "adapterops", str(CHART), "-n", "adapterops-system", *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_helm_lint_passes(cluster: LocalCluster) -> None:
    proc = cluster.helm("lint", str(CHART), "--strict")
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


def test_chart_renders_crds_rbac_and_the_operator(cluster: LocalCluster) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in rendered(cluster)}
    assert ("CustomResourceDefinition", "finetunejobs.adapterops.io") in kinds
    assert ("CustomResourceDefinition", "modeldeployments.adapterops.io") in kinds
    assert ("CustomResourceDefinition", "servingprofiles.adapterops.io") in kinds
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Service"} <= {
        k for k, _ in kinds
    }


def test_rbac_has_no_wildcards(cluster: LocalCluster) -> None:
    roles = [d for d in rendered(cluster) if d["kind"] == "ClusterRole"]
    for rule in (r for role in roles for r in role["rules"]):
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


def test_watch_namespaces_use_rolebindings(cluster: LocalCluster) -> None:
    docs = rendered(cluster, "--set", "watchNamespaces={team-a,team-b}")
    rbac = [d for d in docs if d["apiVersion"].startswith("rbac.authorization.k8s.io/")]
    bindings = [(d["kind"], d["metadata"].get("namespace")) for d in rbac if d["kind"].endswith("Binding")]
    # Nothing is bound cluster-wide: the operator's rights hold in the watched namespaces only (and the
    # leader-election Lease in its own).
    assert sorted(bindings) == [
        ("RoleBinding", "adapterops-system"),
        ("RoleBinding", "team-a"),
        ("RoleBinding", "team-b"),
    ]
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ADAPTEROPS_NAMESPACES"] == "team-a,team-b"


def test_operator_pod_is_non_root_read_only_and_probed(cluster: LocalCluster) -> None:
    deploy = next(d for d in rendered(cluster) if d["kind"] == "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]


def test_two_replicas_roll_without_a_gap_and_a_drain_keeps_one(cluster: LocalCluster) -> None:
    docs = rendered(cluster)
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": deploy["spec"]["selector"]}
    lease_rules = next(d for d in docs if d["kind"] == "Role")["rules"]
    assert lease_rules == [  # the Lease, and the "<identity> became leader" Event on it
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    ]
    single = rendered(cluster, "--set", "replicas=1")
    assert not [d for d in single if d["kind"] == "PodDisruptionBudget"]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("gpuClasses.H100.pricePerHour=-1", "/gpuClasses/H100/pricePerHour"),
        ("logLevel=LOUD", "/logLevel"),
        ("watchNamespaces={Team_A}", "/watchNamespaces/0"),
        ("prometheusUrl=prometheus:9090", "/prometheusUrl"),
        ("metrics.port=70000", "/metrics/port"),
        ("unknownKey=1", "unknownKey"),
        ("containerUsers.nim.runAsUser=0", "/containerUsers/nim/runAsUser"),
        ("podVolumes.trialScratch=100GB", "/podVolumes/trialScratch"),
    ],
)
def test_values_schema_refuses_bad_values(cluster: LocalCluster, setting: str, message: str) -> None:
    proc = cluster.helm("template", "x", str(CHART), "--set", setting, check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_installed_operator_pod_passes_restricted_pod_security(cluster: LocalCluster, chart: str) -> None:
    ns = cluster.get("namespace", chart)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = cluster.get("pods", "-n", chart, "-l", "app.kubernetes.io/name=adapterops")["items"]
    replicas = cluster.get("deployment", "adapterops", "-n", chart)["spec"]["replicas"]
    assert len(pods) == replicas == 2, "the ReplicaSet's pods were not admitted"


def test_a_privileged_pod_is_refused_in_the_operator_namespace(cluster: LocalCluster, chart: str) -> None:
    """The namespace really enforces the profile the operator pod passes."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]},
    }
    proc = cluster.kubectl("apply", "--dry-run=server", "-n", chart, "-f", "-", input=yaml.safe_dump(pod), check=False)
    assert proc.returncode != 0 and "violates PodSecurity" in proc.stderr


def test_helm_upgrade_upgrades_the_crds_and_keeps_objects(cluster: LocalCluster, chart: str, tmp_path: Path) -> None:
    cluster.ensure_namespace("crd-upgrade")
    cluster.apply((REPO / "manifests/examples/finetunejob-nemotron-sweep.yaml").read_text(), "crd-upgrade")
    next_chart = tmp_path / "adapterops"
    shutil.copytree(CHART, next_chart)
    crd_file = next_chart / "files/crds/finetunejobs.adapterops.io.yaml"
    crd = yaml.safe_load(crd_file.read_text())
    spec_props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    spec_props["upgradeProbe"] = {"type": "string", "description": "Added by the next chart version."}
    crd_file.write_text(yaml.safe_dump(crd))
    try:
        cluster.helm("upgrade", "adapterops", str(next_chart), "-n", chart, "--wait")
        live = cluster.get("crd", "finetunejobs.adapterops.io")
        assert (
            "upgradeProbe"
            in live["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        )
        assert cluster.get("ftj", "-n", "crd-upgrade")["items"], "the upgrade lost existing FineTuneJobs"
    finally:
        cluster.helm("upgrade", "adapterops", str(CHART), "-n", chart, "--wait")
        cluster.kubectl("delete", "namespace", "crd-upgrade", "--wait=false")
    live = cluster.get("crd", "finetunejobs.adapterops.io")
    assert (
        "upgradeProbe"
        not in live["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    )


def test_kustomize_base_is_up_to_date_and_matches_the_chart(cluster: LocalCluster) -> None:
    assert generate.main(["--check", "base"]) == 0, "run `python hack/generate.py base` and commit the result"
    base = cluster.kubectl("kustomize", str(REPO / "manifests" / "base")).stdout
    base_objects = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(base) if d}
    chart_objects = {(d["kind"], d["metadata"]["name"]) for d in rendered(cluster)}
    assert base_objects - {("Namespace", "adapterops-system")} == chart_objects
