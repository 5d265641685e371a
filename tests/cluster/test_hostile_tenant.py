"""A hostile tenant on the real API server: every escape it tries is refused where docs/security.md says,
and afterwards nothing outside its namespace has changed and no request left for an address outside the
admin's allowlists.

The tenant is `alice` of tests/cluster/test_tenant_policy.py: a ServiceAccount of `tenant-a` bound there
only to the built-in `edit` role (which aggregates `<release>-edit`), acting with its own TokenRequest
token, under that module's tenant policy. Another team's namespace, `prod`, holds a Secret, an HTTPRoute,
a ConfigMap, a Kueue LocalQueue, a Service and a Deployment of its own, and a FineTuneJob and a
ModelDeployment the operator runs; the tenant cannot read any of it. Where an escape needs to know
something of prod (a UID, a trial's name), the test hands it over: secrecy of UIDs is no defence.

Each escape is refused at admission (kubectl fails; the message names the field), by RBAC, or by the
operator (Accepted=False naming the field), and nothing is created for it. References by plain name
are looked up in tenant-a only. Objects the tenant creates with the operator's labels and prod's UIDs
(a trial Job, a serving Deployment, Service and pod) are not taken for prod's children: prod's trial is
still created in prod, and nothing of prod is deleted.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import test_tenant_policy
import yaml
from test_egress_on_cluster import accepted
from test_tenant_policy import ESCAPES as POLICY_ESCAPES
from test_tenant_policy import TENANT, Kubectl, finetunejob, modeldeployment

from testworld.cluster import LocalCluster, OperatorProcess, wait_for
from testworld.judge import StandInJudge
from testworld.listener import Listener

# That module's tenant, policy and identities: fixtures of this module too.
policy = test_tenant_policy.policy
identities = test_tenant_policy.identities

PROD = "prod"
# A value that would show wherever prod's Secret leaked to.
SECRET_VALUE = "prod-only-7c1f9a-do-not-leak"
QUEUE = "team-a-gpus"  # the queue test_tenant_policy's compliant FineTuneJob names: a LocalQueue of prod only
IMPOSTOR = "test.adapterops.io/impostor"  # the test's own label, to clean up what the tenant created
LOCALQUEUE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "localqueues.kueue.x-k8s.io"},
    "spec": {
        "group": "kueue.x-k8s.io",
        "scope": "Namespaced",
        "names": {
            "kind": "LocalQueue",
            "plural": "localqueues",
            "singular": "localqueue",
            "listKind": "LocalQueueList",
        },
        "versions": [
            {
                "name": "v1beta1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


PROD_OBJECTS: list[dict[str, Any]] = [
    {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "shop-credentials"},
        "data": {
            "api-key": b64(SECRET_VALUE),
            "AWS_ACCESS_KEY_ID": b64("AKIAPROD"),
            "AWS_SECRET_ACCESS_KEY": b64(SECRET_VALUE),
        },
    },
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "shop-prompts"},
        "data": {"prompts.jsonl": json.dumps({"prompt": "prod's private challenge prompt"}) + "\n"},
    },
    {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "shop"},
        "spec": {"parentRefs": [{"name": "gateway"}], "rules": [{"backendRefs": [{"name": "shop-api", "port": 8000}]}]},
    },
    {
        "apiVersion": "kueue.x-k8s.io/v1beta1",
        "kind": "LocalQueue",
        "metadata": {"name": QUEUE},
        "spec": {"clusterQueue": "gpus"},
    },
    # Not AdapterOps' children: an impostor under these names must not make the operator delete them.
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "shop-api"},
        "spec": {"ports": [{"port": 8000}]},
    },
]
VICTIM_DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "shop-web"},
    "spec": {
        "replicas": 0,
        "selector": {"matchLabels": {"app": "shop-web"}},
        "template": {
            "metadata": {"labels": {"app": "shop-web"}},
            "spec": {"containers": [{"name": "web", "image": "registry.prod.example/web:1"}]},
        },
    },
}


@dataclass(frozen=True)
class Prod:
    snapshot: dict[str, dict[str, Any]]  # kind/name -> the object as stored, read back after the suite
    deployment_uid: str
    finetunejob_uid: str
    modeldeployment_uid: str
    trial: str  # the name of prod's one planned trial
    stable_revision: str


def snapshot(cluster: LocalCluster) -> dict[str, dict[str, Any]]:
    return {
        f"{o['kind']}/{o['metadata']['name']}": cluster.get(o["kind"].lower(), o["metadata"]["name"], "-n", PROD)
        for o in PROD_OBJECTS
    }


@pytest.fixture(scope="module")
def kueue(cluster: LocalCluster) -> Iterator[None]:
    """Kueue's LocalQueue kind, for prod's queue; the test cluster has no Kueue (removed again afterwards,
    so the other modules still see a cluster without Kueue)."""
    installed = cluster.kubectl("get", "crd", LOCALQUEUE_CRD["metadata"]["name"], check=False).returncode != 0
    if installed:
        cluster.apply(LOCALQUEUE_CRD)
        cluster.kubectl("wait", "--for=condition=Established", "crd/localqueues.kueue.x-k8s.io", "--timeout=30s")
    yield
    if installed:
        cluster.kubectl("delete", "crd", LOCALQUEUE_CRD["metadata"]["name"], "--wait=true", timeout=60)


@pytest.fixture(scope="module")
def prod(
    cluster: LocalCluster,
    policy: dict[str, Any],
    kueue: None,
    operator: OperatorProcess,
) -> Iterator[Prod]:
    if cluster.kubectl("get", "namespace", PROD, check=False).returncode == 0:  # a rerun on a kept cluster
        cluster.kubectl("delete", "namespace", PROD, "--wait=true", timeout=120)
    cluster.ensure_namespace(PROD)
    for obj in [*PROD_OBJECTS, VICTIM_DEPLOYMENT]:
        cluster.apply(obj, PROD)
    # Run by the operator (compliant with the tenant policy, which holds in prod too): a suspended sweep of
    # one trial, and a ModelDeployment serving one adapter through its own Services (no HTTPRoute).
    cluster.apply(finetunejob("shop-sft", suspend=True), PROD)
    cluster.apply(modeldeployment("shop"), PROD)
    sweep = wait_for(lambda: _accepted_true(cluster, "ftj", "shop-sft", PROD), 30, "prod's FineTuneJob accepted")
    served = wait_for(
        lambda: (md := cluster.get("mdep", "shop", "-n", PROD)).get("status", {}).get("stable") and md,
        30,
        "prod's ModelDeployment to have a stable revision",
    )
    wait_for(lambda: cluster.get("service", "shop", "-n", PROD), 30, "prod's stable Service")
    yield Prod(
        snapshot=snapshot(cluster),
        deployment_uid=cluster.get("deployment", "shop-web", "-n", PROD)["metadata"]["uid"],
        finetunejob_uid=sweep["metadata"]["uid"],
        modeldeployment_uid=served["metadata"]["uid"],
        trial=sweep["status"]["trials"][0]["name"],
        stable_revision=served["status"]["stable"]["revision"],
    )
    cluster.kubectl("delete", "namespace", PROD, "--wait=false")
    for kind in ("jobs", "deployments", "services", "pods"):
        cluster.kubectl("delete", kind, "-n", TENANT, "-l", IMPOSTOR, "--wait=false", check=False)


@pytest.fixture(scope="module")
def tenant(identities: dict[str, Kubectl], prod: Prod) -> Kubectl:
    return identities["alice"]


def _accepted_true(cluster: LocalCluster, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    obj = cluster.get(kind, name, "-n", namespace)
    cond = accepted(cluster, kind, name, namespace)
    return obj if cond.get("status") == "True" and obj.get("status", {}).get("trials") else None


def stored(cluster: LocalCluster, kind: str, name: str, namespace: str = TENANT) -> bool:
    return cluster.kubectl("get", kind, name, "-n", namespace, check=False).returncode == 0


# --------------------------------------------------------------------------- refused at admission

TRAVERSAL = "../../kube-system/secrets/x"
ADMISSION_ESCAPES = [
    pytest.param(
        modeldeployment(
            "route-traversal",
            canary={"traffic": {"mode": "httpRoute", "httpRouteRef": {"name": "../../prod/httproutes/shop"}}},
        ),
        ["spec.canary.traffic.httpRouteRef.name", "must be an HTTPRoute name: a DNS-1123 subdomain"],
        id="httproute-ref-path-traversal",
    ),
    pytest.param(
        modeldeployment(
            "route-encoded", canary={"traffic": {"mode": "httpRoute", "httpRouteRef": {"name": "..%2Fprod%2Fshop"}}}
        ),
        ["spec.canary.traffic.httpRouteRef.name", "must be an HTTPRoute name"],
        id="httproute-ref-percent-encoded-slash",
    ),
    pytest.param(
        finetunejob(
            "judge-key-traversal",
            evaluation={
                "dataset": "pvc://data/challenge.jsonl",
                "judge": {
                    "endpoint": "https://integrate.api.nvidia.com/v1",
                    "model": "judge",
                    "apiKeySecretRef": {"name": TRAVERSAL, "key": "k"},
                },
            },
        ),
        ["spec.evaluation.judge.apiKeySecretRef.name", "must be a Secret name: a DNS-1123 subdomain"],
        id="finetunejob-judge-secret-traversal",
    ),
    pytest.param(
        modeldeployment(
            "judge-key-traversal",
            canary={
                "analysis": {
                    "judge": {
                        "dataset": "configmap://prompts/prompts.jsonl",
                        "judge": {
                            "endpoint": "https://integrate.api.nvidia.com/v1",
                            "model": "judge",
                            "apiKeySecretRef": {"name": TRAVERSAL, "key": "k"},
                        },
                    }
                }
            },
        ),
        ["spec.canary.analysis.judge.judge.apiKeySecretRef.name", "must be a Secret name"],
        id="modeldeployment-judge-secret-traversal",
    ),
    pytest.param(
        finetunejob("storage-traversal", storageSecretRef={"name": TRAVERSAL}),
        ["spec.storageSecretRef.name", "must be a Secret name"],
        id="finetunejob-storage-secret-traversal",
    ),
    pytest.param(
        modeldeployment("storage-encoded", storageSecretRef={"name": "prod%2Fshop-credentials"}),
        ["spec.storageSecretRef.name", "must be a Secret name"],
        id="modeldeployment-storage-secret-percent-encoded",
    ),
    pytest.param(
        modeldeployment("key-encoded", runtime={"apiKeySecretRef": {"name": "..%2F..%2Fprod", "key": "api-key"}}),
        ["spec.runtime.apiKeySecretRef.name", "must be a Secret name"],
        id="runtime-api-key-secret-percent-encoded",
    ),
    pytest.param(
        modeldeployment("pull-secret", runtime={"imagePullSecrets": [{"name": "prod/shop-credentials"}]}),
        ["spec.runtime.imagePullSecrets[0].name", "must be a Secret name"],
        id="image-pull-secret-other-namespace",
    ),
    pytest.param(
        modeldeployment(
            "dataset-dotdot",
            canary={
                "analysis": {
                    "judge": {
                        "dataset": "configmap://../x",
                        "judge": {"endpoint": "https://integrate.api.nvidia.com/v1", "model": "judge"},
                    }
                }
            },
        ),
        ["spec.canary.analysis.judge.dataset", "a configmap:// URI is configmap://NAME/KEY"],
        id="configmap-dataset-dotdot",
    ),
    pytest.param(
        finetunejob("claim-dotdot", dataset={"train": "pvc://../prod-data/train.jsonl"}),
        ["spec.dataset.train", "CLAIM is a PersistentVolumeClaim name"],
        id="pvc-claim-dotdot",
    ),
    pytest.param(
        finetunejob("path-dotdot", output={"uri": "pvc://adapters/../../prod/out"}),
        ["spec.output.uri", "PATH has no '..' segment"],
        id="pvc-path-dotdot",
    ),
    pytest.param(
        modeldeployment("adapter-dotdot", adapters=[{"name": "a", "uri": "pvc://adapters/../prod"}]),
        ["spec.adapters[0].uri", "PATH has no '..' segment"],
        id="adapter-pvc-path-dotdot",
    ),
    pytest.param(
        modeldeployment("job-encoded", adapters=[{"name": "a", "fineTuneJobRef": {"name": "x%2F..%2Fprod"}}]),
        ["spec.adapters[0].fineTuneJobRef.name", "must be a FineTuneJob name"],
        id="finetunejob-ref-percent-encoded",
    ),
    pytest.param(
        modeldeployment(
            "job-elsewhere", adapters=[{"name": "a", "fineTuneJobRef": {"name": "shop-sft", "namespace": PROD}}]
        ),
        ['unknown field "spec.adapters[0].fineTuneJobRef.namespace"'],
        id="finetunejob-ref-with-namespace",
    ),
    pytest.param(
        modeldeployment(
            "route-elsewhere",
            canary={"traffic": {"mode": "httpRoute", "httpRouteRef": {"name": "shop", "namespace": PROD}}},
        ),
        ['unknown field "spec.canary.traffic.httpRouteRef.namespace"'],
        id="httproute-ref-with-namespace",
    ),
    pytest.param(
        finetunejob("account-traversal", serviceAccountName="../../kube-system/serviceaccounts/default"),
        ["spec.serviceAccountName", "must be a ServiceAccount name"],
        id="service-account-traversal",
    ),
    pytest.param(
        finetunejob("f" * 64),
        ["metadata.name", "at most 63 characters"],
        id="name-64-characters",
    ),
    pytest.param(
        modeldeployment("1-shop"),
        ["metadata.name", "starting with a letter"],
        id="name-starts-with-digit",
    ),
]


@pytest.mark.parametrize(("obj", "phrases"), ADMISSION_ESCAPES)
def test_a_reference_or_name_that_could_leave_the_namespace_is_refused_at_admission(
    cluster: LocalCluster, tenant: Kubectl, obj: dict[str, Any], phrases: list[str]
) -> None:
    proc = tenant.create(obj, TENANT)
    assert proc.returncode != 0, f"admitted: {proc.stdout}"
    for phrase in phrases:
        assert phrase in proc.stderr, proc.stderr
    assert not stored(cluster, obj["kind"].lower(), obj["metadata"]["name"]), "stored although refused"


@pytest.mark.parametrize(("obj", "field_and_value", "allowance"), POLICY_ESCAPES)
def test_a_tenant_limit_escape_is_refused_by_the_tenant_policy(
    cluster: LocalCluster, tenant: Kubectl, obj: dict[str, Any], field_and_value: str, allowance: str
) -> None:
    proc = tenant.create(obj, TENANT)
    assert proc.returncode != 0, f"admitted: {proc.stdout}"
    assert "ValidatingAdmissionPolicy 'adapterops-tenant-policy'" in proc.stderr, proc.stderr
    assert field_and_value in proc.stderr and allowance in proc.stderr, proc.stderr
    assert not stored(cluster, obj["kind"].lower(), obj["metadata"]["name"]), "stored although refused"


# --------------------------------------------------------------------------- refused by RBAC

SERVER_SIDE_APPLY = ["apply", "--server-side", "-n", PROD, "-f", "-"]  # a PATCH alone; patch/annotate GET first
ABORT = {
    "apiVersion": "adapterops.io/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "shop", "annotations": {"adapterops.io/abort": "any-revision"}},
}
REROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "shop"},
    "spec": {"rules": [{"backendRefs": [{"name": "evil", "namespace": TENANT, "port": 8000}]}]},
}
RBAC_ESCAPES = [
    pytest.param(
        ["patch", "finetunejob", "own", "--subresource=status", "--type=merge", "-p", '{"status":{"state":"x"}}'],
        None,
        'resource "finetunejobs/status"',
        id="write-status-of-own-finetunejob",
    ),
    pytest.param(
        ["patch", "mdep", "own", "--subresource=status", "--type=merge", "-p", '{"status":{"stable":null}}'],
        None,
        'resource "modeldeployments/status"',
        id="write-status-of-own-modeldeployment",
    ),
    pytest.param(
        ["annotate", "mdep", "shop", "-n", PROD, "adapterops.io/promote=anything"],
        None,
        'cannot get resource "modeldeployments" in API group "adapterops.io" in the namespace "prod"',
        id="promote-annotation-on-another-teams-object",
    ),
    pytest.param(
        SERVER_SIDE_APPLY,
        ABORT,
        'cannot patch resource "modeldeployments" in API group "adapterops.io" in the namespace "prod"',
        id="abort-annotation-on-another-teams-object",
    ),
    pytest.param(
        ["get", "secret", "shop-credentials", "-n", PROD],
        None,
        'cannot get resource "secrets" in API group "" in the namespace "prod"',
        id="read-another-teams-secret",
    ),
    pytest.param(
        SERVER_SIDE_APPLY,
        REROUTE,
        'cannot patch resource "httproutes" in API group "gateway.networking.k8s.io" in the namespace "prod"',
        id="reroute-another-teams-httproute",
    ),
    pytest.param(
        ["delete", "localqueue", QUEUE, "-n", PROD],
        None,
        'cannot delete resource "localqueues"',
        id="delete-another-teams-localqueue",
    ),
    pytest.param(
        ["create", "rolebinding", "me-admin", "--clusterrole=cluster-admin", f"--serviceaccount={TENANT}:alice"],
        None,
        'cannot create resource "rolebindings"',
        id="bind-itself-cluster-admin",
    ),
    pytest.param(
        ["get", "secrets", "-n", PROD, "--as=system:serviceaccount:adapterops-system:adapterops"],
        None,
        "cannot impersonate",
        id="impersonate-the-operator",
    ),
    pytest.param(
        ["create", "token", "adapterops", "-n", "adapterops-system"],
        None,
        'cannot create resource "serviceaccounts/token"',
        id="token-for-the-operators-account",
    ),
]


@pytest.fixture(scope="module")
def own(tenant: Kubectl) -> None:
    """The tenant's own FineTuneJob and ModelDeployment, whose status it tries to write (the sweep is
    suspended, and refused anyway: its queue is prod's, not tenant-a's)."""
    for obj in (finetunejob("own", suspend=True), modeldeployment("own")):
        proc = tenant.create(obj, TENANT)
        assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("args", "stdin", "message"), RBAC_ESCAPES)
def test_an_api_call_beyond_the_edit_role_is_refused_by_rbac(
    tenant: Kubectl, own: None, args: list[str], stdin: dict[str, Any] | None, message: str
) -> None:
    namespace = [] if "-n" in args else ["-n", TENANT]
    proc = tenant(*args, *namespace, input=yaml.safe_dump(stdin) if stdin else None)
    assert proc.returncode != 0 and "forbidden" in proc.stderr.lower(), (proc.stdout, proc.stderr)
    assert message in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- refused by the operator


def url_escapes(listener: Listener, judge_url: str) -> list[tuple[dict[str, Any], str, str, str]]:
    """(object, reason, field, why): URLs the operator would call itself, outside the allowlists (the
    listener is allowed under /allowed only; the stand-in judge under its own URL)."""
    port = listener.url.rsplit(":", 1)[1]
    forbidden = f"{listener.url}/forbidden"
    judge_host = judge_url.removeprefix("http://").split("/", 1)[0]
    listener_host = listener.url.removeprefix("http://")

    def prom(name: str, url: str, why: str) -> tuple[dict[str, Any], str, str, str]:
        latency = {"maxIncreasePercent": 30, "prometheusUrl": url}
        obj = modeldeployment(name, canary={"analysis": {"latency": latency}})
        return obj, "PrometheusUrlNotAllowed", "spec.canary.analysis.latency.prometheusUrl", f"{url!r} {why}"

    def judge(name: str, url: str, why: str) -> tuple[dict[str, Any], str, str, str]:
        analysis = {"judge": {"dataset": "configmap://prompts/p.jsonl", "judge": {"endpoint": url, "model": "m"}}}
        obj = modeldeployment(name, canary={"analysis": analysis})
        return obj, "JudgeEndpointNotAllowed", "spec.canary.analysis.judge.judge.endpoint", f"{url!r} {why}"

    def ftj_judge(name: str, url: str, why: str) -> tuple[dict[str, Any], str, str, str]:
        evaluation = {"dataset": "pvc://data/challenge.jsonl", "judge": {"endpoint": url, "model": "m"}}
        obj = finetunejob(name, evaluation=evaluation)
        return obj, "JudgeEndpointNotAllowed", "spec.evaluation.judge.endpoint", f"{url!r} {why}"

    outside, userinfo = "is not under an allowed prefix", "has userinfo (user@host), which is not accepted"
    return [
        prom("prom-listener", forbidden, outside),
        prom("prom-metadata", "http://169.254.169.254/latest/meta-data/iam/security-credentials", outside),
        prom("prom-dotdot", f"{listener.url}/allowed/../forbidden", "has an empty, '.' or '..' path segment"),
        prom("prom-encoded", f"{listener.url}/allowed/..%2Fforbidden", "has percent-encoding"),
        prom("prom-sibling", f"{listener.url}/allowed-not", outside),  # whole segments: /allowed-not is not below
        prom("prom-decimal-ip", f"http://2130706433:{port}/allowed", ""),  # 127.0.0.1 to some resolvers
        prom("prom-userinfo", f"http://{listener_host}@169.254.169.254/allowed", userinfo),
        prom("prom-file", "file:///var/run/secrets/kubernetes.io/serviceaccount/token", "is not an http"),
        judge("judge-listener", f"{forbidden}/v1", outside),
        judge("judge-metadata", "http://169.254.169.254/v1", outside),
        judge("judge-userinfo", f"http://{judge_host}@{listener_host}/forbidden/v1", userinfo),
        ftj_judge("ftj-judge-listener", f"{forbidden}/v1", outside),
        ftj_judge("ftj-judge-userinfo", f"http://{judge_host}@{listener_host}/forbidden/v1", userinfo),
    ]


def test_urls_outside_the_allowlists_are_refused_in_accepted_naming_the_field_and_never_called(
    cluster: LocalCluster, tenant: Kubectl, tenant_endpoint: Listener, judge: StandInJudge
) -> None:
    cases = url_escapes(tenant_endpoint, judge.url)
    for obj, *_ in cases:  # admitted: only the operator knows the allowlists
        proc = tenant.create(obj, TENANT)
        assert proc.returncode == 0, proc.stderr
    for obj, reason, field, why in cases:
        kind, name = obj["kind"].lower(), obj["metadata"]["name"]
        cond = wait_for(lambda: accepted(cluster, kind, name, TENANT), 30, f"Accepted on {name}")  # noqa: B023
        assert cond["status"] == "False" and cond["reason"] == reason, (name, cond)
        assert cond["message"].startswith(f"{field}: {why}"), (name, cond["message"])
        # Nothing runs for a refused object: no serving Deployment, no trial Job.
        label = "adapterops.io/modeldeployment" if kind == "modeldeployment" else "adapterops.io/finetunejob"
        for child in ("deployments", "jobs"):
            assert not cluster.get(child, "-n", TENANT, "-l", f"{label}={name}")["items"], (name, child)
    outside = [p for p in tenant_endpoint.paths() if not p.startswith("/allowed/")]
    assert outside == [], f"requests outside the allowlist reached the listener: {outside}"


# --------------------------------------------------------------------------- looked up in tenant-a only


def test_references_by_plain_name_are_looked_up_in_the_tenants_namespace_only(
    cluster: LocalCluster, tenant: Kubectl, prod: Prod
) -> None:
    borrow_route = modeldeployment(
        "borrow-route",
        runtime={"apiKeySecretRef": {"name": "shop-credentials", "key": "api-key"}},
        canary={"traffic": {"mode": "httpRoute", "httpRouteRef": {"name": "shop"}}},
    )
    borrow_job = modeldeployment("borrow-job", adapters=[{"name": "a", "fineTuneJobRef": {"name": "shop-sft"}}])
    borrow_queue = finetunejob("borrow-queue")  # names the queue only prod has
    for obj in (borrow_route, borrow_job, borrow_queue):
        proc = tenant.create(obj, TENANT)
        assert proc.returncode == 0, proc.stderr

    def condition(kind: str, name: str, type_: str, reason: str) -> dict[str, Any] | None:
        obj = cluster.get(kind, name, "-n", TENANT)
        found = [c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_]
        return found[0] if found and found[0]["reason"] == reason else None

    route = wait_for(lambda: condition("mdep", "borrow-route", "Progressing", "HTTPRouteNotFound"), 30, "route")
    assert route["message"] == "spec.canary.traffic.httpRouteRef: HTTPRoute 'shop' not found"
    job = wait_for(lambda: condition("mdep", "borrow-job", "Ready", "WaitingForAdapters"), 30, "adapters")
    assert "FineTuneJob 'shop-sft' does not exist" in job["message"]
    queue = wait_for(lambda: condition("ftj", "borrow-queue", "Accepted", "QueueNotFound"), 30, "queue")
    assert queue["message"] == f"spec.resources.queueName: LocalQueue '{QUEUE}' does not exist in namespace '{TENANT}'"
    assert not cluster.get("jobs", "-n", TENANT, "-l", "adapterops.io/finetunejob=borrow-queue")["items"]
    # The Secret is named in the serving pods' spec, where the kubelet resolves it in tenant-a (no such Secret
    # there: the pods cannot start); the operator copied nothing of prod's anywhere in tenant-a.
    served = wait_for(
        lambda: cluster.get("deployments", "-n", TENANT, "-l", "adapterops.io/modeldeployment=borrow-route")["items"],
        30,
        "borrow-route's serving Deployment",
    )
    env = served[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = [e["valueFrom"]["secretKeyRef"] for e in env if "secretKeyRef" in e.get("valueFrom", {})]
    assert {"name": "shop-credentials", "key": "api-key"} in refs, env
    everything = cluster.kubectl("get", "all,configmaps,secrets,events,ftj,mdep", "-n", TENANT, "-o", "json").stdout
    assert SECRET_VALUE not in everything and b64(SECRET_VALUE) not in everything


# --------------------------------------------------------------------------- impostor children


def labelled(name: str, kind: str, labels: dict[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    api = {"Job": "batch/v1", "Deployment": "apps/v1"}.get(kind, "v1")
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "labels": {**labels, IMPOSTOR: "true"}},
        "spec": spec,
    }


def pod_spec() -> dict[str, Any]:
    return {"containers": [{"name": "trainer", "image": "registry.tenant-a.example/any:1"}], "restartPolicy": "Never"}


def test_objects_carrying_another_teams_owner_labels_are_not_taken_for_its_children(
    cluster: LocalCluster, tenant: Kubectl, prod: Prod
) -> None:
    trial = {
        "adapterops.io/finetunejob": "shop-sft",
        "adapterops.io/finetunejob-uid": prod.finetunejob_uid,
        "adapterops.io/trial": prod.trial,
        "adapterops.io/component": "trial",
    }
    serving = {
        "adapterops.io/modeldeployment": "shop",
        "adapterops.io/modeldeployment-uid": prod.modeldeployment_uid,
        "adapterops.io/revision": prod.stable_revision,
    }
    impostors = [
        # prod's trial by name, running: if counted, prod's sweep would show it and never start its own.
        labelled(prod.trial, "Job", trial, {"template": {"metadata": {"labels": trial}, "spec": pod_spec()}}),
        # Named like prod's own Deployment and Service: if taken for prod's stale revisions, the operator
        # would delete prod's objects of these names.
        labelled(
            "shop-web",
            "Deployment",
            serving,
            {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "impostor"}},
                "template": {
                    "metadata": {"labels": {"app": "impostor"}},
                    "spec": pod_spec() | {"restartPolicy": "Always"},
                },
            },
        ),
        labelled("shop-api", "Service", serving, {"ports": [{"port": 8000}]}),
        # A ready pod (kwok plays its kubelet) of prod's stable revision: taken for prod's, the canary judge
        # would send it prod's prompts. That the operator's view leaves it out is tests/unit/test_informer.py's
        # (a canary of prod with real serving pods is beyond this suite's time); here: it is not adopted.
        labelled("a-serving-impostor", "Pod", serving, pod_spec()),
    ]
    for obj in impostors:
        proc = tenant.create(obj, TENANT)
        assert proc.returncode == 0, proc.stderr

    # Two spec changes each, one after the other has been reconciled: the impostors are in the operator's
    # watch caches by then, whatever the order the watches deliver in.
    for ftj_patch, mdep_patch in (
        ({"spec": {"suspend": False}}, {"spec": {"canary": {"interval": "6m"}}}),
        ({"spec": {"sweep": {"parallelism": 2}}}, {"spec": {"canary": {"interval": "7m"}}}),
    ):
        for kind, name, patch in (("ftj", "shop-sft", ftj_patch), ("mdep", "shop", mdep_patch)):
            cluster.kubectl("patch", kind, name, "-n", PROD, "--type=merge", "-p", json.dumps(patch))
        for kind, name in (("ftj", "shop-sft"), ("mdep", "shop")):
            wait_for(lambda: accepted(cluster, kind, name, PROD), 30, f"prod's {kind} reconciled")  # noqa: B023

    # prod's trial is prod's own Job, queued for Kueue; the tenant's Job is not counted as it.
    jobs = cluster.get("jobs", "-n", PROD, "-l", "adapterops.io/finetunejob=shop-sft")["items"]
    assert [j["metadata"]["name"] for j in jobs] == [prod.trial], "prod's trial was not started in prod"
    assert jobs[0]["metadata"]["ownerReferences"][0]["uid"] == prod.finetunejob_uid
    row = cluster.get("ftj", "shop-sft", "-n", PROD)["status"]["trials"][0]
    assert row["state"] == "Pending" and row.get("message") == "waiting for Kueue to admit the Job", row
    # Nothing of prod was deleted for the impostors, and the tenant's objects are still the tenant's.
    assert cluster.get("deployment", "shop-web", "-n", PROD)["metadata"]["uid"] == prod.deployment_uid
    assert stored(cluster, "service", "shop-api", PROD)
    for obj in impostors:
        live = cluster.get(obj["kind"].lower(), obj["metadata"]["name"], "-n", TENANT)
        owners = [
            r
            for r in live["metadata"].get("ownerReferences", [])
            if r["uid"] in (prod.finetunejob_uid, prod.modeldeployment_uid)
        ]
        assert owners == [], live["metadata"]


# --------------------------------------------------------------------------- afterwards


def test_afterwards_the_other_namespace_is_unchanged_and_no_request_left_the_allowlist(
    cluster: LocalCluster, prod: Prod, tenant_endpoint: Listener
) -> None:
    after = snapshot(cluster)
    for key, before in prod.snapshot.items():
        assert after[key] == before, f"{key} changed:\nbefore {before}\nafter  {after[key]}"
    outside = [p for p in tenant_endpoint.paths() if not p.startswith("/allowed/")]
    assert outside == [], f"requests outside the allowlist reached the listener: {outside}"
