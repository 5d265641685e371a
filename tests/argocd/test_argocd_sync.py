"""Argo CD itself syncs manifests/ from git into the local cluster.

Argo CD v3.6.1's application controller and repo server (built from the Go module proxy by
hack/argocd-e2e.sh, minutes the first time on a machine) run as local processes against a cluster of
their own (`adapterops-argosync`, hack/cluster.sh), with argocd-cm holding manifests/argocd/argocd-cm.yaml.
The git repository is a local directory holding this checkout's manifests/, where the only edits are
those a fork makes (manifests/argocd/README.md): the Applications' repoURL, and the operator's
Application pointed at the local cluster's overlay instead of the production one (which needs Kueue).

The test applies manifests/argocd/root.yaml and checks what Argo CD does with it:
  1. the root Application creates the AppProject and both Applications; `adapterops` (CRDs, RBAC, the
     operator's Deployment, whose pod kwok plays) syncs and is Healthy, and only after its sync has
     finished does the root's next wave create `ml-team-models` (argocd-cm has the health check for
     Applications that manifests/argocd/README.md gives);
  2. with no operator running, Argo CD judges the team's FineTuneJob, ModelDeployment and ServingProfile with our Lua
     health checks: Progressing, "Waiting for the AdapterOps operator to observe ...";
  3. the operator (a local process under the ServiceAccount Argo CD created, as tests/cluster runs it)
     writes their status, and Argo CD's health follows it: the FineTuneJob is Degraded with the message of
     the operator's Accepted=False condition (this cluster has no Kueue, and the team's sweep asks for a
     Kueue queue), the ModelDeployment Progressing with the operator's message (no champion yet), and the
     team's Application is Degraded while it stays Synced (the operator's status writes are no drift).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testworld.argocd import NAMESPACE, ArgoCD, build, git_repository
from testworld.cluster import TOOLS, LocalCluster, OperatorProcess, wait_for
from testworld.engines import nim_profiles
from testworld.rootfs import operator_image

REPO = Path(__file__).resolve().parents[2]
CLUSTER = os.environ.get("ADAPTEROPS_ARGOSYNC_CLUSTER", "adapterops-argosync")
PROFILE = "commerce-agent-tp-gpu"  # the team's ServingProfile (manifests/examples/servingprofile-tp-gpu.yaml)
UPSTREAM_URL = "https://git.example.com/platform/adapterops.git"

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(3000)]


@pytest.fixture(scope="module")
def argocd_bin() -> Path:
    return build()


@pytest.fixture(scope="module")
def argo_cluster(argocd_bin: Path) -> Iterator[LocalCluster]:
    world = LocalCluster(CLUSTER)
    world.down()  # a cluster left from an interrupted run holds Applications and objects of that run
    world.up()
    yield world
    if not os.environ.get("ADAPTEROPS_KEEP_CLUSTER"):
        world.down()


@pytest.fixture(scope="module")
def argocd(argo_cluster: LocalCluster, argocd_bin: Path) -> Iterator[ArgoCD]:
    argo = ArgoCD(argo_cluster, argocd_bin, TOOLS / "argocd" / CLUSTER)
    argo.install()
    try:
        yield argo.start()
    finally:
        argo.stop()


def _sync_health(app: dict[str, Any]) -> tuple[str, str]:
    status = app.get("status", {})
    return status.get("sync", {}).get("status", ""), status.get("health", {}).get("status", "")


def _resource(app: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    for r in app.get("status", {}).get("resources", []):
        if r["kind"] == kind and r["name"] == name:
            return dict(r)
    raise AssertionError(f"{kind}/{name} is not among {app['metadata']['name']}'s resources")


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == type_:
            return dict(c)
    return {}


def test_argo_cd_syncs_manifests_from_git_and_reports_health(argocd: ArgoCD, tmp_path: Path) -> None:
    cluster = argocd.cluster
    repo = tmp_path / "adapterops"
    url = f"file://{repo}"
    git_repository(
        repo,
        {
            UPSTREAM_URL: url,
            "path: manifests/overlays/production": "path: manifests/overlays/local",
        },
    )
    # The team's namespace belongs to the platform (the production overlay creates it; the local one doesn't).
    cluster.ensure_namespace("ml-team")
    root = (REPO / "manifests" / "argocd" / "root.yaml").read_text().replace(UPSTREAM_URL, url)
    cluster.apply(root, namespace=NAMESPACE)

    def synced_and(name: str, health: str) -> bool:
        argocd.check_running()
        app = argocd.application(name)
        conditions = app.get("status", {}).get("conditions", [])
        errors = [c for c in conditions if c.get("type", "").endswith("Error")]
        assert not errors, f"{name}: {errors}"
        return _sync_health(app) == ("Synced", health)

    # 1. The operator's Application: CRDs, RBAC, the Deployment (kwok runs its pod), Healthy.
    wait_for(lambda: synced_and("adapterops", "Healthy"), 300, "Application adapterops Synced and Healthy")
    operator_app = argocd.application("adapterops")
    kinds = {(r["kind"], r["name"]) for r in operator_app["status"]["resources"]}
    assert ("CustomResourceDefinition", "finetunejobs.adapterops.io") in kinds
    assert ("CustomResourceDefinition", "modeldeployments.adapterops.io") in kinds
    assert ("CustomResourceDefinition", "servingprofiles.adapterops.io") in kinds
    assert ("Deployment", "adapterops") in kinds
    assert all(r.get("status") == "Synced" for r in operator_app["status"]["resources"])
    deploy = cluster.get("deployment", "adapterops", "-n", "adapterops-system")
    assert deploy["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"].startswith("adapterops:")
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "adapterops/operator:local"

    # 2. The team's Application synced, in the wave after the operator's; no operator runs yet, so our
    #    Lua checks say Progressing, waiting for the operator.
    wait_for(lambda: synced_and("ml-team-models", "Progressing"), 300, "Application ml-team-models Synced")
    team = argocd.application("ml-team-models")
    ftj = _resource(team, "FineTuneJob", "nemotron-commerce-sft")
    md = _resource(team, "ModelDeployment", "commerce-agent")
    assert ftj["health"] == {
        "status": "Progressing",
        "message": "Waiting for the AdapterOps operator to observe the FineTuneJob",
    }, ftj
    assert md["health"] == {
        "status": "Progressing",
        "message": "Waiting for the AdapterOps operator to observe the ModelDeployment",
    }, md
    assert _resource(team, "ServingProfile", PROFILE)["health"] == {
        "status": "Progressing",
        "message": "Waiting for the AdapterOps operator to observe the ServingProfile",
    }
    live_ftj = cluster.get("finetunejob", "nemotron-commerce-sft", "-n", "ml-team")
    assert live_ftj["spec"]["resources"]["queueName"] == "gpu-finetune"  # the team folder's patch, from git
    # The root's wave 0 (the team's Application) began only after the operator's Application had finished
    # its first sync (history[0]), thanks to the README's health check for Applications (RFC 3339, UTC).
    first_sync = argocd.application("adapterops")["status"]["history"][0]["deployedAt"]
    assert team["metadata"]["creationTimestamp"] >= first_sync, (team["metadata"]["creationTimestamp"], first_sync)
    root_app = argocd.application("adapterops-root")
    assert _sync_health(root_app)[0] == "Synced"
    root_kinds = {(r["kind"], r["name"]) for r in root_app["status"]["resources"]}
    assert root_kinds == {
        ("Application", "adapterops"),
        ("Application", "ml-team-models"),
        ("AppProject", "ml-team"),
    }

    # 3. The operator reports status; Argo CD's health follows our checks' reading of it.
    # The profile table the test world's NIM images have (the chart's default knows no LoRA profile of the
    # team's NIM image: its ModelDeployment would be refused, docs/engines.md), as the cluster tests set it.
    profiles = {"ADAPTEROPS_NIM_PROFILES": json.dumps(nim_profiles())}
    operator = OperatorProcess(
        cluster, namespace="adapterops-system", image=operator_image(), extra_env=profiles
    ).start()
    try:

        def degraded() -> dict[str, Any] | None:
            argocd.check_running()
            app = argocd.application("ml-team-models")
            if _resource(app, "FineTuneJob", "nemotron-commerce-sft")["health"]["status"] != "Degraded":
                return None
            return app

        team = wait_for(degraded, 180, "Argo CD to read the FineTuneJob as Degraded")
        live_ftj = cluster.get("finetunejob", "nemotron-commerce-sft", "-n", "ml-team")
        accepted = _condition(live_ftj, "Accepted")
        assert accepted.get("status") == "False", live_ftj.get("status")
        assert accepted["reason"] == "KueueNotInstalled", accepted
        assert _resource(team, "FineTuneJob", "nemotron-commerce-sft")["health"] == {
            "status": "Degraded",
            "message": accepted["message"],
        }

        def observed() -> dict[str, Any] | None:
            app = argocd.application("ml-team-models")
            health = _resource(app, "ModelDeployment", "commerce-agent")["health"]
            return app if not health.get("message", "").startswith("Waiting for the AdapterOps operator") else None

        # Its health status stays Progressing, only the message changes: Argo CD shows that at its next
        # periodic refresh (every 20 s here; see testworld.argocd), not at once.
        team = wait_for(observed, 90, "Argo CD to read the operator's ModelDeployment status")
        live_md = cluster.get("modeldeployment", "commerce-agent", "-n", "ml-team")
        md_health = _resource(team, "ModelDeployment", "commerce-agent")["health"]
        assert md_health["status"] == "Progressing", (md_health, live_md.get("status"))
        messages = {c.get("message") for c in live_md["status"].get("conditions", [])}
        assert md_health["message"] in messages, (md_health, live_md["status"])

        def profile_observed() -> dict[str, Any] | None:
            app = argocd.application("ml-team-models")
            health = _resource(app, "ServingProfile", PROFILE)["health"]
            return health if not health.get("message", "").startswith("Waiting for the AdapterOps operator") else None

        sp_health = wait_for(profile_observed, 90, "Argo CD to read the operator's ServingProfile status")
        live_sp = cluster.get("servingprofile", PROFILE, "-n", "ml-team")
        assert sp_health["message"] in {c.get("message") for c in live_sp["status"].get("conditions", [])}, live_sp
        wait_for(lambda: synced_and("ml-team-models", "Degraded"), 120, "Application ml-team-models Degraded")
        assert _sync_health(argocd.application("adapterops")) == ("Synced", "Healthy")
    finally:
        operator.stop()
