"""Storage URIs a trial reads and writes: `s3://bucket/key`, `pvc://claim/path` and absolute paths.

`pvc://claim/path` is the path the operator mounts the claim at: `$ADAPTEROPS_PVC_ROOT/claim/path`
(default /mnt/pvc). `s3://` goes through boto3, configured the standard AWS way: the endpoint from
`AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`), credentials from the environment, profile or instance
role. Used by the trainer, the kubectl plugin (reports) and the serving pods' adapter fetcher; boto3
only. The operator reads judge prompts with `read_bounded` through `s3_client_with`: the credentials
and endpoint it is given (a tenant's), never its own environment's, and never more than a limit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from adapterops_common.contract import PVC_ROOT

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:  # boto3 stubs are optional: without them the client is Any.
    S3Client = Any


class UriError(Exception):
    """A URI that is malformed or points at nothing."""


class UriNotFound(UriError):
    """The URI is well formed but nothing is stored there."""


class TooLarge(UriError):
    """The object is larger than the reader's limit (nothing beyond the limit was read)."""

    def __init__(self, uri: str, limit: int) -> None:
        super().__init__(f"{uri}: dataset larger than {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class Location:
    """A parsed URI: an S3 object/prefix, or a local path (pvc:// resolved)."""

    uri: str
    bucket: str | None = None
    key: str = ""
    path: Path | None = None

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None


def pvc_root() -> Path:
    return Path(os.environ.get("ADAPTEROPS_PVC_ROOT", PVC_ROOT))


def parse(uri: str) -> Location:
    if uri.startswith("s3://"):
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket:
            raise UriError(f"{uri}: no bucket in s3:// URI")
        return Location(uri=uri, bucket=bucket, key=key)
    if uri.startswith("pvc://"):
        rest = uri[len("pvc://") :]
        claim, _, sub = rest.partition("/")
        if not claim:
            raise UriError(f"{uri}: no claim name in pvc:// URI")
        # Refuse `..` so a spec cannot reach outside the claim's mount.
        if ".." in PurePosixPath(sub).parts:
            raise UriError(f"{uri}: '..' is not allowed in pvc:// paths")
        return Location(uri=uri, path=pvc_root() / claim / sub)
    if uri.startswith("/"):
        return Location(uri=uri, path=Path(uri))
    raise UriError(f"{uri}: expected s3://bucket/key, pvc://claim/path or an absolute path")


def join(uri: str, *parts: str) -> str:
    """Append path segments to a URI without doubling or dropping slashes."""
    out = uri.rstrip("/")
    for part in parts:
        out += "/" + part.strip("/")
    return out


def s3_client() -> S3Client:
    import boto3
    from botocore.config import Config

    # S3-compatible servers behind a custom endpoint (versitygw, Ceph, ...) rarely have wildcard DNS
    # for virtual-hosted buckets, so path-style addressing is the safe default there.
    custom = bool(os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3"))
    style = os.environ.get("ADAPTEROPS_S3_ADDRESSING_STYLE", "path" if custom else "auto")
    config = Config(s3={"addressing_style": style}, retries={"max_attempts": 5, "mode": "standard"})
    return boto3.client("s3", config=config)


@dataclass(frozen=True)
class S3Credentials:
    """Explicit S3 access: what a tenant's Secret says (AWS_* keys), used instead of this process's own."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    region: str | None = None
    endpoint_url: str | None = None  # None: AWS S3 itself


def s3_client_with(creds: S3Credentials, connect_timeout: float = 5.0, read_timeout: float = 30.0) -> S3Client:
    """A client with exactly `creds`: explicit keys (so no environment, profile, instance role or web
    identity of this process is consulted) and the given endpoint (configured ones are ignored). A custom
    endpoint is addressed path-style: the host stays the endpoint's (virtual-hosted style would put the
    bucket name in front of it)."""
    import boto3
    from botocore.config import Config

    style = "path" if creds.endpoint_url else "auto"
    session = boto3.session.Session(
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        aws_session_token=creds.session_token,
        region_name=creds.region or "us-east-1",
    )
    config = Config(
        s3={"addressing_style": style},
        retries={"max_attempts": 2, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        ignore_configured_endpoint_urls=True,
    )
    return session.client("s3", endpoint_url=creds.endpoint_url, config=config)


def read_bounded(client: S3Client, uri: str, max_bytes: int, chunk_bytes: int = 1 << 16) -> bytes:
    """The s3:// object at `uri`, streamed; TooLarge as soon as it is known to exceed `max_bytes` (from its
    Content-Length, or while reading), so no more than `max_bytes` (+ one chunk) is ever held.

    Errors are UriError naming the URI and S3's error code only (never the text of an answer)."""
    from botocore.exceptions import BotoCoreError, ClientError

    loc = parse(uri)
    if loc.bucket is None:
        raise UriError(f"{uri}: not an s3:// URI")
    try:
        answer = client.get_object(Bucket=loc.bucket, Key=loc.key)
    except ClientError as exc:
        if _is_missing(exc):
            raise UriNotFound(f"{uri}: no such object") from exc
        code = str(exc.response.get("Error", {}).get("Code", "")) or "unknown"
        raise UriError(f"{uri}: S3 refused the read ({code})") from exc
    except BotoCoreError as exc:
        raise UriError(f"{uri}: {type(exc).__name__}") from exc
    body = answer["Body"]
    try:
        length = answer.get("ContentLength")
        if length is not None and length > max_bytes:
            raise TooLarge(uri, max_bytes)
        chunks: list[bytes] = []
        size = 0
        for chunk in body.iter_chunks(chunk_bytes):
            size += len(chunk)
            if size > max_bytes:  # a missing or lying Content-Length
                raise TooLarge(uri, max_bytes)
            chunks.append(chunk)
    except BotoCoreError as exc:
        raise UriError(f"{uri}: {type(exc).__name__} while reading") from exc
    finally:
        body.close()
    return b"".join(chunks)


