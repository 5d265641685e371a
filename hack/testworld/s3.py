"""A real S3-compatible server for tests and the demo: versitygw (Apache-2.0) on its posix backend.

The binary is built from the Go module proxy by hack/build-s3.sh (pinned in hack/s3/go.mod) into the
per-user cache; `binary()` runs that script, which builds nothing when the binary is already there.

    with LocalS3(tmp_path) as s3:            # 127.0.0.1, ephemeral port, fresh root folder
        s3.create_bucket("models")
        env = s3.env()                         # AWS_ENDPOINT_URL + credentials for boto3 / subprocesses

    python -m testworld.s3 --root DIR --port 9000      # foreground, for the demo
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ACCESS_KEY = "adapterops"
SECRET_KEY = "adapterops-local-secret"
REGION = "us-east-1"


def binary() -> Path:
    """Path of versitygw: $ADAPTEROPS_VERSITYGW, else built (when missing) by hack/build-s3.sh."""
    override = os.environ.get("ADAPTEROPS_VERSITYGW")
    if override:
        return Path(override)
    out = subprocess.run([str(REPO / "hack" / "build-s3.sh")], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalS3:
    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root.parent / f"{root.name}-versitygw.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The standard AWS variables a trial pod would get."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def start(self, timeout: float = 30.0) -> LocalS3:
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(binary()),
            "--access",
            ACCESS_KEY,
            "--secret",
            SECRET_KEY,
            "--region",
            REGION,
            "--port",
            f"127.0.0.1:{self.port}",
            "--quiet",
            "posix",
            str(self.root),
        ]
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Ready = a signed ListBuckets succeeds (the port accepting is not enough)."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"versitygw exited with {self.proc.returncode}; see {self.log_path}")
            try:
                self.client().list_buckets()
                return
            except Exception as exc:  # not listening yet
                last = exc
                time.sleep(0.1)
        raise TimeoutError(f"versitygw not ready after {timeout}s: {last}")

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description="Run versitygw (posix backend) as a local S3 server.")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--bucket", action="append", default=[], help="create this bucket (repeatable)")
    args = parser.parse_args()
    s3 = LocalS3(args.root, args.port).start()
    for bucket in args.bucket:
        s3.create_bucket(bucket)
    print(f"S3 on {s3.endpoint} (access key {ACCESS_KEY}, secret {SECRET_KEY}), root {args.root}", flush=True)
    try:
        assert s3.proc is not None
        s3.proc.wait()
    except KeyboardInterrupt:
        s3.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
