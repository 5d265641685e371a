"""The same health and action test files, run by Argo CD's own code: v3.6.1's util/settings parses
manifests/argocd/argocd-cm.yaml into resource overrides and util/lua's VM runs them
(hack/argocd-lua/upstream). Argo CD v3.6 needs Go 1.27, so hack/argocd-lua-upstream.sh builds it with
GOTOOLCHAIN=go1.27.3 from the Go module proxy: several minutes the first time on a machine, cached in
~/.cache/adapterops afterwards."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GROUP = REPO / "manifests" / "argocd" / "resource_customizations" / "adapterops.io"


@pytest.mark.timeout(2400)
def test_checks_and_actions_pass_in_argo_cd_v3_6_util_lua() -> None:
    proc = subprocess.run(
        [str(REPO / "hack" / "argocd-lua-upstream.sh"), "run"],
        capture_output=True,
        text=True,
        timeout=2300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
    assert proc.stdout.rstrip().endswith("passed, 0 failed"), proc.stdout[-2000:]
    assert "FAIL" not in proc.stdout
    # Every health, discovery and action case of the test files ran (error cases are hack/argocd-lua's own).
    expected = 0
    for kind in ("FineTuneJob", "ModelDeployment", "ServingProfile"):
        expected += len(yaml.safe_load((GROUP / kind / "health_test.yaml").read_text())["tests"])
        if (GROUP / kind / "actions").is_dir():
            actions = yaml.safe_load((GROUP / kind / "actions" / "action_test.yaml").read_text())
            expected += len(actions["discoveryTests"]) + len(actions["actionTests"])
    assert proc.stdout.rstrip().endswith(f": {expected} passed, 0 failed"), proc.stdout[-2000:]
