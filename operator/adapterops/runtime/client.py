"""The operator's Kubernetes client: lightkube's AsyncClient behind the few verbs the reconcilers use.

Builders produce plain manifest dicts (`spec -> manifest`, no I/O); this is where they meet the API:
server-side apply under one field manager (applying the same manifest twice is a no-op, so a restart
never duplicates a child), create for what must not be taken over, merge patches, deletes. Kinds
resolve through lightkube's registry: core kinds ship with it, ours and the add-ons' are registered
from `adapterops.api.kinds`. Every call has a timeout (a hung connection fails the reconcile instead
of blocking a worker) and is counted by verb.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx2
from lightkube import AsyncClient, KubeConfig
from lightkube.codecs import from_dict
from lightkube.core.exceptions import ApiError
from lightkube.core.resource import NamespacedResource, NamespacedSubResource, Resource
from lightkube.core.resource_registry import resource_registry
from lightkube.types import CascadeType, PatchType

from adapterops.api.kinds import ADDONS, OURS
from adapterops.api.names import InvalidPathName, check_object_path
from adapterops.runtime.metrics import API_REQUESTS

FIELD_MANAGER = "adapterops"

__all__ = [
    "FIELD_MANAGER",
    "ApiError",
    "Client",
    "InvalidPathName",
    "KindNotServed",
    "is_not_found",
    "resource_of",
    "status_code",
    "type_not_served",
]


class KindNotServed(Exception):
    """The API server does not serve this kind: an add-on (Kueue, Gateway API, JobSet) is not installed."""

    def __init__(self, res: type[Resource]) -> None:
        info = res._api_info.resource
        super().__init__(f"{info.kind} ({info.group or 'core'}/{info.version}) is not served by this cluster")
        self.kind = info.kind


for _kind in (*OURS, *ADDONS):
    _ = _kind.resource  # registers the kind with lightkube, so manifests of it resolve


def resource_of(api_version: str, kind: str) -> type[NamespacedResource]:
    """The lightkube class of a namespaced kind (LoadResourceError for a kind nobody declared)."""
    res = resource_registry.load(api_version, kind)
    assert issubclass(res, NamespacedResource), f"{kind} is not namespaced"
    return res


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of a failed API call (lightkube raises ApiError for a Status answer, and plain
    httpx2.HTTPStatusError when the body is not JSON, as for an unknown API path)."""
    if isinstance(exc, ApiError):
        return exc.status.code
    if isinstance(exc, httpx2.HTTPStatusError):
        return exc.response.status_code
    return None


def is_not_found(exc: ApiError) -> bool:
    return exc.status.code == 404


def type_not_served(exc: BaseException) -> bool:
    """A 404 about the kind itself (its CRD is not installed), not about one object of it: the API server
    names the object in the Status details only when the object is what is missing."""
    if status_code(exc) != 404:
        return False
    details = exc.status.details if isinstance(exc, ApiError) else None
    return details is None or not details.name


def _check(res: type[Resource], namespace: str | None, name: str | None) -> None:
    """Refuse (InvalidPathName) a name or namespace that would address another path: lightkube joins them
    into the URL unescaped, and '../../kube-system/secrets/x' would read another namespace's Secret."""
    check_object_path(res._api_info.resource.kind, namespace, name)


def _check_manifest(manifest: dict[str, Any]) -> None:
    meta = manifest.get("metadata") or {}
    check_object_path(str(manifest.get("kind")), meta.get("namespace"), meta.get("name"))


def _body(obj: Any) -> dict[str, Any]:
    """Objects as dicts (lightkube returns typed structs for core kinds, dict subclasses for the rest)."""
    if isinstance(obj, Mapping):
        return dict(obj)
    return obj.to_dict()  # type: ignore[no-any-return]


class Client:
    def __init__(self, api: AsyncClient) -> None:
        self.api = api
        self.requests = 0  # API calls made, for the metrics and the benchmark (watches excluded)

    @classmethod
    def connect(cls, timeout_seconds: float = 30.0, watch_seconds: float = 300.0) -> Client:
        """In-cluster service account, else $KUBECONFIG / ~/.kube/config."""
        api = AsyncClient(KubeConfig.from_env(), timeout=httpx2.Timeout(timeout_seconds), field_manager=FIELD_MANAGER)
        # Watches have no read timeout in lightkube; the server closes each after `watch_seconds`, so a
        # stream silent for longer than that (plus slack) is a dead connection: fail it and reconnect.
        api._client._watch_timeout = httpx2.Timeout(timeout_seconds, read=watch_seconds + 30)
        return cls(api)

    async def close(self) -> None:
        await self.api.close()

    def _count(self, verb: str) -> None:
        self.requests += 1
        API_REQUESTS.labels(verb).inc()

    async def get(self, res: type[NamespacedResource], namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist; KindNotServed when its kind is not installed."""
        _check(res, namespace, name)
        self._count("GET")
        try:
            return _body(await self.api.get(res, name, namespace=namespace))
        except httpx2.HTTPStatusError as exc:
            if type_not_served(exc):
                raise KindNotServed(res) from exc
            if status_code(exc) == 404:
                return None
            raise

    async def list(
        self, res: type[NamespacedResource], namespace: str | None, labels: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        _check(res, namespace, None)
        self._count("LIST")
        return [_body(o) async for o in self.api.list(res, namespace=namespace, labels=labels)]

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply: creates the object or converges the fields we manage to `manifest`."""
        _check_manifest(manifest)
        self._count("APPLY")
        meta = manifest["metadata"]
        res = resource_of(manifest["apiVersion"], manifest["kind"])
        obj = await self.api.patch(
            res,
            meta["name"],
            manifest,
            namespace=meta.get("namespace"),
            patch_type=PatchType.APPLY,
            field_manager=FIELD_MANAGER,
            force=True,
        )
        return _body(obj)

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create; None when an object of that name exists already (the caller decides whether it is its own)."""
        _check_manifest(manifest)  # the name goes in the body, not the URL; a bad one is still nobody's
        self._count("CREATE")
        obj = from_dict(manifest)
        try:
            return _body(await self.api.create(obj))
        except ApiError as exc:
            if exc.status.code == 409:
                return None
            raise

    async def patch_merge(
        self,
        res: type[NamespacedResource] | type[NamespacedSubResource],
        namespace: str | None,
        name: str,
        patch: dict[str, Any],
    ) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386); `res` may be a subresource class such as `Kind.resource.Status`."""
        _check(res, namespace, name)
        self._count("PATCH")
        obj = await self.api.patch(
            res, name, patch, namespace=namespace, patch_type=PatchType.MERGE, field_manager=FIELD_MANAGER
        )
        return _body(obj)

    async def replace(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """PUT: conditional on the manifest's resourceVersion (a concurrent change answers 409)."""
        _check_manifest(manifest)
        self._count("UPDATE")
        return _body(await self.api.replace(from_dict(manifest)))

    async def delete(self, res: type[NamespacedResource], namespace: str | None, name: str) -> bool:
        """Delete in the background (the garbage collector removes dependents); False when already gone."""
        _check(res, namespace, name)
        self._count("DELETE")
        try:
            await self.api.delete(res, name, namespace=namespace, cascade=CascadeType.BACKGROUND)
        except ApiError as exc:
            if is_not_found(exc):
                return False
            raise
        return True
