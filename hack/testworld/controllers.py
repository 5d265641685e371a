"""Real JobSet and Kueue controllers for the local cluster (tests that need them start them; nothing else does).

Both are built from the Go module proxy by hack/build-controllers.sh (cached per machine, keyed by
hack/controllers/*/go.mod + go.sum) and run here as local processes against the cluster's API server,
with the cluster admin's kubeconfig (a test fixture: their own RBAC is upstream's concern).

Their webhooks are served, not disabled: the API server calls them as it would in a cluster, through the
Services their charts declare. The local cluster has no kube-proxy, and the API server dials a webhook
Service at its ClusterIP (127.2.0.0/16, on loopback), so each controller's webhook server binds exactly
that ClusterIP, at the port the Service and the webhook configurations name (9443; the charts say 443 ->
targetPort 9443). TLS, as the API server verifies it (server name `<service>.<namespace>.svc`):

- Kueue manages its own certificates (`internalCertManagement`, upstream's default): it generates a CA
  and a serving certificate into its Secret and injects the CA into its webhook configurations and its
  CRDs' conversion webhooks (v1beta1 <-> v1beta2); the fixture writes the Secret's files into Kueue's cert
  folder (one per cluster here), as the kubelet's Secret volume would.
- JobSet's internal certificates are written to a fixed folder (/tmp/k8s-webhook-server/serving-certs),
  which concurrent clusters on one machine would share; so its internal management is off and this
  fixture issues a self-signed CA and serving certificate (openssl) into a folder of its own and puts the
  CA into JobSet's webhook configurations.

What is installed comes from the controllers' own Helm charts at the pinned versions (`helm template`):
CRDs, webhook configurations, the webhook Service; their Deployments are replaced by the processes here.
Kueue's webhooks are kept for what it manages here (its own kinds and the frameworks a test names: Jobs,
JobSets); the rest (pods, Deployments, Ray, ...) is not enabled, and a webhook without its handler would
refuse those objects cluster-wide. Everything is removed again when the fixture stops.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import os
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from testworld.cluster import LOGS, REPO, TOOLS, LocalCluster, wait_for

log = logging.getLogger("testworld.controllers")

WEBHOOK_PORT = 9443
HEALTH_PORT = 8081
JOBSET_VERSION = "v0.11.1"
KUEUE_VERSION = "v0.17.0"
# Kueue's integrations (its `integrations.frameworks` names) -> the path fragment of their webhooks.
KUEUE_FRAMEWORK_WEBHOOKS = {"batch/job": "batch-v1-job", "jobset.x-k8s.io/jobset": "jobset-x-k8s-io"}


def build(*names: str) -> Path:
    """The controllers' bin folder, with the named ones (all without names) built (once per machine)."""
    out = subprocess.run(
        [str(REPO / "hack" / "build-controllers.sh"), *names], check=True, capture_output=True, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


def module_dir(name: str, module: str) -> Path:
    """The pinned module's files (downloaded by the build), as hack/controllers/<name>/go.mod pins it."""
    out = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", module],
        cwd=REPO / "hack" / "controllers" / name,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"},
    ).stdout
    return Path(out.strip())


def _helm_template(cluster: LocalCluster, release: str, chart: Path, namespace: str) -> list[dict[str, Any]]:
    text = cluster.helm("template", release, str(chart), "--namespace", namespace).stdout
    return [d for d in yaml.safe_load_all(text) if d]


