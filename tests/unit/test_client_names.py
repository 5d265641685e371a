"""No name addresses another path: the operator's client (runtime/client.py) and the kubectl plugin's
(cli/client.py) refuse any name or namespace that is not a Kubernetes name before a request is made.
lightkube joins path segments unescaped and the HTTP client collapses '..': without the check,
`get(Secret, "../../kube-system/secrets/x", namespace="tenant-a")` reads kube-system's Secret."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import pytest
from lightkube import AsyncClient, Client, KubeConfig
from lightkube.config.models import Cluster, User
from lightkube.resources.core_v1 import ConfigMap, Secret

from adapterops.api.kinds import FINETUNEJOB, HTTPROUTE, MODELDEPLOYMENT
from adapterops.cli.client import LightkubeApi
from adapterops.cli.errors import CliError
from adapterops.runtime.client import Client as OperatorClient
from adapterops.runtime.client import InvalidPathName

SERVER = "https://127.0.0.1:6443"
BAD = ["..", "../x", "a/b", "%2F", "%2e%2e", "", "a" * 254, "../../kube-system/secrets/x", "UPPER", "a?b", "a#b"]
BAD_NAMESPACES = ["..", "../x", "a/b", "%2F", "%2e%2e", "", "a" * 64, "a.b"]


class Recorder:
    """A transport that records every request and answers 200 with an object."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append((request.method, request.url.raw_path.decode().split("?")[0]))
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok", "namespace": "tenant-a"}}
        return httpx2.Response(200, json=body)


def config() -> KubeConfig:
    return KubeConfig.from_one(cluster=Cluster(server=SERVER), user=User(token="t"), namespace="tenant-a")


def operator_client(recorder: Recorder) -> OperatorClient:
    return OperatorClient(AsyncClient(config(), transport=httpx2.MockTransport(recorder), field_manager="test"))


def manifest(namespace: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}}


Call = Callable[[OperatorClient, str, str], Awaitable[Any]]
CALLS: dict[str, Call] = {
    "get": lambda c, ns, n: c.get(Secret, ns, n),
    "get-addon": lambda c, ns, n: c.get(HTTPROUTE.resource, ns, n),
    "patch": lambda c, ns, n: c.patch_merge(ConfigMap, ns, n, {"data": {"a": "b"}}),
    "patch-status": lambda c, ns, n: c.patch_merge(FINETUNEJOB.resource.Status, ns, n, {"status": {}}),
    "replace": lambda c, ns, n: c.replace(manifest(ns, n)),
    "delete": lambda c, ns, n: c.delete(ConfigMap, ns, n),
    "create": lambda c, ns, n: c.create(manifest(ns, n)),
    "apply": lambda c, ns, n: c.apply(manifest(ns, n)),
}


async def test_the_library_alone_would_read_another_namespaces_secret() -> None:
    """Why the check exists (if lightkube starts escaping names, this says so)."""
    recorder = Recorder()
    api = AsyncClient(config(), transport=httpx2.MockTransport(recorder))
    await api.get(Secret, "../../kube-system/secrets/x", namespace="tenant-a")
    assert recorder.requests == [("GET", "/api/v1/namespaces/kube-system/secrets/x")]


@pytest.mark.parametrize("call", CALLS)
async def test_a_valid_name_is_sent(call: str) -> None:
    recorder = Recorder()
    await CALLS[call](operator_client(recorder), "tenant-a", "shop.v2")
    ((_, path),) = recorder.requests
    assert "/namespaces/tenant-a/" in path and path.startswith(("/api/v1/", "/apis/"))
    assert call == "create" or path.endswith("/shop.v2") or path.endswith("/shop.v2/status")


@pytest.mark.parametrize("call", CALLS)
async def test_a_bad_name_is_refused_before_any_request(call: str) -> None:
    recorder = Recorder()
    client = operator_client(recorder)
    for name in BAD:
        with pytest.raises(InvalidPathName, match=r" name .* into a request: it is not a DNS-1123 subdomain"):
            await CALLS[call](client, "tenant-a", name)
    assert recorder.requests == [] and client.requests == 0


@pytest.mark.parametrize("call", CALLS)
async def test_a_bad_namespace_is_refused_before_any_request(call: str) -> None:
    recorder = Recorder()
    client = operator_client(recorder)
    for namespace in BAD_NAMESPACES:
        with pytest.raises(InvalidPathName, match=r" namespace .* into a request: it is not a DNS-1123 label"):
            await CALLS[call](client, namespace, "ok")
    assert recorder.requests == []


async def test_a_bad_namespace_is_refused_for_a_list_too() -> None:
    recorder = Recorder()
    with pytest.raises(InvalidPathName):
        await operator_client(recorder).list(ConfigMap, "../kube-system", None)
    assert recorder.requests == []


async def test_the_error_names_the_kind_the_value_and_the_rule() -> None:
    with pytest.raises(InvalidPathName) as caught:
        await operator_client(Recorder()).get(Secret, "tenant-a", "../../kube-system/secrets/x")
    assert str(caught.value) == (
        "refusing to put Secret name '../../kube-system/secrets/x' into a request: it is not a DNS-1123 subdomain "
        "(lowercase letters, digits, '-' and '.', starting and ending with a letter or digit; at most 253 characters)"
    )


# --------------------------------------------------------------------------- the kubectl plugin


def plugin(recorder: Recorder) -> LightkubeApi:
    return LightkubeApi(Client(config(), transport=httpx2.MockTransport(recorder)))


@pytest.mark.parametrize("verb", ["get", "patch"])
def test_the_plugin_refuses_a_bad_name_or_namespace_before_any_request(verb: str) -> None:
    recorder = Recorder()
    api = plugin(recorder)
    for namespace, name in [*(("ml", n) for n in BAD), *((ns, "agent") for ns in BAD_NAMESPACES)]:
        with pytest.raises(CliError, match=r"^refusing to put ModelDeployment (name|namespace) .* into a request"):
            if verb == "get":
                api.get(MODELDEPLOYMENT, namespace, name)
            else:
                api.patch(MODELDEPLOYMENT, namespace, name, {"spec": {"canary": {"paused": True}}})
    assert recorder.requests == []


def test_the_plugin_sends_a_valid_name() -> None:
    recorder = Recorder()
    plugin(recorder).get(MODELDEPLOYMENT, "ml", "agent")
    assert recorder.requests == [("GET", "/apis/adapterops.io/v1alpha1/namespaces/ml/modeldeployments/agent")]
