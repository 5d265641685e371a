"""`kubectl adapterops`'s API access (cli/client.py): kubeconfig handling as kubectl does it (current
context and its namespace, --context, --kubeconfig, a $KUBECONFIG list) and the lightkube calls on a mock
transport (the requests sent, objects as plain dicts, failures that name what was being done)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from lightkube import Client, KubeConfig
from lightkube.config.models import Cluster, User

from adapterops.api.kinds import FINETUNEJOB, MODELDEPLOYMENT
from adapterops.cli.client import LightkubeApi, connect
from adapterops.cli.errors import CliError

SERVER = "https://127.0.0.1:6443"


def write_kubeconfig(path: Path, contexts: dict[str, str | None], current: str | None, server: str = SERVER) -> Path:
    """A kubeconfig with one cluster and user per context; a context's value is its namespace."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": f"{server}/{name}", "insecure-skip-tls-verify": True}}
            for name in contexts
        ],
        "users": [{"name": name, "user": {"token": f"token-{name}"}} for name in contexts],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, **({"namespace": ns} if ns else {})}}
            for name, ns in contexts.items()
        ],
        **({"current-context": current} if current else {}),
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_current_context_gives_the_server_and_namespace(tmp_path: Path) -> None:
    config = write_kubeconfig(tmp_path / "config", {"dev": "ml", "prod": None}, current="dev")
    api, namespace = connect(str(config), None)
    assert isinstance(api, LightkubeApi)
    assert (api.host, namespace) == (f"{SERVER}/dev", "ml")


def test_context_flag_picks_a_context_whose_namespace_defaults_to_default(tmp_path: Path) -> None:
    config = write_kubeconfig(tmp_path / "config", {"dev": "ml", "prod": None}, current="dev")
    api, namespace = connect(str(config), "prod")
    assert isinstance(api, LightkubeApi)
    assert (api.host, namespace) == (f"{SERVER}/prod", "default")


def test_kubeconfig_variable_merges_its_files_the_first_to_define_a_name_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write_kubeconfig(tmp_path / "a", {"shared": "from-a"}, current="prod")
    second = write_kubeconfig(tmp_path / "b", {"shared": "from-b", "prod": "serving"}, current="shared")
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing'}:{second}")
    api, namespace = connect(None, None)
    assert isinstance(api, LightkubeApi)
    assert (api.host, namespace) == (f"{SERVER}/prod", "serving"), "a's current context, defined in b"
    assert connect(None, "shared")[1] == "from-a"


def test_an_unusable_kubeconfig_is_named(tmp_path: Path) -> None:
    with pytest.raises(CliError, match=rf"no usable kubeconfig \({tmp_path}/missing\): no kubeconfig file at"):
        connect(str(tmp_path / "missing"), None)
    config = write_kubeconfig(tmp_path / "config", {"dev": "ml"}, current="dev")
    with pytest.raises(CliError, match=r"no usable kubeconfig \(.*/config\): Context 'nope' not found"):
        connect(str(config), "nope")
    no_current = write_kubeconfig(tmp_path / "no-current", {"dev": "ml"}, current=None)
    with pytest.raises(CliError, match="No current context set"):
        connect(str(no_current), None)


Handler = Callable[[httpx2.Request], httpx2.Response]


def api_on(handler: Handler) -> LightkubeApi:
    config = KubeConfig.from_one(cluster=Cluster(server=SERVER), user=User(token="t"), namespace="ml")
    return LightkubeApi(Client(config, transport=httpx2.MockTransport(handler)))


def status(code: int, message: str) -> httpx2.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
    return httpx2.Response(code, json=body)


FOO = {"apiVersion": "adapterops.io/v1alpha1", "kind": "FineTuneJob", "metadata": {"name": "foo", "namespace": "ml"}}


def test_get_reads_the_kinds_path_and_returns_a_plain_dict() -> None:
    seen: list[tuple[str, str]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append((request.method, request.url.path))
        return httpx2.Response(200, json={**FOO, "status": {"state": "Running"}})

    obj = api_on(handler).get(FINETUNEJOB, "ml", "foo")
    assert seen == [("GET", "/apis/adapterops.io/v1alpha1/namespaces/ml/finetunejobs/foo")]
    assert type(obj) is dict and obj["status"] == {"state": "Running"}


def test_patch_sends_a_json_merge_patch() -> None:
    seen: list[tuple[str, str, str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append((request.method, request.url.path, request.headers["content-type"], json.loads(request.content)))
        return httpx2.Response(200, json={**FOO, "kind": "ModelDeployment"})

    body = {"metadata": {"annotations": {"adapterops.io/promote": "bbbb222222"}}}
    assert api_on(handler).patch(MODELDEPLOYMENT, "ml", "agent", body)["kind"] == "ModelDeployment"
    assert seen == [
        (
            "PATCH",
            "/apis/adapterops.io/v1alpha1/namespaces/ml/modeldeployments/agent",
            "application/merge-patch+json",
            body,
        )
    ]


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (
            status(403, 'cannot get resource "finetunejobs"'),
            'reading FineTuneJob ml/foo: not allowed (403): cannot get resource "finetunejobs"',
        ),
        (status(401, "Unauthorized"), "reading FineTuneJob ml/foo: not allowed (401): Unauthorized"),
        (status(500, "etcd timeout"), "reading FineTuneJob ml/foo: the API server answered 500: etcd timeout"),
    ],
)
def test_api_errors_name_what_was_being_read(response: httpx2.Response, error: str) -> None:
    with pytest.raises(CliError) as err:
        api_on(lambda request: response).get(FINETUNEJOB, "ml", "foo")
    assert str(err.value) == error


def test_a_missing_object_is_none_and_a_patch_of_it_says_so() -> None:
    api = api_on(lambda request: status(404, 'finetunejobs "foo" not found'))
    assert api.get(FINETUNEJOB, "ml", "foo") is None
    with pytest.raises(CliError, match=r'^FineTuneJob "foo" not found in namespace "ml" \(deleted meanwhile\?\)$'):
        api.patch(FINETUNEJOB, "ml", "foo", {"spec": {"suspend": True}})


def test_an_unreachable_api_server_is_named() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    with pytest.raises(
        CliError,
        match=rf"^patching ModelDeployment ml/agent: cannot reach the API server at {SERVER}: connection refused$",
    ):
        api_on(refuse).patch(MODELDEPLOYMENT, "ml", "agent", {})
