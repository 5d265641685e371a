"""The RBAC audit: what the operator's ServiceAccount may do, asked of the API server with its own token
(`kubectl auth can-i`), against the table of docs/security.md, which gives every rule with its reason.

The rights of a ServiceAccount that nobody bound (discovery, self-reviews) are subtracted: what remains
is what AdapterOps grants, and it must equal the table row for row: no wildcard, nothing undocumented,
nothing documented that the chart no longer grants.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from testworld.cluster import CHART, REPO, LocalCluster

DOC = REPO / "docs" / "security.md"
MARKER = "<!-- rbac-table"
WATCHED, OWN = "watched namespaces", "operator namespace"
RELEASE = "adapterops"

Rule = tuple[str, str, str]  # (API group, resource[/subresource], verb)


def documented() -> dict[str, set[Rule]]:
    """The table of docs/security.md: scope -> rules."""
    _, found, rest = DOC.read_text().partition(MARKER)
    assert found, f"{DOC} has no table after {MARKER!r}"
    rows = [line for line in rest.splitlines()[1:] if line.startswith("|")]
    table: dict[str, set[Rule]] = {WATCHED: set(), OWN: set()}
    for row in rows[2:]:  # header, separator
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        assert len(cells) == 5, row
        scope, group, resources, verbs, why = cells
        assert scope in table, f"unknown scope {scope!r} in {row}"
        assert why, f"a rule without its reason: {row}"
        for resource in resources.split(","):
            for verb in verbs.split(","):
                table[scope].add(("" if group == "core" else group, resource.strip(), verb.strip()))
    return table


def kubectl_as(kubeconfig: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", *args],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
    )


def can_i_list(kubeconfig: Path, namespace: str) -> set[Rule]:
    """`kubectl auth can-i --list` in `namespace`, one (group, resource, verb) per granted verb. Its table
    is column-aligned under the header; non-resource URLs (discovery, health) are left out."""
    proc = kubectl_as(kubeconfig, "auth", "can-i", "--list", "-n", namespace)
    assert proc.returncode == 0, proc.stderr
    header, *lines = proc.stdout.splitlines()
    starts = [header.index(h) for h in ("Resources", "Non-Resource URLs", "Resource Names", "Verbs")]
    rules: set[Rule] = set()
    for line in lines:
        resource = line[starts[0] : starts[1]].strip()
        if not resource:
            continue
        names = line[starts[2] : starts[3]].strip()
        assert names == "[]", f"a rule limited to resource names is not in the audit's model: {line}"
        base, _, sub = resource.partition("/")
        name, _, group = base.partition(".")
        for verb in line[starts[3] :].strip().strip("[]").split():
            rules.add((group, f"{name}/{sub}" if sub else name, verb))
    return rules


def can_i(kubeconfig: Path, rule: Rule, namespace: str = "") -> bool:
    """A SelfSubjectAccessReview (what `kubectl auth can-i` sends; namespace "" = all namespaces), sent
    directly: kubectl sends a kind it cannot discover (JobSet, PyTorchJob here) with an empty group."""
    group, resource, verb = rule
    name, _, sub = resource.partition("/")
    attributes = {"group": group, "resource": name, "subresource": sub, "verb": verb, "namespace": namespace}
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }
    proc = kubectl_as(kubeconfig, "create", "--validate=false", "-o", "json", "-f", "-", input=json.dumps(review))
    assert proc.returncode == 0, proc.stderr
    return bool(json.loads(proc.stdout)["status"].get("allowed"))


def wildcards(rules: set[Rule]) -> set[Rule]:
    return {r for r in rules if any("*" in part for part in r)}


@pytest.fixture(scope="module")
def baseline(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> set[Rule]:
    """What any ServiceAccount may do, bound to nothing."""
    cluster.ensure_namespace("rbac-audit-baseline")
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", "rbac-audit-baseline", check=False)
    path = tmp_path_factory.mktemp("audit") / "nobody.kubeconfig"
    kubeconfig = cluster.service_account_kubeconfig("nobody", "rbac-audit-baseline", path)
    return can_i_list(kubeconfig, "rbac-audit-baseline")


@pytest.fixture(scope="module")
def operator_kubeconfig(cluster: LocalCluster, chart: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    account = cluster.get("deployment", RELEASE, "-n", chart)["spec"]["template"]["spec"]["serviceAccountName"]
    path = tmp_path_factory.mktemp("audit") / "operator.kubeconfig"
    return cluster.service_account_kubeconfig(account, chart, path)


def test_the_documented_table_is_well_formed() -> None:
    table = documented()
    assert table[WATCHED] and table[OWN]
    assert not wildcards(table[WATCHED] | table[OWN])


def test_in_a_watched_namespace_the_operator_holds_exactly_the_documented_rules(
    operator_kubeconfig: Path, baseline: set[Rule], namespace: str
) -> None:
    granted = can_i_list(operator_kubeconfig, namespace) - baseline
    assert not wildcards(granted), wildcards(granted)
    doc = documented()[WATCHED]
    assert granted == doc, (
        f"granted, not in docs/security.md: {granted - doc}; documented, not granted: {doc - granted}"
    )


def test_in_its_own_namespace_the_operator_holds_the_documented_rules_and_the_lease(
    operator_kubeconfig: Path, baseline: set[Rule], chart: str
) -> None:
    granted = can_i_list(operator_kubeconfig, chart) - baseline
    doc = documented()
    assert granted == doc[WATCHED] | doc[OWN], granted ^ (doc[WATCHED] | doc[OWN])


def test_cluster_wide_the_namespaced_rules_hold_everywhere_and_nothing_else(operator_kubeconfig: Path) -> None:
    """Without watchNamespaces the ClusterRole is bound cluster-wide: every documented namespaced rule holds
    in all namespaces, the Lease only in the operator's own, and nothing cluster-scoped or policy-changing."""
    doc = documented()
    assert {r for r in doc[WATCHED] if not can_i(operator_kubeconfig, r)} == set()
    assert {r for r in doc[OWN] - doc[WATCHED] if can_i(operator_kubeconfig, r)} == set()
    never: list[Rule] = [
        ("", "nodes", "list"),
        ("", "namespaces", "update"),
        ("", "secrets", "list"),
        ("", "pods", "create"),
        ("", "configmaps", "update"),  # would rewrite the tenant policy's parameters
        ("rbac.authorization.k8s.io", "clusterrolebindings", "create"),
        ("rbac.authorization.k8s.io", "roles", "escalate"),
        ("admissionregistration.k8s.io", "validatingadmissionpolicies", "update"),
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings", "delete"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "update"),
        ("adapterops.io", "finetunejobs", "create"),
        ("adapterops.io", "modeldeployments", "update"),
        ("", "serviceaccounts/token", "create"),
    ]
    assert [r for r in never if can_i(operator_kubeconfig, r)] == []


