"""manifests/ as Argo CD syncs it: the kustomize overlays build (kubectl kustomize), sync waves put CRDs
before the operator before custom resources, the custom resources carry the sync options a first sync
needs, and the production example is consistent with what the operator actually creates (the trial Job
from the operator's own builders fits the Kueue queue, flavors and priority class it names)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapterops.api.finetunejob import FineTuneJob
from adapterops.api.modeldeployment import ModelDeployment
from adapterops.api.servingprofile import ServingProfile
from adapterops.config import Config, load_gpu_classes
from adapterops.finetune.builders import KUEUE_QUEUE_LABEL, trial_job
from adapterops.finetune.plan import plan

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
Doc = dict[str, Any]
WAVE = "argocd.argoproj.io/sync-wave"
OPTIONS = "argocd.argoproj.io/sync-options"


def kustomize(path: str) -> list[Doc]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed (see README)"
    proc = subprocess.run(
        [kubectl, "kustomize", str(MANIFESTS / path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, f"kubectl kustomize manifests/{path}: {proc.stderr}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def annotations(doc: Doc) -> dict[str, str]:
    return dict(doc["metadata"].get("annotations") or {})


def options(doc: Doc) -> set[str]:
    return {o.strip() for o in annotations(doc).get(OPTIONS, "").split(",") if o.strip()}


def find(docs: list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def env_of(deployment: Doc) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container["env"]}


@pytest.fixture(scope="module")
def production() -> list[Doc]:
    return kustomize("overlays/production")


@pytest.fixture(scope="module")
def local() -> list[Doc]:
    return kustomize("overlays/local")


@pytest.fixture(scope="module")
def team() -> list[Doc]:
    return kustomize("teams/ml-team")


@pytest.fixture(scope="module")
def apps() -> list[Doc]:
    return kustomize("argocd/apps")


@pytest.mark.parametrize("overlay", ["overlays/local", "overlays/production"])
def test_sync_waves_put_crds_then_the_operator_first(overlay: str) -> None:
    docs = kustomize(overlay)
    base = {(d["kind"], d["metadata"]["name"]) for d in kustomize("base")}
    crds = find(docs, "CustomResourceDefinition")
    assert {c["metadata"]["name"] for c in crds} == {
        "finetunejobs.adapterops.io",
        "modeldeployments.adapterops.io",
        "servingprofiles.adapterops.io",
    }
    for doc in docs:
        kind, wave, opts = doc["kind"], int(annotations(doc).get(WAVE, "0")), options(doc)
        assert "Replace=true" not in opts, doc["metadata"]["name"]
        if kind in ("CustomResourceDefinition", "Namespace"):
            assert wave == -2, (kind, doc["metadata"]["name"])
        elif doc["apiVersion"].startswith("kueue.x-k8s.io/"):
            assert wave == 0 and "SkipDryRunOnMissingResource=true" in opts
        else:
            assert wave == -1, (kind, doc["metadata"]["name"])
        if kind == "CustomResourceDefinition":
            # Large CRDs: server-side apply; never pruned or deleted with the Application (that would
            # delete every FineTuneJob and ModelDeployment).
            assert {"ServerSideApply=true", "Prune=false", "Delete=false"} <= opts
    # Nothing of the chart's rendering is lost, other than what the overlay replaces on purpose.
    kept = {(d["kind"], d["metadata"]["name"]) for d in docs}
    replaced = {("ConfigMap", "adapterops-gpu-classes"), ("ClusterRoleBinding", "adapterops")}
    assert base - replaced <= kept


def test_local_overlay_matches_the_test_world(local: list[Doc], tmp_path: Path) -> None:
    [deployment] = find(local, "Deployment", "adapterops")
    env = env_of(deployment)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "adapterops/operator:local"
    assert env["ADAPTEROPS_TRAINER_IMAGE_HF"] == "adapterops/trainer-hf:local"
    assert env["ADAPTEROPS_TRAINER_IMAGE_NEMO"] == "adapterops/trainer-nemo:local"
    assert env["ADAPTEROPS_FETCHER_IMAGE"] == "adapterops/adapter-fetcher:local"
    assert env["ADAPTEROPS_RECONCILE_SECONDS"] == "5"
    # The operator reads this env the way it runs: every pod it creates is left to the kubelet harness.
    [cm] = find(local, "ConfigMap", "adapterops-gpu-classes")
    config = config_from(env, cm, tmp_path)
    assert config.pod_labels == {"kwok.adapterops.io/kubelet": "harness"}
    assert config.reconcile_seconds == 5


def config_from(env: dict[str, str], gpu_cm: Doc, tmp: Path) -> Config:
    """The operator's configuration as it would read it in that Deployment."""
    table = tmp / "gpu-classes.yaml"
    table.write_text(gpu_cm["data"]["gpu-classes.yaml"])
    return Config.from_env({**env, "ADAPTEROPS_GPU_CLASSES_FILE": str(table)})


