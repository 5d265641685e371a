"""The serving pods' init container: the adapter-fetcher image running `python -m adapterops_common fetch`
with arguments that entry point accepts (the trainer image is no longer needed to copy adapters)."""

from __future__ import annotations

from typing import Any

from adapterops.api.modeldeployment import ModelDeploymentSpec
from adapterops.config import Config, GpuClass
from adapterops.deploy.builders import revision_deployment
from adapterops_common.cli import parser

H100 = GpuClass.model_validate({"nodeSelector": {"gpu": "h100"}, "pricePerHour": 4.5, "memoryGiB": 80})
CONFIG = Config(gpu_classes={"H100": H100})
OWNER: dict[str, Any] = {
    "apiVersion": "adapterops.io/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "agent", "namespace": "ml", "uid": "1234"},
}
ADAPTERS = {"commerce": "pvc://work/adapters/sweep-0123/t03/adapter", "search": "s3://adapters/sweep/t01/adapter"}


def init_container() -> dict[str, Any]:
    spec = ModelDeploymentSpec.model_validate(
        {"baseModel": {"name": "tiny"}, "adapters": [{"name": "commerce", "uri": ADAPTERS["commerce"]}]}
    )
    deployment = revision_deployment(OWNER, spec, ADAPTERS, "abc123", 1, CONFIG)
    [fetch] = deployment["spec"]["template"]["spec"]["initContainers"]
    container: dict[str, Any] = fetch
    return container


def test_fetch_runs_the_common_entry_point_in_the_fetcher_image() -> None:
    fetch = init_container()
    assert fetch["image"] == "ghcr.io/adapterops/adapter-fetcher:0.1.0"
    assert fetch["command"][:4] == ["python", "-m", "adapterops_common", "fetch"]


def test_fetch_arguments_are_the_ones_the_entry_point_accepts() -> None:
    args = parser().parse_args(init_container()["command"][3:])
    assert args.command == "fetch" and args.root == "/adapters" and not args.no_verify
    assert args.adapter == [f"{name}={uri}" for name, uri in sorted(ADAPTERS.items())]
