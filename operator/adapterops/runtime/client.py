"""A small async Kubernetes client on top of kubernetes_asyncio: raw JSON in, raw JSON out.

The operator works with plain manifest dicts built by pure functions; typed client models would only
be converted back and forth. Writes use server-side apply under one field manager, so applying the same
manifest twice is a no-op and a restart never duplicates a child.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from adapterops.runtime.metrics import API_REQUESTS

FIELD_MANAGER = "adapterops"

__all__ = ["FIELD_MANAGER", "ApiException", "Kube", "resource_path"]

# apiVersion/kind -> (group path prefix, plural); only the kinds AdapterOps touches.
_PLURALS = {
    "Pod": "pods",
    "Service": "services",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "Event": "events",
    "Job": "jobs",
    "Deployment": "deployments",
    "FineTuneJob": "finetunejobs",
    "ModelDeployment": "modeldeployments",
    "HTTPRoute": "httproutes",
    "LocalQueue": "localqueues",
    "JobSet": "jobsets",
    "PyTorchJob": "pytorchjobs",
}


def resource_path(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = base + (f"/namespaces/{namespace}" if namespace else "") + f"/{_PLURALS[kind]}"
    return path + (f"/{name}" if name else "")


def _reason(raw: bytes) -> str | None:
    """The Status message the API server sends with an error, e.g. a conflict's explanation."""
    try:
        return str(json.loads(raw).get("message"))
    except (ValueError, AttributeError):
        return raw.decode(errors="replace")[:200] or None


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.requests = 0  # API calls made, for the metrics and the benchmark

    @classmethod
    async def connect(cls) -> Kube:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            await config.load_kube_config()
        return cls(client.ApiClient())

    async def close(self) -> None:
        await self.api.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        self.requests += 1
        API_REQUESTS.labels(method).inc()
        resp = await self.api.call_api(
            path,
            method,
            query_params=list((query or {}).items()),
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
        )
        raw = await resp.read()
        if resp.status >= 400:  # unread responses are not checked by the client: do it here
            exc = ApiException(status=resp.status, reason=_reason(raw) or resp.reason)
            exc.body = raw
            raise exc
        return json.loads(raw) if raw else None

    async def watch(self, path: str, query: dict[str, Any], seconds: int) -> AsyncIterator[dict[str, Any]]:
        """One watch request: its events until the server ends it after `seconds` (not counted in
        API_REQUESTS, which is about what reconciles cost)."""
        resp = await self.api.call_api(
            path,
            "GET",
            query_params=[*query.items(), ("watch", "true"), ("timeoutSeconds", str(seconds))],
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=seconds + 30,
        )
        try:
            if resp.status >= 400:
                raw = await resp.read()
                raise ApiException(status=resp.status, reason=_reason(raw) or resp.reason)
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)
        finally:
            resp.release()

    async def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = await self.request("GET", resource_path(api_version, kind, namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    async def list(
        self, api_version: str, kind: str, namespace: str | None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        query = {"labelSelector": label_selector} if label_selector else None
        out = await self.request("GET", resource_path(api_version, kind, namespace), query=query)
        return list(out.get("items", []))

    async def apply(self, manifest: dict[str, Any], force: bool = True) -> dict[str, Any]:
        """Server-side apply: creates the object or converges it to `manifest`."""
        meta = manifest["metadata"]
        path = resource_path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"])
        query = {"fieldManager": FIELD_MANAGER, "force": "true" if force else "false"}
        obj: dict[str, Any] = await self.request(
            "PATCH", path, body=manifest, query=query, content_type="application/apply-patch+yaml"
        )
        return obj

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create; None when it already exists (a create racing a restart is not an error)."""
        meta = manifest["metadata"]
        path = resource_path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"))
        try:
            obj: dict[str, Any] = await self.request("POST", path, body=manifest, query={"fieldManager": FIELD_MANAGER})
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise
        return obj

    async def patch_merge(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        patch: dict[str, Any],
        subresource: str = "",
    ) -> dict[str, Any]:
        path = resource_path(api_version, kind, namespace, name) + (f"/{subresource}" if subresource else "")
        obj: dict[str, Any] = await self.request(
            "PATCH",
            path,
            body=patch,
            query={"fieldManager": FIELD_MANAGER},
            content_type="application/merge-patch+json",
        )
        return obj

    async def delete(
        self, api_version: str, kind: str, namespace: str | None, name: str, propagation: str = "Background"
    ) -> bool:
        try:
            await self.request(
                "DELETE",
                resource_path(api_version, kind, namespace, name),
                body={"propagationPolicy": propagation},
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True
