"""The cluster tests' world: a real local control plane, the chart installed, the operator running
under the chart's identity. Started once per session; torn down at the end unless
ADAPTEROPS_KEEP_CLUSTER=1 (handy while developing: the next session reuses it)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest
from testworld.cluster import LocalCluster, OperatorProcess

CLUSTER = os.environ.get("ADAPTEROPS_TEST_CLUSTER", "adapterops-test")
OPERATOR_NAMESPACE = "adapterops-system"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster/" in str(item.fspath):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    world = LocalCluster(CLUSTER).up()
    yield world
    if not os.environ.get("ADAPTEROPS_KEEP_CLUSTER"):
        world.down()


@pytest.fixture(scope="session")
def chart(cluster: LocalCluster) -> str:
    cluster.install_chart(namespace=OPERATOR_NAMESPACE)
    return OPERATOR_NAMESPACE


@pytest.fixture(scope="session")
def operator(cluster: LocalCluster, chart: str) -> Iterator[OperatorProcess]:
    process = OperatorProcess(cluster, namespace=chart).start()
    yield process
    process.stop()


@pytest.fixture
def namespace(cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, named after it."""
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:6]
    name = f"t-{request.node.name[:40].lower().replace('_', '-').strip('-')}-{digest}"
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name)
    cluster.ensure_namespace(name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