def test_production_overlay_gpu_classes_limits_and_namespaces(production: list[Doc], tmp_path: Path) -> None:
    [deployment] = find(production, "Deployment", "adapterops")
    pod = deployment["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "gpu-classes"]
    [cm] = find(production, "ConfigMap", volume["configMap"]["name"])
    assert cm["metadata"]["name"].startswith("adapterops-gpu-classes-production-")  # hashed: edits roll the pod
    assert "checksum/gpu-classes" not in (deployment["spec"]["template"]["metadata"].get("annotations") or {})
    table = tmp_path / "gpu-classes.yaml"
    table.write_text(cm["data"]["gpu-classes.yaml"])
    classes = load_gpu_classes(table)  # the operator's own parser
    assert set(classes) == {"H100", "B200"}
    assert classes["H100"].node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert classes["B200"].node_selector == {"nvidia.com/gpu.product": "NVIDIA-B200"}
    assert 0 < classes["H100"].price_per_hour < classes["B200"].price_per_hour
    assert classes["B200"].memory_gib > classes["H100"].memory_gib
    resources = pod["containers"][0]["resources"]
    assert resources["limits"]["memory"] and resources["limits"]["cpu"] and resources["requests"]["cpu"]
    # Watched namespaces: each exists and has the operator's RoleBinding; nothing is bound cluster-wide.
    watched = env_of(deployment)["ADAPTEROPS_NAMESPACES"].split(",")
    assert watched == ["ml-team", "ml-research"]
    assert find(production, "ClusterRoleBinding") == []
    bindings = {b["metadata"]["namespace"]: b for b in find(production, "RoleBinding")}
    namespaces = {n["metadata"]["name"] for n in find(production, "Namespace")}
    for ns in watched:
        assert ns in namespaces
        assert bindings[ns]["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "adapterops",
        }
        assert bindings[ns]["subjects"] == [
            {"kind": "ServiceAccount", "name": "adapterops", "namespace": "adapterops-system"}
        ]
        assert find(production, "LocalQueue", "gpu-finetune")


def test_team_resources_are_wave_0_and_sync_before_their_crds_exist(team: list[Doc]) -> None:
    assert {d["kind"] for d in team} == {"FineTuneJob", "ModelDeployment", "ServingProfile"}
    for doc in team:
        assert doc["metadata"]["namespace"] == "ml-team"
        assert annotations(doc)[WAVE] == "0"
        assert "SkipDryRunOnMissingResource=true" in options(doc)
        assert "Replace=true" not in options(doc)
        model = {"FineTuneJob": FineTuneJob, "ModelDeployment": ModelDeployment, "ServingProfile": ServingProfile}
        model[doc["kind"]].model_validate(doc)  # the API's own models (the CRDs are generated from them)


def test_the_team_sweep_fits_the_production_kueue_queue(production: list[Doc], team: list[Doc], tmp_path: Path) -> None:
    """Build the trial Job exactly as the operator would from the production config, then check that
    Kueue can admit it: its queue exists in its namespace, every resource it requests is covered by
    the ClusterQueue, a flavor matches its node selector with room for a trial, and its PriorityClass
    exists."""
    [deployment] = find(production, "Deployment", "adapterops")
    [volume] = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "gpu-classes"]
    [cm] = find(production, "ConfigMap", volume["configMap"]["name"])
    config = config_from(env_of(deployment), cm, tmp_path)
    [ftj_doc] = find(team, "FineTuneJob")
    ftj = FineTuneJob.model_validate(ftj_doc)
    owner = {**ftj_doc, "metadata": {**ftj_doc["metadata"], "uid": "00000000-0000-0000-0000-000000000000"}}
    trials = plan(ftj_doc["metadata"]["name"], ftj.spec)
    job = trial_job(owner, trials[0], ftj.spec, config)
    assert job["spec"]["suspend"] is True  # Kueue unsuspends it
    queue = job["metadata"]["labels"][KUEUE_QUEUE_LABEL]
    [local_queue] = [q for q in find(production, "LocalQueue", queue) if q["metadata"]["namespace"] == "ml-team"]
    [cluster_queue] = find(production, "ClusterQueue", local_queue["spec"]["clusterQueue"])
    namespace = next(n for n in find(production, "Namespace") if n["metadata"]["name"] == "ml-team")
    for expr in cluster_queue["spec"]["namespaceSelector"]["matchExpressions"]:
        assert expr["operator"] == "Exists" and expr["key"] in namespace["metadata"]["labels"]
    pod = job["spec"]["template"]["spec"]
    requests = pod["containers"][0]["resources"]["requests"]
    [group] = cluster_queue["spec"]["resourceGroups"]
    assert set(requests) <= set(group["coveredResources"])
    flavors = {f["metadata"]["name"]: f for f in find(production, "ResourceFlavor")}
    matching = [
        f for f in group["flavors"] if flavors[f["name"]]["spec"]["nodeLabels"].items() <= pod["nodeSelector"].items()
    ]
    assert [f["name"] for f in matching] == ["h100"]
    quota = {r["name"]: r["nominalQuota"] for r in matching[0]["resources"]}
    assert int(quota["nvidia.com/gpu"]) >= int(requests["nvidia.com/gpu"])
    assert int(quota["cpu"]) >= int(requests["cpu"])
    assert gib(quota["memory"]) >= gib(requests["memory"])
    # The whole sweep's parallelism fits the quota at once.
    parallel = ftj.spec.sweep.parallelism if ftj.spec.sweep else 1
    assert int(quota["nvidia.com/gpu"]) >= parallel * int(requests["nvidia.com/gpu"])
    assert find(production, "PriorityClass", pod["priorityClassName"])
    taints = flavors["h100"]["spec"]["tolerations"]
    assert all(t in pod["tolerations"] for t in taints)