def test_no_adapterops_role_has_a_wildcard_or_a_status_right_for_tenants(cluster: LocalCluster, chart: str) -> None:
    selector = "app.kubernetes.io/part-of=adapterops"
    roles = cluster.get("clusterroles", "-l", selector)["items"] + cluster.get("roles", "-A", "-l", selector)["items"]
    names = {r["metadata"]["name"] for r in roles}
    assert {RELEASE, f"{RELEASE}-edit", f"{RELEASE}-view", f"{RELEASE}-leader-election"} <= names, names
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert not [v for v in rule[field] if "*" in v], (role["metadata"]["name"], rule)
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), (role["metadata"]["name"], rule)
    for tenant_role in (f"{RELEASE}-edit", f"{RELEASE}-view"):
        role = next(r for r in roles if r["metadata"]["name"] == tenant_role)
        assert not [res for rule in role["rules"] for res in rule["resources"] if res.endswith("/status")]


@pytest.fixture
def namespaced_release(cluster: LocalCluster, namespace: str) -> Iterator[tuple[str, str]]:
    """The operator's identity and rights as a second release renders them with watchNamespaces: [namespace]."""
    system, release = "rbac-audit-system", "audit"
    cluster.ensure_namespace(system)
    values = f'watchNamespaces=["{namespace}"]'
    rendered = cluster.helm("template", release, str(CHART), "-n", system, "--set-json", values).stdout
    operator = f"{release}-{RELEASE}"
    rbac = {"ServiceAccount", "Role", "RoleBinding", "ClusterRoleBinding"}
    docs = [
        d
        for d in yaml.safe_load_all(rendered)
        if d and (d["kind"] in rbac or (d["kind"] == "ClusterRole" and d["metadata"]["name"] == operator))
    ]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    yield system, operator
    cluster.kubectl("delete", "--ignore-not-found", "-f", "-", input=yaml.safe_dump_all(docs))


def test_with_watch_namespaces_the_rules_hold_there_only(
    cluster: LocalCluster,
    namespaced_release: tuple[str, str],
    namespace: str,
    baseline: set[Rule],
    tmp_path: Path,
) -> None:
    system, account = namespaced_release
    kubeconfig = cluster.service_account_kubeconfig(account, system, tmp_path / "audit.kubeconfig")
    doc = documented()
    assert can_i_list(kubeconfig, namespace) - baseline == doc[WATCHED]
    assert can_i_list(kubeconfig, system) - baseline == doc[OWN]
    assert can_i_list(kubeconfig, "default") - baseline == set()
    assert {r for r in doc[WATCHED] | doc[OWN] if can_i(kubeconfig, r)} == set()
