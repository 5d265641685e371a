"""The plugin's API access: get and merge-patch AdapterOps objects through lightkube (the operator's client
library), with the kubeconfig handling kubectl users expect. Objects come back as plain JSON dicts.

Every failure becomes a CliError naming what was being done: `reading ModelDeployment ml/agent: not
allowed (403): ...`, `... cannot reach the API server at https://...: ...`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx2
import yaml
from lightkube import ApiError, Client, ConfigError, KubeConfig
from lightkube.config.kubeconfig import SingleConfig
from lightkube.types import PatchType

from adapterops.api.kinds import Kind
from adapterops.api.names import InvalidPathName, check_object_path
from adapterops.cli.errors import CliError

REQUEST_TIMEOUT = 30.0
FIELD_MANAGER = "kubectl-adapterops"
DEFAULT_KUBECONFIG = "~/.kube/config"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class Api(Protocol):
    """What the commands need from the API server (the unit tests fake this)."""

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, None when it does not exist."""
        ...

    def patch(self, kind: Kind, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Apply a JSON merge patch; the object as patched."""
        ...


class LightkubeApi:
    """Api on a lightkube Client."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @property
    def host(self) -> str:
        return str(self.client.config.cluster.server)

    @contextlib.contextmanager
    def _doing(self, what: str) -> Iterator[None]:
        """API and connection errors as CliErrors that say what was being done."""
        try:
            yield
        except ApiError as exc:
            code, message = exc.status.code, exc.status.message
            if code in (401, 403):
                raise CliError(f"{what}: not allowed ({code}): {message}") from exc
            raise CliError(f"{what}: the API server answered {code}: {message}") from exc
        except httpx2.HTTPError as exc:  # after ApiError, which is one
            raise CliError(f"{what}: cannot reach the API server at {self.host}: {exc}") from exc

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        _check(kind, namespace, name)
        with self._doing(f"reading {kind.kind} {namespace}/{name}"):
            try:
                obj = self.client.get(kind.resource, name, namespace=namespace)
            except ApiError as exc:
                if exc.status.code == 404:
                    return None
                raise
            return dict(obj)  # a generic resource is the JSON object, a dict

    def patch(self, kind: Kind, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        _check(kind, namespace, name)
        with self._doing(f"patching {kind.kind} {namespace}/{name}"):
            try:
                obj = self.client.patch(kind.resource, name, body, namespace=namespace, patch_type=PatchType.MERGE)
            except ApiError as exc:
                if exc.status.code == 404:
                    raise CliError(
                        f'{kind.kind} "{name}" not found in namespace "{namespace}" (deleted meanwhile?)'
                    ) from exc
                raise
            return dict(obj)  # a generic resource is the JSON object, a dict


def _check(kind: Kind, namespace: str, name: str) -> None:
    """A name or namespace from the command line never addresses another path: lightkube joins them into
    the URL unescaped ('../../kube-system/secrets/x' would be another namespace's Secret)."""
    try:
        check_object_path(kind.kind, namespace, name)
    except InvalidPathName as exc:
        raise CliError(str(exc)) from exc


def load_kubeconfig(paths: Sequence[str]) -> KubeConfig:
    """The kubeconfig files merged as kubectl merges $KUBECONFIG: missing files are skipped, the first
    file to define a cluster, user or context (or the current context) wins. Relative file paths in
    them resolve against the first file."""
    configs = [KubeConfig.from_file(p) for p in paths if Path(p).expanduser().is_file()]
    if not configs:
        raise ConfigError(f"no kubeconfig file at {os.pathsep.join(paths)}")
    if len(configs) == 1:
        return configs[0]
    merged = KubeConfig(
        clusters={},
        contexts={},
        users={},
        current_context=next((c.current_context for c in configs if c.current_context), None),
        fname=configs[0].fname,
    )
    for config in reversed(configs):  # earlier files overwrite later ones
        merged.clusters.update(config.clusters)
        merged.contexts.update(config.contexts)
        merged.users.update(config.users)
    return merged


def _select(paths: Sequence[str], context: str | None) -> SingleConfig:
    config = load_kubeconfig(paths).get(context_name=context)
    if config is None:  # only when given a default, which this does not pass
        raise ConfigError("no current context")
    return config


def connect(kubeconfig: str | None, context: str | None) -> tuple[Api, str]:
    """The API of the current (or named) kubeconfig context and its namespace, from `kubeconfig`, else
    $KUBECONFIG (a list of files), else ~/.kube/config; inside a pod without a kubeconfig, the pod's
    ServiceAccount and namespace."""
    paths = [kubeconfig] if kubeconfig else [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    paths = paths or [DEFAULT_KUBECONFIG]
    where = os.pathsep.join(paths)
    try:
        config = _select(paths, context)
    except (ConfigError, KeyError, TypeError, yaml.YAMLError) as exc:
        in_pod = (SERVICE_ACCOUNT / "namespace").exists()
        if kubeconfig or context or not in_pod:
            detail = f"it names {exc} but does not define it" if isinstance(exc, KeyError) else str(exc)
            raise CliError(f"no usable kubeconfig ({where}): {detail}") from exc
        config = _in_cluster()
    try:
        client = Client(config, timeout=httpx2.Timeout(REQUEST_TIMEOUT), field_manager=FIELD_MANAGER)
    # lightkube asserts a user is set; an unreadable certificate or key is an OSError
    except (ConfigError, AssertionError, OSError) as exc:
        raise CliError(f"kubeconfig context {config.context_name} ({where}) is not usable: {exc}") from exc
    return LightkubeApi(client), config.namespace


def _in_cluster() -> SingleConfig:
    try:
        config = KubeConfig.from_service_account(SERVICE_ACCOUNT).get()
    except (ConfigError, KeyError) as exc:  # KeyError: KUBERNETES_SERVICE_HOST/PORT unset
        raise CliError(f"no kubeconfig, and the pod's ServiceAccount is not usable: {exc}") from exc
    assert config is not None  # from_service_account sets the current context
    return config
