"""The local cluster, the chart and the operator process, driven from Python (tests and the demo).

The operator runs as a local process under the chart's ServiceAccount (a TokenRequest token) with the
environment the chart's Deployment declares, so the chart's RBAC and configuration are what is tested.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from testworld.rootfs import BuiltImage, RootfsRun

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools"
CHART = REPO / "charts" / "adapterops"
LOGS = TOOLS / "logs"


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the condition may not be checkable yet
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_error})" if last_error else "")
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tool(name: str) -> str:
    path = TOOLS / "bin" / name
    if not path.exists():
        subprocess.run([str(REPO / "hack" / "build-tools.sh")], check=True, stdout=subprocess.DEVNULL)
    return str(path)


class LocalCluster:
    def __init__(self, name: str) -> None:
        self.name = name
        self.kubeconfig = TOOLS / "clusters" / f"{name}.kubeconfig"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "ADAPTEROPS_CLUSTER": self.name}

    def up(self) -> LocalCluster:
        subprocess.run([str(REPO / "hack" / "cluster.sh"), "up"], env=self.env, check=True)
        return self

    def down(self) -> None:
        subprocess.run([str(REPO / "hack" / "cluster.sh"), "down"], env=self.env, check=True)

    def crash(self, *components: str) -> None:
        """kill -9 control-plane components (etcd, kube-apiserver, kube-controller-manager, ...)."""
        subprocess.run([str(REPO / "hack" / "cluster.sh"), "crash", *components], env=self.env, check=True)

    def start(self) -> None:
        """Start what is not running (crashed, or exited on its own as a controller manager that lost its
        lease does), as a node's kubelet restarts static pods; returns once the API server serves."""
        subprocess.run(
            [str(REPO / "hack" / "cluster.sh"), "start"], env=self.env, check=True, stdout=subprocess.DEVNULL
        )

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["kubectl", *args], env=self.env, input=input, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, manifest: dict[str, Any] | str, namespace: str | None = None) -> None:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        self.kubectl("apply", *(["-n", namespace] if namespace else []), "-f", "-", input=text)

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([tool("helm"), *args], env=self.env, capture_output=True, text=True, timeout=300)
        if check and proc.returncode != 0:
            raise RuntimeError(f"helm {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def ensure_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}
        self.apply(ns)

    def install_chart(
        self,
        release: str = "adapterops",
        namespace: str = "adapterops-system",
        values: dict[str, Any] | None = None,
        chart: Path = CHART,
    ) -> None:
        # The operator's namespace enforces the restricted Pod Security profile: the chart's pod must pass.
        self.ensure_namespace(namespace, {"pod-security.kubernetes.io/enforce": "restricted"})
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(values or {}, f)
        self.helm(
            "upgrade", "--install", release, str(chart), "-n", namespace, "-f", f.name, "--wait", "--timeout", "120s"
        )
        os.unlink(f.name)

    def service_account_kubeconfig(self, account: str, namespace: str, path: Path) -> Path:
        """A kubeconfig that authenticates as a ServiceAccount, with a TokenRequest token (as a kubelet mounts)."""
        token = self.kubectl("create", "token", account, "-n", namespace, "--duration=24h").stdout.strip()
        admin = yaml.safe_load(self.kubeconfig.read_text())
        cluster = admin["clusters"][0]["cluster"]
        ca = (
            cluster.get("certificate-authority-data")
            or base64.b64encode(Path(cluster["certificate-authority"]).read_bytes()).decode()
        )
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": self.name, "cluster": {"server": cluster["server"], "certificate-authority-data": ca}}
            ],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [{"name": account, "context": {"cluster": self.name, "user": account, "namespace": namespace}}],
            "current-context": account,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(doc))
        return path


