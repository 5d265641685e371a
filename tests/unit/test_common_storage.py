"""Storage URIs against a real S3-compatible server (versitygw, started here), pvc:// and paths,
and the serving pods' adapter fetcher (`python -m adapterops_common fetch`)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from adapterops_common import storage
from adapterops_common.cli import main as cli_main
from testworld.s3 import ACCESS_KEY, REGION, SECRET_KEY, LocalS3


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    with LocalS3(tmp_path_factory.mktemp("s3") / "root") as server:
        server.create_bucket("models")
        yield server


@pytest.fixture
def aws_env(s3: LocalS3, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)


def adapter_dir(path: Path, marker: str = "a") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_config.json").write_text(json.dumps({"r": 8, "marker": marker}))
    (path / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    return path


def test_tree_round_trip_through_s3(aws_env: None, tmp_path: Path) -> None:
    src = adapter_dir(tmp_path / "src")
    (src / "nested").mkdir()
    (src / "nested" / "x.txt").write_text("deep")
    written = storage.put_tree(src, "s3://models/job/trial-1/adapter")
    assert "s3://models/job/trial-1/adapter/nested/x.txt" in written
    got = storage.fetch_tree("s3://models/job/trial-1/adapter/", tmp_path / "dl")
    assert (got / "nested" / "x.txt").read_text() == "deep"
    assert (got / "adapter_model.safetensors").read_bytes() == b"\0" * 64
    one = storage.fetch_file("s3://models/job/trial-1/adapter/adapter_config.json", tmp_path / "one")
    assert json.loads(one.read_text())["r"] == 8


def test_missing_objects_are_not_found(aws_env: None, tmp_path: Path) -> None:
    with pytest.raises(storage.UriNotFound):
        storage.fetch_file("s3://models/no/such.jsonl", tmp_path)
    with pytest.raises(storage.UriNotFound):
        storage.fetch_tree("s3://models/no/such/prefix", tmp_path)
    with pytest.raises(storage.UriNotFound):
        storage.fetch_tree("s3://no-such-bucket/x", tmp_path)


def test_pvc_and_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADAPTEROPS_PVC_ROOT", str(tmp_path / "pvc"))
    assert (
        storage.parse("pvc://datasets/commerce/train.jsonl").path
        == tmp_path / "pvc" / "datasets" / "commerce" / "train.jsonl"
    )
    assert storage.parse("/mnt/models/x").path == Path("/mnt/models/x")
    storage.put_tree(adapter_dir(tmp_path / "a"), "pvc://out/j/t/adapter")
    assert (tmp_path / "pvc" / "out" / "j" / "t" / "adapter" / "adapter_config.json").is_file()
    assert storage.join("s3://b/p/", "/adapter/") == "s3://b/p/adapter"
    for bad in ("pvc://c/../../etc", "http://x/y", "relative/path", "s3:///key"):
        with pytest.raises(storage.UriError):
            storage.parse(bad)


def test_fetch_installs_adapters_in_the_nim_layout(
    aws_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage.put_tree(adapter_dir(tmp_path / "v1", "v1"), "s3://models/j/t1/adapter")
    storage.put_tree(adapter_dir(tmp_path / "v2", "v2"), "s3://models/j/t2/adapter")
    root = tmp_path / "peft-source"
    args = [
        "fetch",
        "--adapter",
        "commerce=s3://models/j/t1/adapter",
        "--adapter",
        f"local={tmp_path / 'v2'}",
        "--root",
        str(root),
    ]
    assert cli_main(args) == 0
    assert json.loads((root / "commerce" / "adapter_config.json").read_text())["marker"] == "v1"
    assert json.loads((root / "local" / "adapter_config.json").read_text())["marker"] == "v2"
    # A new revision replaces the folder whole: no file of the old adapter survives.
    (root / "commerce" / "stale.bin").write_bytes(b"old")
    assert cli_main(["fetch", "--uri", "s3://models/j/t2/adapter", "--dest", str(root / "commerce")]) == 0
    assert json.loads((root / "commerce" / "adapter_config.json").read_text())["marker"] == "v2"
    assert not (root / "commerce" / "stale.bin").exists()
    assert sorted(p.name for p in root.iterdir()) == ["commerce", "local"]  # no staging leftovers
    capsys.readouterr()


def test_fetch_refuses_what_is_not_an_adapter(
    aws_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "README").write_text("hi")
    assert cli_main(["fetch", "--uri", str(tmp_path / "junk"), "--dest", str(tmp_path / "d")]) == 1
    assert "missing adapter_config.json, adapter_model.safetensors" in capsys.readouterr().err
    assert cli_main(["fetch", "--uri", "s3://models/none", "--dest", str(tmp_path / "e")]) == 1
    assert cli_main(["fetch", "--adapter", "../x=s3://models/a", "--root", str(tmp_path)]) == 2


# --------------------------------------------------------------------------- the operator's bounded read


def own_credentials(s3: LocalS3, secret: str = SECRET_KEY) -> storage.S3Credentials:
    return storage.S3Credentials(ACCESS_KEY, secret, region=REGION, endpoint_url=s3.endpoint)


def test_a_bounded_read_returns_an_object_up_to_the_limit_and_refuses_a_larger_one(s3: LocalS3) -> None:
    data = b'{"prompt": "red shoes"}\n' * 100
    s3.client().put_object(Bucket="models", Key="prompts/p.jsonl", Body=data)
    client = storage.s3_client_with(own_credentials(s3))
    assert storage.read_bounded(client, "s3://models/prompts/p.jsonl", len(data)) == data
    with pytest.raises(
        storage.TooLarge, match=f"s3://models/prompts/p.jsonl: dataset larger than {len(data) - 1} bytes"
    ):
        storage.read_bounded(client, "s3://models/prompts/p.jsonl", len(data) - 1)
    with pytest.raises(storage.UriNotFound):
        storage.read_bounded(client, "s3://models/prompts/missing.jsonl", len(data))
    with pytest.raises(storage.UriError, match="not an s3:// URI"):
        storage.read_bounded(client, "/etc/hostname", len(data))


class _Counted(io.RawIOBase):
    """An 8 MiB object body that counts what was read from it."""

    def __init__(self, size: int = 8 << 20) -> None:
        self.size = size
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.served)
        buffer[:n] = b"x" * n
        self.served += n
        return n


class _UnannouncedLength:
    """An S3 client whose object's Content-Length lies (10 bytes): the cap must hold while streaming."""

    def __init__(self) -> None:
        from botocore.response import StreamingBody

        self.raw = _Counted()
        self.body = StreamingBody(self.raw, None)

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": self.body, "ContentLength": 10}


