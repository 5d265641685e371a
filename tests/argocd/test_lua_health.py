"""The Argo CD health checks and resource actions, run in Argo CD's Lua engine.

Argo CD evaluates resource_customizations with gopher-lua; hack/argocd-lua is a small Go harness that
sets up gopher-lua the way Argo CD does (see its vm.go) and runs every case of health_test.yaml and
actions/action_test.yaml, in the layout of Argo CD's upstream resource_customizations folder, against
objects the operator produced in the cluster tests (hack/argocd-fixtures.py). It is built once into
the per-user cache (hack/build-argocd-lua.sh), like the other Go tools; no Go means a failure here,
never a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import generate

REPO = Path(__file__).resolve().parents[2]
CUSTOMIZATIONS = REPO / "manifests" / "argocd" / "resource_customizations"
ARGOCD_CM = REPO / "manifests" / "argocd" / "argocd-cm.yaml"
GROUP = CUSTOMIZATIONS / "adapterops.io"
KINDS = ("FineTuneJob", "ModelDeployment", "ServingProfile")
WITH_ACTIONS = ("FineTuneJob", "ModelDeployment")  # a ServingProfile has nothing to act on: it runs once


@pytest.fixture(scope="module")
def harness() -> Path:
    proc = subprocess.run(
        [str(REPO / "hack" / "build-argocd-lua.sh")], capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, f"building hack/argocd-lua failed:\n{proc.stderr}"
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path.is_file()
    return path


def run(harness: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(harness), *map(str, args)], capture_output=True, text=True, timeout=120, check=False)


def test_every_health_and_action_case_passes_in_argo_cds_lua_engine(harness: Path) -> None:
    proc = run(harness, "test", "-v", CUSTOMIZATIONS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passed = [line.split(" ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("PASS ")]
    # Every case of every test file ran (and nothing was silently left out).
    expected = 0
    for kind in KINDS:
        expected += len(yaml.safe_load((GROUP / kind / "health_test.yaml").read_text())["tests"])
    for kind in WITH_ACTIONS:
        actions = yaml.safe_load((GROUP / kind / "actions" / "action_test.yaml").read_text())
        expected += len(actions["discoveryTests"]) + len(actions["actionTests"])
    errors = GROUP / "ModelDeployment" / "actions" / "action_error_test.yaml"
    expected += len(yaml.safe_load(errors.read_text())["errorTests"])
    assert len(passed) == expected, proc.stdout
    assert f"{expected} passed, 0 failed" in proc.stdout


def health_cases(kind: str) -> dict[str, dict[str, str]]:
    tests = yaml.safe_load((GROUP / kind / "health_test.yaml").read_text())["tests"]
    return {t["inputPath"]: t["healthStatus"] for t in tests}


def test_the_states_issue_6_names_are_covered_by_captured_objects() -> None:
    ftj = health_cases("FineTuneJob")
    assert ftj["testdata/generation-not-observed.yaml"]["status"] == "Progressing"
    assert ftj["testdata/running.yaml"]["status"] == "Progressing"
    assert ftj["testdata/succeeded.yaml"]["status"] == "Healthy"
    assert ftj["testdata/failed.yaml"]["status"] == "Degraded"
    assert ftj["testdata/suspended.yaml"]["status"] == "Suspended"
    assert any(p.startswith("testdata/refused-") and s["status"] == "Degraded" for p, s in ftj.items())
    mdep = health_cases("ModelDeployment")
    assert mdep["testdata/generation-not-observed.yaml"]["status"] == "Progressing"
    assert mdep["testdata/healthy.yaml"]["status"] == "Healthy"
    assert any(p.startswith("testdata/canary-") and s["status"] == "Progressing" for p, s in mdep.items())
    assert mdep["testdata/holding-inconclusive.yaml"]["status"] == "Suspended"
    assert mdep["testdata/paused.yaml"]["status"] == "Suspended"
    assert mdep["testdata/rolled-back.yaml"]["status"] == "Degraded"
    sprof = health_cases("ServingProfile")
    assert sprof["testdata/no-status.yaml"]["status"] == "Progressing"
    assert sprof["testdata/generation-not-observed.yaml"]["status"] == "Progressing"
    assert sprof["testdata/running.yaml"]["status"] == "Progressing"
    assert sprof["testdata/succeeded.yaml"]["status"] == "Healthy"
    assert sprof["testdata/failed.yaml"]["status"] == "Degraded"
    assert sprof["testdata/refused-DuplicateCandidate.yaml"]["status"] == "Degraded"
    # Each fixture is an object the operator wrote (or one stated edit of one), never hand-made.
    for kind in KINDS:
        for path in sorted((GROUP / kind).glob("**/testdata/*.yaml")):
            head = path.read_text().splitlines()[0]
            assert head.startswith("# Captured from the operator by tests/cluster/"), path
            obj = yaml.safe_load(path.read_text())
            assert obj["kind"] == kind and obj["apiVersion"] == "adapterops.io/v1alpha1"
            derived = "derived by hack/argocd-fixtures.py" in path.read_text().split("\napiVersion:")[0]
            assert derived or obj["status"]["observedGeneration"] == obj["metadata"]["generation"], path


def test_messages_are_the_operators_condition_messages() -> None:
    for kind in KINDS:
        for path, health in health_cases(kind).items():
            obj = yaml.safe_load((GROUP / kind / path).read_text())
            status = obj.get("status") or {}
            if status.get("observedGeneration") != obj["metadata"].get("generation"):
                assert health["message"].startswith("Waiting for the AdapterOps operator"), path
                continue
            messages = {c["message"] for c in status["conditions"]}
            assert health["message"] in messages, (path, health)


def test_the_harness_fails_on_a_wrong_expectation(harness: Path, tmp_path: Path) -> None:
    # A harness that passes everything proves nothing: break one expectation, one script and one
    # expected action output in a copy, and each must be reported.
    copy = tmp_path / "resource_customizations"
    shutil.copytree(CUSTOMIZATIONS, copy)
    ftj, mdep = copy / "adapterops.io" / "FineTuneJob", copy / "adapterops.io" / "ModelDeployment"
    tests = (ftj / "health_test.yaml").read_text()
    (ftj / "health_test.yaml").write_text(tests.replace("status: Suspended", "status: Healthy", 1))
    resume = mdep / "actions" / "resume" / "action.lua"
    resume.write_text(resume.read_text().replace("paused = false", "paused = true"))
    discovery = mdep / "actions" / "discovery.lua"
    discovery.write_text("local n = string.len(obj.kind)\n" + discovery.read_text())
    proc = run(harness, "test", copy)
    assert proc.returncode == 1
    failed = [line for line in proc.stdout.splitlines() if line.startswith("FAIL ")]
    assert "FAIL adapterops.io/FineTuneJob/health testdata/suspended.yaml" in failed
    assert "FAIL adapterops.io/ModelDeployment/action resume testdata/paused.yaml" in failed
    # Argo CD runs argocd-cm scripts without Lua's string library (unless useOpenLibs): caught.
    assert "[argocd-cm]" in proc.stdout and "attempt to index a non-table object(nil) with key 'len'" in proc.stdout
    assert "FAIL adapterops.io/ModelDeployment/discovery testdata/canary.yaml" in failed


def test_argocd_cm_is_generated_from_the_lua_files(harness: Path) -> None:
    # The harness fixture reports a failed build; the driver then runs the same harness.
    assert generate.main(["--check", "argocd-cm"]) == 0, "run `python hack/generate.py argocd-cm`"
    data = yaml.safe_load(ARGOCD_CM.read_text())["data"]
    for kind in KINDS:
        # The YAML block scalars give back each script exactly.
        assert data[f"resource.customizations.health.adapterops.io_{kind}"] == (GROUP / kind / "health.lua").read_text()
        if kind not in WITH_ACTIONS:
            assert f"resource.customizations.actions.adapterops.io_{kind}" not in data
            continue
        actions = yaml.safe_load(data[f"resource.customizations.actions.adapterops.io_{kind}"])
        assert actions["discovery.lua"] == (GROUP / kind / "actions" / "discovery.lua").read_text()
        scripts = {d["name"]: d["action.lua"] for d in actions["definitions"]}
        on_disk = {p.parent.name: p.read_text() for p in (GROUP / kind / "actions").glob("*/action.lua")}
        assert scripts == on_disk


def test_go_harness_unit_tests() -> None:
    go = shutil.which("go")
    assert go, "Go is needed (see README: Go 1.26)"
    proc = subprocess.run(
        [go, "test", "./..."],
        cwd=REPO / "hack" / "argocd-lua",
        env={**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