def gib(quantity: str) -> float:
    units = {"Gi": 1, "Ti": 1024, "Mi": 1 / 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor
    return float(quantity) / 2**30


def test_applications_sync_operator_then_team_and_keep_what_actions_set(apps: list[Doc]) -> None:
    root = yaml.safe_load((MANIFESTS / "argocd" / "root.yaml").read_text())
    assert root["spec"]["source"]["path"] == "manifests/argocd/apps"
    apps_by_path = {a["spec"]["source"]["path"]: a for a in find(apps, "Application")}
    operator, team_app = apps_by_path["manifests/overlays/production"], apps_by_path["manifests/teams/ml-team"]
    for app in (operator, team_app):
        assert (REPO / app["spec"]["source"]["path"] / "kustomization.yaml").is_file()
        assert app["spec"]["source"]["repoURL"] == root["spec"]["source"]["repoURL"]
    assert int(annotations(operator)[WAVE]) < int(annotations(team_app)[WAVE]) == 0
    assert "RespectIgnoreDifferences=true" in team_app["spec"]["syncPolicy"]["syncOptions"]
    assert team_app["spec"]["syncPolicy"]["retry"]["limit"] > 0
    # The team's project admits exactly the kinds and namespace of the team folder.
    [project] = find(apps, "AppProject", team_app["spec"]["project"])
    assert {(k["group"], k["kind"]) for k in project["spec"]["namespaceResourceWhitelist"]} == {
        ("adapterops.io", "FineTuneJob"),
        ("adapterops.io", "ModelDeployment"),
        ("adapterops.io", "ServingProfile"),
    }
    assert project["spec"]["clusterResourceWhitelist"] == []
    assert [d["namespace"] for d in project["spec"]["destinations"]] == [team_app["spec"]["destination"]["namespace"]]
    # Every field a resource action sets is ignored by self-heal, or a sync would undo the action.
    ignored = {(i["kind"], p) for i in team_app["spec"]["ignoreDifferences"] for p in i["jsonPointers"]}
    assert ignored == {
        ("FineTuneJob", "/spec/suspend"),
        ("ModelDeployment", "/spec/canary/paused"),
        ("ModelDeployment", "/metadata/annotations/adapterops.io~1promote"),
        ("ModelDeployment", "/metadata/annotations/adapterops.io~1abort"),
    }
    actions = MANIFESTS / "argocd" / "resource_customizations" / "adapterops.io"
    lua = {
        kind: "\n".join(p.read_text() for p in (actions / kind / "actions").glob("*/action.lua"))
        for kind in ("FineTuneJob", "ModelDeployment")
    }
    assert "obj.spec.suspend =" in lua["FineTuneJob"]
    assert "obj.spec.canary.paused =" in lua["ModelDeployment"]
    for key in ("adapterops.io/promote", "adapterops.io/abort"):
        assert json.dumps(key) in lua["ModelDeployment"]
