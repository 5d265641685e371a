"""The cluster tests' world (tests/cluster, tests/chaos): a real local control plane, the chart installed,
the operator running under the chart's identity. Started once per session, only when a test asks for it,
and shared by both folders; torn down at the end unless ADAPTEROPS_KEEP_CLUSTER=1 (handy while
developing: the next session reuses it)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from testworld.cluster import CHART, TOOLS, LocalCluster, OperatorProcess
from testworld.engines import nim_profiles
from testworld.judge import StandInJudge
from testworld.kubelet import Kubelet
from testworld.listener import Listener
from testworld.nim import serving_images
from testworld.prometheus import Prometheus
from testworld.prometheus_operator import OperatorPrometheus
from testworld.rootfs import operator_image

CLUSTER = os.environ.get("ADAPTEROPS_TEST_CLUSTER", "adapterops-test")
OPERATOR_NAMESPACE = "adapterops-system"
# The chart as the test world installs it: AdapterOps' pods are played by the kubelet harness (real
# processes), so they carry the label that tells kwok to leave them alone; images name the local runtimes.
CHART_VALUES = {
    "podLabels": {"kwok.adapterops.io/kubelet": "harness"},
    "images": {
        "trainerNemo": "adapterops/trainer-nemo:local",
        "trainerHf": "adapterops/trainer-hf:local",
        "nim": "nvcr.io/nim/nvidia/llama-3.1-nemotron-nano-8b-v1:1.8",
        "vllm": "vllm/vllm-openai:v0.11.0",
        "fetcher": "adapterops/adapter-fetcher:local",
    },
    "reconcileSeconds": 5,
    # The profiles of the stand-in's NIM images (testworld/engines.py), over the chart's defaults.
    "nimProfiles": nim_profiles(),
    "prometheusScrapeSeconds": 1,  # testworld.prometheus scrapes every second
}
# Serving images have no command in the pod spec (their entrypoint): the harness runs the stand-in of
# the engine version the image is, told the GPUs the pod got.
SERVING_IMAGES = serving_images()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(folder in str(item.fspath) for folder in ("tests/cluster/", "tests/chaos/")):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    world = LocalCluster(CLUSTER).up()
    yield world
    if not os.environ.get("ADAPTEROPS_KEEP_CLUSTER"):
        world.down()


@pytest.fixture(scope="session")
def prometheus(cluster: LocalCluster) -> Iterator[Prometheus]:
    server = Prometheus(cluster).start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def operator_prometheus(cluster: LocalCluster) -> Iterator[OperatorPrometheus]:
    """A Prometheus configured as the Prometheus Operator configures it from the chart's serving PodMonitor
    (testworld/prometheus_operator.py); started by the tests that use it, reachable by the operator."""
    # Scraped every second, as the plain Prometheus of the test world is.
    enabled = ("--set", "metrics.servingPodMonitor.enabled=true", "--set", "metrics.servingPodMonitor.interval=1s")
    rendered = cluster.helm("template", "adapterops", str(CHART), "-n", OPERATOR_NAMESPACE, *enabled).stdout
    monitors = [d for d in yaml.safe_load_all(rendered) if d and d.get("kind") == "PodMonitor"]
    server = OperatorPrometheus(cluster, monitors)
    yield server
    server.close()


@pytest.fixture(scope="session")
def tenant_endpoint() -> Iterator[Listener]:
    """An address tenants may reach through the operator only under /allowed (test_egress_on_cluster.py)."""
    with Listener() as server:
        yield server


@pytest.fixture(scope="session")
def chart(
    cluster: LocalCluster,
    prometheus: Prometheus,
    judge: StandInJudge,
    tenant_endpoint: Listener,
    operator_prometheus: OperatorPrometheus,
) -> str:
    # What the admin lets tenants point AdapterOps at: the test world's judges (the stand-in, and a port
    # nothing listens on for "judge down"), NVIDIA's hosted API (the examples), and /allowed of the listener.
    egress = {
        # The listener's /allowed, and the Prometheus Operator's Prometheus (test_prometheus_operator.py).
        "allowedPrometheusUrls": [f"{tenant_endpoint.url}/allowed", operator_prometheus.url],
        "allowedJudgeEndpoints": [
            judge.url,
            "http://127.0.0.1:9/v1",
            "https://integrate.api.nvidia.com/v1",
            f"{tenant_endpoint.url}/allowed",
        ],
    }
    values = {**CHART_VALUES, "prometheusUrl": prometheus.url, "egress": egress}
    cluster.install_chart(namespace=OPERATOR_NAMESPACE, values=values)
    return OPERATOR_NAMESPACE


@pytest.fixture(scope="session")
def operator(cluster: LocalCluster, chart: str) -> Iterator[OperatorProcess]:
    # The operator image's root filesystem (testworld.rootfs): what users run, not the repository's .venv.
    process = OperatorProcess(cluster, namespace=chart, image=operator_image()).start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def kubelet(cluster: LocalCluster) -> Iterator[Kubelet]:
    harness = Kubelet(cluster, images=SERVING_IMAGES).start()
    yield harness
    harness.stop()


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """A tiny Llama built in code once per machine (cached; same seed, same files)."""
    from testworld.tiny_model import build

    dest = TOOLS / "cache" / "tiny-llama-v1"
    if not (dest / "config.json").exists():
        build(dest.with_suffix(".tmp"), seed=0)
        dest.with_suffix(".tmp").rename(dest)
    return dest


@pytest.fixture(scope="session")
def judge() -> Iterator[StandInJudge]:
    with StandInJudge() as server:
        yield server


@pytest.fixture
def namespace(cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, named after it."""
    digest = hashlib.sha1(f"{request.node.nodeid}{time.time()}".encode()).hexdigest()[:6]
    name = f"t-{request.node.name[:40].lower().replace('_', '-').strip('-')}-{digest}"
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name)
    cluster.ensure_namespace(name)
    yield name
    if os.environ.get("ADAPTEROPS_KEEP_NAMESPACES"):  # for a post-mortem of a failed test
        return
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
    cluster.kubectl("delete", "pv", "-l", f"adapterops.io/test-namespace={name}", "--wait=false", check=False)