class OperatorProcess:
    """`python -m adapterops`, configured as the chart's Deployment configures the operator pod. With `image`
    (a built operator image, testworld.rootfs), the image's entrypoint runs in its root filesystem, as its
    user, read-only, with only the pod's environment: a dependency the image lacks fails here. Without it, the
    repository's .venv runs the operator (benchmarks, debugging)."""

    def __init__(
        self,
        cluster: LocalCluster,
        release: str = "adapterops",
        namespace: str = "adapterops-system",
        extra_env: dict[str, str] | None = None,
        replica: str = "",
        image: BuiltImage | None = None,
    ) -> None:
        """`replica` names a further replica of the same Deployment (its own pod name, files and log)."""
        self.cluster = cluster
        self.image = image
        self._rootfs: RootfsRun | None = None
        self.release = release
        self.namespace = namespace
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        suffix = f"-{replica}" if replica else ""
        self.workdir = TOOLS / "operator" / f"{cluster.name}{suffix}"
        self.log_path = LOGS / f"operator-{cluster.name}{suffix}.log"
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.pod_name = f"{release}-local{suffix}-{self.health_port}"

    def _pod_env(self) -> dict[str, str]:
        deploy = self.cluster.get("deployment", self.release, "-n", self.namespace)
        pod = deploy["spec"]["template"]["spec"]
        container = pod["containers"][0]
        # The downward API, as a kubelet resolves it for this (local) pod.
        fields = {"metadata.namespace": self.namespace, "metadata.name": self.pod_name}
        env = {
            e["name"]: fields[e["valueFrom"]["fieldRef"]["fieldPath"]] if "valueFrom" in e else e.get("value", "")
            for e in container.get("env", [])
        }
        # Materialise the ConfigMap volume the pod mounts at /etc/adapterops.
        volume = next(v for v in pod["volumes"] if v["name"] == "gpu-classes")
        data = self.cluster.get("configmap", volume["configMap"]["name"], "-n", self.namespace)["data"]
        gpu_file = self.workdir / "gpu-classes.yaml"
        gpu_file.write_text(data["gpu-classes.yaml"])
        env["ADAPTEROPS_GPU_CLASSES_FILE"] = str(gpu_file)
        return env

    def start(self) -> OperatorProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        LOGS.mkdir(parents=True, exist_ok=True)
        deploy = self.cluster.get("deployment", self.release, "-n", self.namespace)
        account = deploy["spec"]["template"]["spec"]["serviceAccountName"]
        kubeconfig = self.cluster.service_account_kubeconfig(account, self.namespace, self.workdir / "kubeconfig")
        env = {
            **self._pod_env(),
            "KUBECONFIG": str(kubeconfig),
            "ADAPTEROPS_BIND_ADDRESS": "127.0.0.1",
            "ADAPTEROPS_HEALTH_PORT": str(self.health_port),
            "ADAPTEROPS_METRICS_PORT": str(self.metrics_port),
            **self.extra_env,
        }
        log = open(self.log_path, "ab")  # noqa: SIM115 (owned by the child process)
        if self.image is not None:
            # The image's entrypoint; the kubeconfig and the GPU class file (in workdir) bound at the same path.
            self._rootfs = RootfsRun(self.image, binds=(self.workdir,))
            argv = self._rootfs.command([], env)
            self.proc = subprocess.Popen(argv, env={"PATH": os.environ["PATH"]}, stdout=log, stderr=subprocess.STDOUT)
        else:
            host_env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTEROPS_")}
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "adapterops"], env={**host_env, **env}, stdout=log, stderr=subprocess.STDOUT
            )
        where = f"image {self.image.digest}" if self.image else sys.executable
        wait_for(self.healthy, 60, f"operator ({where}) liveness on :{self.health_port} (log: {self.log_path})")
        return self

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"operator exited with {self.proc.returncode}; see {self.log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def role(self) -> str:
        """What /readyz says: "leader", "standby", or why not ready ("" when it does not answer)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz", timeout=2) as resp:
                return str(resp.read().decode()).strip()
        except urllib.error.HTTPError as exc:
            return str(exc.read().decode()).strip()
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_bytes(self) -> int:
        """Resident memory of the operator process (VmRSS in /proc/<pid>/status)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for pid {self.proc.pid}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._rootfs is not None:
            self._rootfs.cleanup()

    def kill(self) -> None:
        """A crash: no cleanup, no goodbye."""
        self.stop(signal.SIGKILL)


def module_dir(module: str, version: str) -> Path:
    """A Go module's files at a pinned version, from the module proxy (checksums from the sum database)."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        cwd=REPO / "hack" / "tools",
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"},
    ).stdout
    return Path(json.loads(out)["Dir"])


def local_volume(cluster: LocalCluster, namespace: str, claim: str, path: Path, size: str = "100Gi") -> Path:
    """A PersistentVolumeClaim bound (by the real PV controller) to a hostPath PersistentVolume at `path`,
    the local cluster's storage: the kubelet harness mounts it where the pod asks."""
    path.mkdir(parents=True, exist_ok=True)
    pv_name = f"{namespace}-{claim}"[:63]
    # A volume released by an earlier claim of that name (a rerun) keeps the old claim's uid: recreate it
    # (Retain: the files stay).
    phase = cluster.kubectl("get", "pv", pv_name, "-o", "jsonpath={.status.phase}", check=False).stdout
    if phase == "Released":
        cluster.kubectl("delete", "pv", pv_name, "--wait=true")
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "labels": {"adapterops.io/test-namespace": namespace}},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "local",
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": str(path)},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        }
    )
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "local",
                "volumeName": pv_name,
                "resources": {"requests": {"storage": size}},
            },
        }
    )
    wait_for(
        lambda: cluster.get("pvc", claim, "-n", namespace).get("status", {}).get("phase") == "Bound",
        30,
        f"PVC {namespace}/{claim} to bind",
    )
    return path


def capture(cluster: LocalCluster, kind: str, name: str, namespace: str, label: str) -> None:
    """With ADAPTEROPS_CAPTURE_DIR set, save the object as the operator left it (the Argo CD health
    checks' test fixtures are taken from these real objects)."""
    out = os.environ.get("ADAPTEROPS_CAPTURE_DIR")
    if not out:
        return
    obj = cluster.get(kind, name, "-n", namespace)
    meta = obj["metadata"]
    obj["metadata"] = {k: meta[k] for k in ("name", "namespace", "generation", "annotations") if k in meta}
    obj["metadata"]["namespace"] = "ml-team"
    path = Path(out) / f"{label}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(obj, sort_keys=False))