def test_a_bounded_read_stops_streaming_once_past_the_limit() -> None:
    fake = _UnannouncedLength()
    with pytest.raises(storage.TooLarge, match="dataset larger than 1048576 bytes"):
        storage.read_bounded(cast(Any, fake), "s3://b/huge.jsonl", 1 << 20, chunk_bytes=1 << 16)
    assert fake.raw.served <= (1 << 20) + (1 << 16)  # one chunk past the limit at most
    assert fake.raw.closed


def test_explicit_credentials_are_used_never_the_process_environment(
    s3: LocalS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's own environment (its identity) could read the object; the tenant's keys decide."""
    s3.client().put_object(Bucket="models", Key="prompts/q.jsonl", Body=b"{}\n")
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)  # the environment alone would succeed
    wrong = storage.s3_client_with(own_credentials(s3, secret="not-the-secret"))
    with pytest.raises(storage.UriError, match=r"S3 refused the read \(\w+\)$") as caught:
        storage.read_bounded(wrong, "s3://models/prompts/q.jsonl", 1024)
    assert "calculated" not in str(caught.value)  # S3's own words ("The request signature we calculated") are not
    # No endpoint given: AWS S3 itself, not the environment's AWS_ENDPOINT_URL.
    aws = storage.s3_client_with(storage.S3Credentials(ACCESS_KEY, SECRET_KEY))
    assert aws.meta.endpoint_url.startswith("https://s3.") and s3.endpoint not in aws.meta.endpoint_url
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # a dead endpoint in the environment
    right = storage.s3_client_with(own_credentials(s3))
    assert storage.read_bounded(right, "s3://models/prompts/q.jsonl", 1024) == b"{}\n"
    # Path-style: the bucket name never becomes part of the host the request goes to.
    assert right.meta.config.s3 == {"addressing_style": "path"}
