"""The real API server refuses every invalid manifest with a message that names the field and what
it accepts, and accepts the shipped examples."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from testworld.cluster import REPO, LocalCluster

INVALID = sorted((Path(__file__).parent / "invalid").glob("*.yaml"))
EXAMPLES = sorted(p for p in (REPO / "manifests" / "examples").glob("*.yaml") if p.name != "kustomization.yaml")


def expectations(path: Path) -> list[str]:
    return [
        line.removeprefix("# expect: ").strip()
        for line in path.read_text().splitlines()
        if line.startswith("# expect: ")
    ]


def test_there_are_at_least_25_invalid_manifests() -> None:
    assert len(INVALID) >= 25
    assert all(expectations(p) for p in INVALID), "every invalid manifest states the message it expects"


@pytest.mark.parametrize("manifest", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_manifest_is_refused_with_a_clear_message(cluster: LocalCluster, chart: str, manifest: Path) -> None:
    proc = cluster.kubectl("apply", "--dry-run=server", "-n", "default", "-f", str(manifest), check=False)
    assert proc.returncode != 0, f"{manifest.name} was accepted"
    for expected in expectations(manifest):
        assert expected in proc.stderr, f"{manifest.name}: {expected!r} not in {proc.stderr!r}"


@pytest.mark.parametrize("manifest", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_are_accepted(cluster: LocalCluster, chart: str, manifest: Path) -> None:
    proc = cluster.kubectl("apply", "--dry-run=server", "-n", "default", "-f", str(manifest), check=False)
    assert proc.returncode == 0, proc.stderr


def test_defaults_are_applied_by_the_api_server(cluster: LocalCluster, chart: str, namespace: str) -> None:
    cluster.apply(_minimal_ftj("defaults"), namespace)
    spec = cluster.get("ftj", "defaults", "-n", namespace)["spec"]
    assert spec["lora"] == {
        "rank": 8,
        "alpha": 16,
        "dropout": 0.05,
        "targetModules": ["linear_qkv", "linear_proj", "linear_fc1", "linear_fc2"],
    }
    assert spec["training"]["optimizer"] == "adamw" and spec["training"]["scheduler"]["type"] == "cosine"
    assert spec["sweep"]["maxTrials"] == 20 and spec["dataset"]["validationFraction"] == 0.3


def test_training_is_immutable_but_parallelism_and_suspend_are_not(
    cluster: LocalCluster, chart: str, namespace: str
) -> None:
    cluster.apply(_minimal_ftj("frozen"), namespace)
    changed = _minimal_ftj("frozen")
    changed["spec"]["training"]["maxSteps"] = 99
    proc = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(changed), check=False)
    assert proc.returncode != 0 and "spec.training is immutable" in proc.stderr
    cluster.kubectl(
        "patch",
        "ftj",
        "frozen",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec": {"suspend": true, "sweep": {"parallelism": 2}}}',
    )


def test_kubectl_explain_teaches_the_api(cluster: LocalCluster, chart: str) -> None:
    out = cluster.kubectl("explain", "finetunejob.spec.sweep").stdout
    assert "maxTrials" in out and "parallelism" in out and "hyperparameter sweep" in out.lower()
    out = cluster.kubectl("explain", "modeldeployment.spec.runtime.tensorParallelSize").stdout
    assert "1, 2, 4 or 8" in out


def test_short_names_and_category(cluster: LocalCluster, chart: str, namespace: str) -> None:
    cluster.apply(_minimal_ftj("short"), namespace)
    assert "short" in cluster.kubectl("get", "ftj", "-n", namespace).stdout
    assert "short" in cluster.kubectl("get", "adapterops", "-n", namespace).stdout


def _minimal_ftj(name: str) -> dict[str, object]:
    return {
        "apiVersion": "adapterops.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "baseModel": {"name": "tiny", "uri": "/models/tiny"},
            "dataset": {"train": "/data/train.jsonl"},
            "training": {"maxSteps": 10},
            "objective": {"metric": "validationLoss", "goal": "minimize"},
            "output": {"uri": "pvc://adapters/out"},
        },
    }