def _established(cluster: LocalCluster, crd: str) -> bool:
    conditions = cluster.get("crd", crd).get("status", {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def _apply(cluster: LocalCluster, docs: list[dict[str, Any]]) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump_all(docs))


class Controller:
    """One controller process: its manifests applied, its webhook Service's ClusterIP as its address."""

    name: str
    namespace: str
    service: str

    def __init__(self, cluster: LocalCluster, bin_dir: Path) -> None:
        self.cluster = cluster
        self.binary = bin_dir / self.name
        self.dir = TOOLS / "controllers" / cluster.name / self.name
        self.log_path = LOGS / f"{self.name}-{cluster.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.installed: list[dict[str, Any]] = []
        self.address = ""

    def manifests(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def before_start(self) -> None:
        """Anything to prepare once the Service has its ClusterIP."""

    def start(self) -> Controller:
        self.dir.mkdir(parents=True, exist_ok=True)
        LOGS.mkdir(parents=True, exist_ok=True)
        self.cluster.ensure_namespace(self.namespace)
        docs = self.manifests()
        for doc in docs:
            if doc["kind"] in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
                for hook in doc["webhooks"]:
                    hook["clientConfig"]["service"]["port"] = WEBHOOK_PORT
            if doc["kind"] == "CustomResourceDefinition" and (conv := doc["spec"].get("conversion")):
                conv["webhook"]["clientConfig"]["service"]["port"] = WEBHOOK_PORT
            if doc["kind"] == "Service" and doc["metadata"]["name"] == self.service:
                doc["spec"]["ports"] = [{"name": "webhook", "port": WEBHOOK_PORT, "targetPort": WEBHOOK_PORT}]
        # Services first: the webhook server binds the ClusterIP the API server will dial.
        services = [d for d in docs if d["kind"] == "Service"]
        _apply(self.cluster, services)
        self.installed = docs
        self.address = self.cluster.get("service", self.service, "-n", self.namespace)["spec"]["clusterIP"]
        self.before_start()
        crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
        _apply(self.cluster, [d for d in docs if d["kind"] != "Service"])
        for crd in crds:  # (`kubectl wait` fails instead of waiting while a new CRD has no status yet)
            name = crd["metadata"]["name"]
            wait_for(lambda name=name: _established(self.cluster, name), 60, f"CRD {name} established")
        config = self.dir / "config.yaml"
        config.write_text(yaml.safe_dump(self.config()))
        log_file = open(self.log_path, "ab")  # noqa: SIM115 (owned by the child process)
        self.proc = subprocess.Popen(
            [str(self.binary), f"--config={config}", *self.flags()],
            env={**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig)},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
        )
        wait_for(self.ready, 180, f"{self.name} ready on {self.address}:{HEALTH_PORT} (log: {self.log_path})")
        return self

    def flags(self) -> list[str]:
        return []

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
        try:
            with urllib.request.urlopen(f"http://{self.address}:{HEALTH_PORT}/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        """Webhook configurations first (nothing may call a stopped webhook), then the process, then the rest."""
        hooks = [d for d in self.installed if "Webhook" in d["kind"]]
        for doc in hooks:
            self.cluster.kubectl("delete", doc["kind"], doc["metadata"]["name"], "--ignore-not-found", check=False)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for doc in self.installed:
            if doc["kind"] == "CustomResourceDefinition":
                crd = doc["metadata"]["name"]
                # The controller's own finalizers (e.g. Kueue's resource-in-use on ClusterQueues) would hold
                # the CRD's deletion forever now that it is stopped: removed as its controller would.
                listed = self.cluster.kubectl("get", crd, "-A", "-o", "json", check=False)
                for obj in json.loads(listed.stdout or "{}").get("items", []):
                    meta = obj["metadata"]
                    if meta.get("finalizers"):
                        where = ["-n", meta["namespace"]] if meta.get("namespace") else []
                        patch = ["--type=merge", "-p", '{"metadata": {"finalizers": null}}']
                        self.cluster.kubectl("patch", crd, meta["name"], *where, *patch, check=False)
                self.cluster.kubectl("delete", "crd", crd, "--ignore-not-found", "--wait=true", check=False)
        self.cluster.kubectl("delete", "namespace", self.namespace, "--ignore-not-found", "--wait=false", check=False)


class JobSetController(Controller):
    name, namespace, service = "jobset", "jobset-system", "jobset-webhook-service"

    def manifests(self) -> list[dict[str, Any]]:
        root = module_dir("jobset", "sigs.k8s.io/jobset")
        docs = _helm_template(self.cluster, "jobset", root / "charts" / "jobset", self.namespace)
        keep = [
            d
            for d in docs
            if d["kind"] in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
            or (d["kind"] == "Service" and d["metadata"]["name"] == self.service)
        ]
        crd = yaml.safe_load((root / "config/components/crd/bases/jobset.x-k8s.io_jobsets.yaml").read_text())
        return [crd, *keep]

    def before_start(self) -> None:
        """A CA and a serving certificate for `<service>.<namespace>.svc`, the CA in the webhook configurations."""
        certs = self.dir / "certs"
        certs.mkdir(parents=True, exist_ok=True)
        dns = f"{self.service}.{self.namespace}.svc"
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
            subprocess.run(
                [*openssl, "-keyout", str(t / "ca.key"), "-out", str(certs / "ca.crt"), "-subj", "/CN=jobset-test-ca"],
                check=True,
                capture_output=True,
            )
            subprocess.run(
                ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(certs / "tls.key"),
                 "-out", str(t / "tls.csr"), "-subj", f"/CN={dns}"],
                check=True, capture_output=True,
            )  # fmt: skip
            (t / "ext").write_text(f"subjectAltName=DNS:{dns}\nextendedKeyUsage=serverAuth\n")
            subprocess.run(
                ["openssl", "x509", "-req", "-in", str(t / "tls.csr"), "-CA", str(certs / "ca.crt"),
                 "-CAkey", str(t / "ca.key"), "-CAcreateserial", "-days", "2", "-extfile", str(t / "ext"),
                 "-out", str(certs / "tls.crt")],
                check=True, capture_output=True,
            )  # fmt: skip
        bundle = base64.b64encode((certs / "ca.crt").read_bytes()).decode()
        for doc in self.installed:
            if "Webhook" in doc["kind"]:
                for hook in doc["webhooks"]:
                    hook["clientConfig"]["caBundle"] = bundle

    def config(self) -> dict[str, Any]:
        return {
            "apiVersion": "config.jobset.x-k8s.io/v1alpha1",
            "kind": "Configuration",
            "leaderElection": {"leaderElect": False},
            "internalCertManagement": {"enable": False},
            "webhook": {"host": self.address, "port": WEBHOOK_PORT, "certDir": str(self.dir / "certs")},
            "health": {"healthProbeBindAddress": f"{self.address}:{HEALTH_PORT}"},
            "metrics": {"bindAddress": "0"},
        }

    def flags(self) -> list[str]:
        return ["--metrics-bind-address=0", f"--health-probe-bind-address={self.address}:{HEALTH_PORT}"]


SECRET = "kueue-webhook-server-cert"  # Kueue's serving certificate and CA (its chart's name)


class KueueController(Controller):
    name, namespace, service = "kueue", "kueue-system", "kueue-webhook-service"

    def __init__(self, cluster: LocalCluster, bin_dir: Path, frameworks: tuple[str, ...] = ("batch/job",)) -> None:
        """`frameworks`: what Kueue manages (its webhooks for anything else are not installed)."""
        super().__init__(cluster, bin_dir)
        self.frameworks = frameworks

    def manifests(self) -> list[dict[str, Any]]:
        root = module_dir("kueue", "sigs.k8s.io/kueue")
        docs = _helm_template(self.cluster, "kueue", root / "charts" / "kueue", self.namespace)
        kept_kinds = ("CustomResourceDefinition", "Service", "Secret")
        kept_names = (self.service, SECRET)  # the webhook Service; where its certificates are kept
        keep = []
        for doc in docs:
            kind, name = doc["kind"], doc["metadata"]["name"]
            if kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
                doc = copy.deepcopy(doc)
                paths = ("kueue-x-k8s-io", *(KUEUE_FRAMEWORK_WEBHOOKS[f] for f in self.frameworks))
                doc["webhooks"] = [
                    w for w in doc["webhooks"] if any(p in w["clientConfig"]["service"]["path"] for p in paths)
                ]
                keep.append(doc)
            elif kind in kept_kinds and (kind == "CustomResourceDefinition" or name in kept_names):
                keep.append(doc)
        return keep

    def before_start(self) -> None:
        """No certificate of an earlier run: this run's come from the Secret Kueue writes now."""
        shutil.rmtree(self.dir / "certs", ignore_errors=True)

    def ready(self) -> bool:
        """Kueue's certificate rotator writes the serving certificate into its Secret and waits until the
        kubelet has mounted that Secret at the webhook's cert folder (cert-controller's ensureCertsMounted):
        the fixture plays that volume mount."""
        certs = self.dir / "certs"
        if not (certs / "tls.crt").exists():
            secret = self.cluster.get("secret", SECRET, "-n", self.namespace)
            data = secret.get("data") or {}
            if data.get("tls.crt") and data.get("tls.key"):
                certs.mkdir(parents=True, exist_ok=True)
                for key in ("ca.crt", "tls.key", "tls.crt"):  # the certificate last: its presence means done
                    if key in data:
                        tmp = certs / f".{key}.tmp"
                        tmp.write_bytes(base64.b64decode(data[key]))
                        tmp.replace(certs / key)
        return super().ready()

    def config(self) -> dict[str, Any]:
        return {
            "apiVersion": "config.kueue.x-k8s.io/v1beta2",
            "kind": "Configuration",
            "namespace": self.namespace,
            "manageJobsWithoutQueueName": False,
            "leaderElection": {"leaderElect": False},
            "internalCertManagement": {
                "enable": True,
                "webhookServiceName": self.service,
                "webhookSecretName": SECRET,
            },
            "webhook": {"host": self.address, "port": WEBHOOK_PORT, "certDir": str(self.dir / "certs")},
            "health": {"healthProbeBindAddress": f"{self.address}:{HEALTH_PORT}"},
            "metrics": {"bindAddress": "0"},
            "integrations": {"frameworks": list(self.frameworks)},
            # The visibility API server would bind a fixed port on every interface; nothing here reads it.
            "featureGates": {"VisibilityOnDemand": False},
        }


def workloads(cluster: LocalCluster, namespace: str) -> list[dict[str, Any]]:
    """Kueue's Workloads in a namespace (v1beta2, the storage version)."""
    items: list[dict[str, Any]] = cluster.get("workloads.v1beta2.kueue.x-k8s.io", "-n", namespace)["items"]
    return items


def dump(doc: Any) -> str:
    return json.dumps(doc, indent=1, sort_keys=True)
