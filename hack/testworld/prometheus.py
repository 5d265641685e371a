"""Real Prometheus (Debian's package) for the local cluster, scraping every second.

Debian builds Prometheus without Kubernetes service discovery, so the harness does its job: it lists
the pods annotated `prometheus.io/scrape: "true"` and writes them as file_sd targets with the labels
kubernetes_sd plus the usual `labelmap __meta_kubernetes_pod_label_(.+)` relabelling would give
(namespace, pod, every pod label with its name sanitised: adapterops.io/revision ->
adapterops_io_revision). Pod IPs are loopback addresses, so Prometheus reaches the harness-run
serving processes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from testworld.cluster import LOGS, TOOLS, LocalCluster, free_port, wait_for


def config(targets: Path) -> dict[str, object]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "kubernetes-pods",
                "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}],
            }
        ],
    }


def targets(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for pod in pods:
        meta, status = pod["metadata"], pod.get("status") or {}
        annotations = meta.get("annotations") or {}
        if (
            annotations.get("prometheus.io/scrape") != "true"
            or status.get("phase") != "Running"
            or not status.get("podIP")
        ):
            continue
        labels = {re.sub(r"[^a-zA-Z0-9_]", "_", k): v for k, v in (meta.get("labels") or {}).items()}
        labels.update(
            namespace=meta["namespace"],
            pod=meta["name"],
            __metrics_path__=annotations.get("prometheus.io/path", "/metrics"),
        )
        out.append({"targets": [f"{status['podIP']}:{annotations.get('prometheus.io/port', '80')}"], "labels": labels})
    return sorted(out, key=lambda t: t["targets"][0])


class Prometheus:
    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.dir = TOOLS / "prometheus" / cluster.name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._discovery: threading.Thread | None = None
        self._closed = threading.Event()

    def start(self, keep_data: bool = False) -> Prometheus:
        """Start with an empty TSDB, or (keep_data) with what it had scraped: a restart, as on a volume."""
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed: run hack/setup.sh (Debian package prometheus)")
        if not keep_data:
            shutil.rmtree(self.dir / "data", ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_targets()
        self.write_config()
        LOGS.mkdir(parents=True, exist_ok=True)
        log = open(LOGS / f"prometheus-{self.cluster.name}.log", "ab")  # noqa: SIM115 (owned by the child)
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self.dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self.ready, 60, f"Prometheus on {self.url}")
        if self._discovery is None:
            self._discovery = threading.Thread(target=self._discover, daemon=True)
            self._discovery.start()
        return self

    def write_config(self) -> None:
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config(self.dir / "targets.json")))

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return list(json.load(resp)["data"]["result"])

    def _write_targets(self) -> None:
        try:
            pods = self.cluster.get("pods", "-A")["items"]
        except RuntimeError:
            return
        tmp = self.dir / "targets.json.tmp"
        tmp.write_text(json.dumps(targets(pods)))
        tmp.replace(self.dir / "targets.json")

    def _discover(self) -> None:
        while not self._closed.is_set():
            self._write_targets()
            time.sleep(1)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def close(self) -> None:
        self.stop()
        self._closed.set()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None