def _is_missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code in {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}
    return False


def fetch_file(uri: str, dest_dir: Path) -> Path:
    """A local path holding the file at `uri`: the file itself when local, a download for s3://."""
    loc = parse(uri)
    if loc.path is not None:
        if not loc.path.is_file():
            raise UriNotFound(f"{uri}: no such file ({loc.path})")
        return loc.path
    assert loc.bucket is not None
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / (PurePosixPath(loc.key).name or "object")
    try:
        s3_client().download_file(loc.bucket, loc.key, str(target))
    except Exception as exc:
        if _is_missing(exc):
            raise UriNotFound(f"{uri}: no such object") from exc
        raise
    return target


def _s3_keys(client: S3Client, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def fetch_tree(uri: str, dest_dir: Path) -> Path:
    """A local directory with everything under `uri`: the directory itself when local, a download for s3://."""
    loc = parse(uri)
    if loc.path is not None:
        if not loc.path.is_dir():
            raise UriNotFound(f"{uri}: no such directory ({loc.path})")
        return loc.path
    assert loc.bucket is not None
    client = s3_client()
    prefix = loc.key.rstrip("/") + "/" if loc.key else ""
    try:
        keys = [k for k in _s3_keys(client, loc.bucket, prefix) if not k.endswith("/")]
    except Exception as exc:
        if _is_missing(exc):
            raise UriNotFound(f"{uri}: no such bucket") from exc
        raise
    if not keys:
        raise UriNotFound(f"{uri}: no objects under this prefix")
    for key in keys:
        target = dest_dir / key[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(loc.bucket, key, str(target))
    return dest_dir


def put_file(local: Path, uri: str) -> None:
    loc = parse(uri)
    if loc.path is not None:
        loc.path.parent.mkdir(parents=True, exist_ok=True)
        # Write next to the target and rename, so a reader never sees a half-written file.
        tmp = loc.path.with_name(f".{loc.path.name}.tmp")
        shutil.copyfile(local, tmp)
        tmp.replace(loc.path)
        return
    assert loc.bucket is not None
    s3_client().upload_file(str(local), loc.bucket, loc.key)


def put_tree(local_dir: Path, uri: str) -> list[str]:
    """Copy every file under `local_dir` to `uri`/...; returns the URIs written."""
    written: list[str] = []
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        target = join(uri, path.relative_to(local_dir).as_posix())
        put_file(path, target)
        written.append(target)
    return written


def install_tree(uri: str, dest: Path) -> Path:
    """Fetch the tree at `uri` into exactly `dest`, replacing it atomically (rename within one folder).

    Used by serving pods: an engine that polls its adapter folder (NIM_PEFT_REFRESH_INTERVAL) must never
    see a half-copied adapter.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        src = fetch_tree(uri, staging / "download")
        if src != staging / "download":  # a local source: copy it
            shutil.copytree(src, staging / "download", dirs_exist_ok=True)
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
        (staging / "download").rename(dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest
