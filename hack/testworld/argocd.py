"""Argo CD v3.6.1 against the local cluster: the application controller and the repo server run as local
processes (as Argo CD's own `make start-local` runs them), with an in-memory Redis, syncing from a git
repository in a local directory (a `file://` URL, as Argo CD's own end-to-end tests use).

Binaries: hack/argocd-e2e.sh (Argo CD's one `argocd` binary, which dispatches on ARGOCD_BINARY_NAME;
miniredis; kustomize v5.8.3), cached in ~/.cache/adapterops. The in-cluster destination
(`https://kubernetes.default.svc`, which the Applications in manifests/argocd name) is the local API
server through ARGOCD_FAKE_IN_CLUSTER=true: Argo CD then builds that cluster's client from KUBECONFIG
instead of a pod's service account (pkg/apis/application/v1alpha1/types.go, rawRestConfig). Everything
listens on 127.0.0.1.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import IO, Any

import yaml

from testworld.cluster import LOGS, REPO, TOOLS, LocalCluster, free_port, wait_for

NAMESPACE = "argocd"
# Argo CD's settings informers only see ConfigMaps and Secrets with this label.
PART_OF = {"app.kubernetes.io/part-of": "argocd"}
APPLICATION_HEALTH_KEY = "resource.customizations.health.argoproj.io_Application"


def application_health_check() -> str:
    """The health check for Applications themselves, as manifests/argocd/README.md documents it (the
    yaml block holding its argocd-cm key): with it, the root Application's sync waves wait for the
    operator's Application to be synced and Healthy before the team's."""
    readme = (REPO / "manifests" / "argocd" / "README.md").read_text()
    for block in readme.split("```yaml\n")[1:]:
        text = block.split("```", 1)[0]
        if text.lstrip().startswith(APPLICATION_HEALTH_KEY + ":"):
            return str(yaml.safe_load(text)[APPLICATION_HEALTH_KEY])
    raise AssertionError(f"no yaml block with {APPLICATION_HEALTH_KEY} in manifests/argocd/README.md")


def build() -> Path:
    """hack/argocd-e2e.sh: build what is missing (minutes the first time), return the bin directory."""
    out = subprocess.run(
        [str(REPO / "hack" / "argocd-e2e.sh")], check=True, stdout=subprocess.PIPE, text=True, timeout=2700
    ).stdout
    return Path(out.strip().splitlines()[-1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


class ArgoCD:
    """Redis, the repo server and the application controller, in namespace `argocd` of `cluster`."""

    def __init__(self, cluster: LocalCluster, bin_dir: Path, workdir: Path) -> None:
        self.cluster = cluster
        self.bin = bin_dir
        self.crds = bin_dir.parent / "crds"
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self._files: list[IO[bytes]] = []

    # --- the cluster side: CRDs and settings -------------------------------------------------------

    def install(self, extra_cm: dict[str, str] | None = None) -> None:
        self.cluster.kubectl("apply", "--server-side", "-f", str(self.crds / "application-crd.yaml"))
        self.cluster.kubectl("apply", "--server-side", "-f", str(self.crds / "appproject-crd.yaml"))
        for crd in ("applications.argoproj.io", "appprojects.argoproj.io"):
            wait_for(functools.partial(self._established, crd), 60, f"CRD {crd} established")
        self.cluster.ensure_namespace(NAMESPACE)
        # argocd-cm: exactly manifests/argocd/argocd-cm.yaml (the project's health checks and actions)
        # plus the health check for Applications that the README documents.
        cm: dict[str, Any] = yaml.safe_load((REPO / "manifests" / "argocd" / "argocd-cm.yaml").read_text())
        cm["data"][APPLICATION_HEALTH_KEY] = application_health_check()
        cm["data"].update(extra_cm or {})
        self.cluster.apply(cm)
        meta = {"namespace": NAMESPACE, "labels": PART_OF}
        self.cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-rbac-cm", **meta}})
        self.cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "argocd-cmd-params-cm", **meta},
            }
        )
        self.cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "argocd-secret", **meta}})
        # The built-in `default` AppProject, as Argo CD's API server creates it when it starts (the API
        # server does not run here).
        self.cluster.apply(
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "AppProject",
                "metadata": {"name": "default", "namespace": NAMESPACE},
                "spec": {
                    "sourceRepos": ["*"],
                    "destinations": [{"server": "*", "namespace": "*"}],
                    "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
                },
            }
        )

    def _established(self, crd: str) -> bool:
        conditions = self.cluster.get("crd", crd).get("status", {}).get("conditions", [])
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    # --- the processes ---------------------------------------------------------------------------------

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        LOGS.mkdir(parents=True, exist_ok=True)
        log_path = LOGS / f"argocd-{self.cluster.name}-{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 (owned by the child process)
        self._files.append(log)
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        self.logs[name] = log_path
        return proc

    def _alive(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is not None:
            tail = self.logs[name].read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited with {proc.returncode}; {self.logs[name]}:\n{tail}")

    def _listening(self, name: str, port: int) -> bool:
        self._alive(name)
        return _port_open(port)

    def _env(self, binary_name: str) -> dict[str, str]:
        data = self.workdir / "data"
        for d in ("tls", "ssh", "gpg/keys", "gpg/source", "plugins", "tmp"):
            (data / d).mkdir(parents=True, exist_ok=True)
        os.chmod(data / "gpg" / "keys", 0o700)
        return {
            "PATH": f"{self.bin}:{TOOLS / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.workdir),
            "TMPDIR": str(data / "tmp"),
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "ARGOCD_BINARY_NAME": binary_name,
            "ARGOCD_FAKE_IN_CLUSTER": "true",
            "ARGOCD_TLS_DATA_PATH": str(data / "tls"),
            "ARGOCD_SSH_DATA_PATH": str(data / "ssh"),
            "ARGOCD_GNUPGHOME": str(data / "gpg" / "keys"),
            "ARGOCD_GPG_DATA_PATH": str(data / "gpg" / "source"),
            "ARGOCD_GPG_ENABLED": "false",
            "ARGOCD_PLUGINSOCKFILEPATH": str(data / "plugins"),
            # The repo server's git credential socket (default /tmp/reposerver-ask-pass.sock, one per machine).
            "ARGOCD_ASK_PASS_SOCK": str(data / "askpass.sock"),
            "HOSTNAME": f"{binary_name}-0",
        }

    def start(self) -> ArgoCD:
        """Start Redis, the repo server and the controller; call stop() even when this raises."""
        shutil.rmtree(self.workdir, ignore_errors=True)  # the repo server's clones of an earlier run
        self.workdir.mkdir(parents=True, exist_ok=True)
        redis_port = free_port()
        self._start("redis", [str(self.bin / "miniredis"), "--addr", f"127.0.0.1:{redis_port}"], dict(os.environ))
        wait_for(lambda: self._listening("redis", redis_port), 30, "miniredis")
        redis = f"127.0.0.1:{redis_port}"

        self.repo_port, repo_metrics = free_port(), free_port()
        self._start(
            "repo-server",
            [
                str(self.bin / "argocd"),
                "--address=127.0.0.1",
                f"--port={self.repo_port}",
                "--metrics-address=127.0.0.1",
                f"--metrics-port={repo_metrics}",
                f"--redis={redis}",
                "--disable-tls",
                "--client-ca-path=",  # no mTLS (its default path conflicts with --disable-tls)
                "--logformat=text",
            ],
            self._env("argocd-repo-server"),
        )
        wait_for(lambda: self._listening("repo-server", self.repo_port), 60, "the repo server's port")

        self.controller_metrics = free_port()
        self._start(
            "application-controller",
            [
                str(self.bin / "argocd"),
                f"--namespace={NAMESPACE}",
                f"--metrics-port={self.controller_metrics}",
                f"--redis={redis}",
                f"--repo-server=127.0.0.1:{self.repo_port}",
                "--repo-server-plaintext",
                # Resource health in Application.status.resources (off by default since Argo CD 3.0, which
                # keeps it in Redis only): what the test reads, and what `kubectl get application` shows.
                "--persist-resource-health",
                # Periodic refresh every 20 s instead of 120-180 s: Argo CD (3.x) refreshes an Application on
                # a status-only change of its resource only when the resource's health *status* changes
                # (controller/cache/cache.go, skipResourceUpdate); a new message under the same status (the
                # operator's "Progressing" messages) shows at the next periodic refresh.
                "--app-resync=20",
                "--app-resync-jitter=0",
                "--logformat=text",
            ],
            self._env("argocd-application-controller"),
        )
        wait_for(
            lambda: self._listening("application-controller", self.controller_metrics),
            60,
            "the application controller's metrics port",
        )
        return self

    def check_running(self) -> None:
        for name in self.procs:
            self._alive(name)

    def stop(self) -> None:
        for name in ("application-controller", "repo-server", "redis"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for f in self._files:
            f.close()

    def application(self, name: str) -> dict[str, Any]:
        app: dict[str, Any] = self.cluster.get("application", name, "-n", NAMESPACE)
        return app


def git_repository(dest: Path, rewrite: dict[str, str]) -> str:
    """A git repository at `dest` holding this checkout's manifests/ (one commit on `main`), with each
    `old -> new` of `rewrite` applied to manifests/argocd/ (the Applications' repoURL and paths).
    Returns the commit."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(REPO / "manifests", dest / "manifests")
    used = dict.fromkeys(rewrite, 0)
    for path in (dest / "manifests" / "argocd").rglob("*.yaml"):
        text = path.read_text()
        for old, new in rewrite.items():
            used[old] += text.count(old)
            text = text.replace(old, new)
        path.write_text(text)
    unused = [old for old, n in used.items() if n == 0]
    assert not unused, f"not found in manifests/argocd: {unused}"
    git = ["git", "-C", str(dest), "-c", "user.name=AdapterOps test", "-c", "user.email=test@adapterops.invalid"]
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True, env=env)
    subprocess.run([*git, "add", "-A"], check=True, env=env)
    subprocess.run([*git, "commit", "-q", "-m", "manifests/ under test"], check=True, env=env)
    return subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, env=env, capture_output=True, text=True
    ).stdout.strip()
