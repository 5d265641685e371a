"""The canary judge's prompts, which the operator itself reads: `configmap://NAME/KEY` from the
ModelDeployment's namespace, or `s3://bucket/key` with the ModelDeployment's own storage credentials.

An s3:// read never uses the operator's identity: the keys come from the Secret named by
spec.storageSecretRef (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional AWS_SESSION_TOKEN, AWS_REGION or
AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL: what the adapter fetcher gets), an endpoint in
it must be one the cluster admin allowed (and is addressed path-style, so the host stays that one), and
the object is streamed with a size cap (ADAPTEROPS_JUDGE_DATASET_MAX_BYTES), so a large object cannot
exhaust the operator's memory.
"""

from __future__ import annotations

import asyncio
import base64
import binascii

from lightkube.resources.core_v1 import ConfigMap, Secret

from adapterops.api.common import LocalObjectReference, SecretKeyRef
from adapterops.config import Config
from adapterops.runtime.client import Client
from adapterops_common import storage

FIELD = "spec.canary.analysis.judge.dataset"
SECRET_FIELD = "spec.storageSecretRef"


class DatasetError(Exception):
    """The dataset cannot be read; the message names the field or Secret key, and what would do."""


async def read_dataset(
    client: Client, config: Config, namespace: str, uri: str, storage_secret: LocalObjectReference | None
) -> str:
    if uri.startswith("configmap://"):
        name, _, item = uri.removeprefix("configmap://").partition("/")
        cm = await client.get(ConfigMap, namespace, name)
        if cm is None or item not in (cm.get("data") or {}):
            raise DatasetError(f"{FIELD}: ConfigMap {namespace}/{name} has no key {item!r}")
        return str(cm["data"][item])
    if not uri.startswith("s3://"):  # the CRD allows no other; never a path on the operator's own disk
        raise DatasetError(f"{FIELD}: {uri!r}: the operator reads only configmap://NAME/KEY and s3://bucket/key")
    creds = await s3_credentials(client, config, namespace, storage_secret)
    limit = config.judge_dataset_max_bytes

    def read() -> bytes:
        from botocore.exceptions import BotoCoreError

        try:
            s3 = storage.s3_client_with(creds)
        except (BotoCoreError, ValueError) as exc:  # e.g. a region botocore refuses
            raise storage.UriError(f"{uri}: the storage Secret's settings are unusable ({type(exc).__name__})") from exc
        return storage.read_bounded(s3, uri, limit)

    try:
        data = await asyncio.to_thread(read)
    except storage.UriError as exc:
        raise DatasetError(f"{FIELD}: {exc}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{FIELD}: {uri} is not UTF-8 text (JSON Lines expected)") from exc


async def s3_credentials(
    client: Client, config: Config, namespace: str, ref: LocalObjectReference | None
) -> storage.S3Credentials:
    """S3 access from the ModelDeployment's storage Secret; DatasetError says what is missing or refused."""
    need = "an s3:// judge dataset is read with the ModelDeployment's own credentials"
    if ref is None:
        raise DatasetError(
            f"{SECRET_FIELD}: {need}: name a Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(or use a configmap:// dataset)"
        )
    secret = await client.get(Secret, namespace, ref.name)
    if secret is None:
        raise DatasetError(f"{SECRET_FIELD}: Secret {namespace}/{ref.name} does not exist ({need})")
    values = _decoded(secret.get("data") or {})
    missing = [k for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not values.get(k)]
    if missing:
        raise DatasetError(f"{SECRET_FIELD}: Secret {namespace}/{ref.name} has no {' or '.join(missing)} ({need})")
    endpoint_key = next((k for k in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL") if values.get(k)), None)
    endpoint = values[endpoint_key] if endpoint_key else None
    if endpoint is not None:
        problem = config.s3_endpoint_problem(endpoint)
        if problem is not None:
            raise DatasetError(f"{SECRET_FIELD}: Secret {namespace}/{ref.name} key {endpoint_key}: {problem}")
    return storage.S3Credentials(
        access_key_id=values["AWS_ACCESS_KEY_ID"],
        secret_access_key=values["AWS_SECRET_ACCESS_KEY"],
        session_token=values.get("AWS_SESSION_TOKEN") or None,
        region=values.get("AWS_REGION") or values.get("AWS_DEFAULT_REGION") or None,
        endpoint_url=endpoint,
    )


async def secret_value(client: Client, namespace: str, ref: SecretKeyRef, field: str) -> str:
    secret = await client.get(Secret, namespace, ref.name)
    if secret is None or ref.key not in (secret.get("data") or {}):
        raise DatasetError(f"{field}: Secret {namespace}/{ref.name} has no key {ref.key!r}")
    return base64.b64decode(secret["data"][ref.key]).decode().strip()


def _decoded(data: dict[str, str]) -> dict[str, str]:
    """A Secret's data, decoded; values that are not base64 UTF-8 text are left out."""
    out: dict[str, str] = {}
    for key, value in data.items():
        try:
            out[key] = base64.b64decode(value, validate=True).decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError):
            continue
    return out
