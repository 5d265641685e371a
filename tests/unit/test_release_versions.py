"""One version everywhere, from the release tag: hack/set-version.py's places agree in the repository, it
rewrites all of them (nothing keeps the old version), refuses what is not a semantic version, and the chart
renders every AdapterOps image at its appVersion. The release workflow passes actionlint (built from the Go
module proxy, hack/build-actionlint.sh) and runs the steps the README's Install section promises."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"


def _set_version() -> ModuleType:
    spec = importlib.util.spec_from_file_location("set_version", REPO / "hack" / "set-version.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sv = _set_version()


def test_every_place_states_the_same_version() -> None:
    version = sv.check()
    chart = yaml.safe_load((REPO / "charts/adapterops/Chart.yaml").read_text())
    assert chart["appVersion"] == chart["version"] == version


def test_a_new_version_reaches_every_place(tmp_path: Path) -> None:
    old = sv.check()
    for rel in sv.PLACES:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, tmp_path / rel)
    sv.set_version("7.8.9-rc.1", tmp_path)
    assert sv.check(tmp_path) == "7.8.9-rc.1"
    # Not one occurrence of the old version is left in those files (a place the patterns missed would be).
    lines = {rel: (tmp_path / rel).read_text().splitlines() for rel in sv.PLACES}
    leftovers = [f"{rel}:{n}" for rel, text in lines.items() for n, line in enumerate(text, 1) if old in line]
    assert not leftovers


def test_a_place_that_disagrees_is_named(tmp_path: Path) -> None:
    for rel in sv.PLACES:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, tmp_path / rel)
    values = tmp_path / "charts/adapterops/values.yaml"
    values.write_text(values.read_text().replace("trainer-hf:" + sv.check(), "trainer-hf:9.9.9"))
    with pytest.raises(SystemExit, match=r"versions disagree:[\s\S]*charts/adapterops/values.yaml: 0\.1\.0, 9\.9\.9"):
        sv.check(tmp_path)


@pytest.mark.parametrize("bad", ["1.2", "01.2.3", "1.2.3.4", "latest", ""])
def test_a_version_that_is_not_semantic_is_refused(bad: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="not a semantic version"):
        sv.set_version(bad, tmp_path)


def test_the_chart_runs_every_adapterops_image_at_its_app_version() -> None:
    from testworld.cluster import tool

    rendered = subprocess.run([tool("helm"), "template", "t", str(REPO / "charts/adapterops")], check=True,
                              capture_output=True, text=True).stdout  # fmt: skip
    version = sv.check()
    refs = re.findall(r"ghcr\.io/adapterops/[a-z-]+:[^\s\"']+", rendered)
    names = {r.split("/")[-1].split(":")[0] for r in refs}
    assert names >= {"operator", "trainer-hf", "trainer-nemo", "adapter-fetcher"}
    assert {r.rsplit(":", 1)[1] for r in refs} == {version}, refs


def test_the_release_workflow_passes_actionlint() -> None:
    actionlint = subprocess.run([str(REPO / "hack/build-actionlint.sh")], check=True, capture_output=True, text=True)
    workflows = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert workflows
    out = subprocess.run([actionlint.stdout.strip(), "-no-color", *workflows], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_release_workflow_takes_every_version_from_the_tag_and_signs() -> None:
    text = (WORKFLOWS / "release.yml").read_text()
    doc = yaml.safe_load(text)
    assert doc[True]["push"]["tags"] == ["v[0-9]+.[0-9]+.[0-9]+*"]  # PyYAML reads the key `on` as True
    runs = [s.get("run", "") for job in doc["jobs"].values() for s in job["steps"]]
    # Every job that builds or packages sets the version first.
    for name in ("images", "publish"):
        steps = "\n".join(s.get("run", "") for s in doc["jobs"][name]["steps"])
        assert 'hack/set-version.py "$VERSION"' in steps, name
    joined = "\n".join(runs)
    assert "hack/build-images.sh --arch" in joined
    assert "cosign sign --yes --recursive" in joined and "cosign attest --yes --type cyclonedx" in joined
    assert 'helm push "build/chart/adapterops-$VERSION.tgz" "oci://$REGISTRY/charts"' in joined
    assert doc["jobs"]["publish"]["permissions"]["id-token"] == "write"
    assert {i["arch"] for i in doc["jobs"]["images"]["strategy"]["matrix"]["include"]} == {"amd64", "arm64"}
