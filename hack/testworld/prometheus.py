"""Real Prometheus (Debian's package) for the local cluster, discovering pods the way a cluster's
Prometheus does (kubernetes_sd over the API server, the prometheus.io/* pod annotations), scraping
every second. Pod IPs are loopback addresses, so it reaches the harness-run serving processes."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from pathlib import Path

import yaml

from testworld.cluster import LOGS, TOOLS, LocalCluster, free_port, wait_for


def config(kubeconfig: Path) -> dict[str, object]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{
            "job_name": "kubernetes-pods",
            "kubernetes_sd_configs": [{"role": "pod", "kubeconfig_file": str(kubeconfig)}],
            "relabel_configs": [
                {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "action": "keep", "regex": "true"},
                {"source_labels": ["__meta_kubernetes_pod_phase"], "action": "keep", "regex": "Running"},
                {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"], "target_label": "__metrics_path__", "regex": "(.+)"},
                {"source_labels": ["__meta_kubernetes_pod_ip", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
                 "target_label": "__address__", "regex": "(.+);(.+)", "replacement": "$1:$2"},
                {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            ],
        }],
    }


class Prometheus:
    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.dir = TOOLS / "prometheus" / cluster.name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Prometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed: run hack/setup.sh (Debian package prometheus)")
        shutil.rmtree(self.dir / "data", ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config(self.cluster.kubeconfig)))
        LOGS.mkdir(parents=True, exist_ok=True)
        log = open(LOGS / f"prometheus-{self.cluster.name}.log", "ab")  # noqa: SIM115 (owned by the child)
        self.proc = subprocess.Popen(
            [binary, f"--config.file={self.dir / 'prometheus.yml'}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        wait_for(self.ready, 60, f"Prometheus on {self.url}")
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None
