"""A kubelet for the local cluster: runs the real processes of pods that kwok leaves alone.

Pods labelled `kwok.adapterops.io/kubelet=harness` and bound to a node by the real scheduler are run
here as local processes, the way a kubelet runs containers: volumes are materialised (ConfigMaps,
Secrets, emptyDirs, PersistentVolumeClaims through their bound hostPath PersistentVolume), each
container sees its mounts at their paths (absolute paths in its command and environment are mapped
into a per-pod root), the pod gets its own loopback IP, readiness probes are honoured, and when a
container exits its termination message (`terminationMessagePath`, at most 4096 bytes) and exit code
are written back into the pod status. Deleting a pod terminates it as a kubelet does: preStop sleep,
SIGTERM, SIGKILL when the grace period ends. As a kubelet does, it rides out an API server outage: a
volume whose ConfigMap or Secret cannot be read yet (missing, or the server down) is retried until it
can, with the pod left Pending, and a status update is retried, with backoff, until the server takes it
(a trial's result is in its termination message: it must not be lost).

Images without a command (serving engines) are mapped to local commands by `images`. As a kubelet does,
`$(VAR)` in a container's command and args expands to its environment's VAR, and `fieldRef` env reads the
pod's name, namespace, IP, labels and annotations; downward API volumes hold the same fields and, as a kubelet
rewrites them when the pod changes, follow the pod's labels and annotations while it runs. A pod with
`hostname` and `subdomain` (a JobSet's pods, under their headless Service) gets a loopback IP of its own, and
names `<hostname>.<subdomain>[.<ns>...]` of the pods under the same subdomain in a container's command and
environment are replaced by those pods' IPs (the cluster DNS a kubelet's pods would ask; a peer not started
yet gets its IP reserved), and `torchrun` runs as this interpreter's `-m torch.distributed.run`.

What it does not enforce, since the processes run on this machine as its user: a pod's securityContext
(runAsUser/runAsGroup/fsGroup, seccomp, dropped capabilities, readOnlyRootFilesystem: a process can still
write outside its mounts) and emptyDir sizeLimit or medium. The API server's PodSecurity admission judges
those settings before a pod reaches it (tests/cluster/test_restricted_namespace.py).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import itertools
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config, watch

from testworld.cluster import TOOLS, LocalCluster

log = logging.getLogger("testworld.kubelet")

HARNESS_LABEL = "kwok.adapterops.io/kubelet"
TERMINATION_MESSAGE_LIMIT = 4096
# kwok hands out pod IPs from the start of 127.1.0.0/16; the harness takes the upper half, a /21 of it per
# cluster name: clusters of several engineers on one machine share the loopback, and two pods of two clusters
# on one IP would answer each other's requests (2046 pods per cluster; 16 blocks, picked by the name's hash).
POD_IPS = ipaddress.ip_network("127.1.128.0/17")


def pod_ips(cluster: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    blocks = list(POD_IPS.subnets(new_prefix=21))
    return blocks[int(hashlib.sha256(cluster.encode()).hexdigest(), 16) % len(blocks)]
RETRY_SECONDS, MAX_RETRY_SECONDS = 0.2, 5.0  # API calls that failed for a reason time can cure
API_TIMEOUT = 10.0  # a request to an API server that went away mid-call fails, and is retried, after this

ImageCommand = Callable[[dict[str, Any], dict[str, Any]], list[str]]  # (pod, container) -> argv


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Fault:
    """Make matching containers fail as a node would report it (e.g. OOMKilled, exit 137)."""

    matches: Callable[[dict[str, Any]], bool]
    exit_code: int = 137
    reason: str = "OOMKilled"
    times: int = 1_000_000


@dataclass
class RunningPod:
    uid: str
    namespace: str
    name: str
    ip: str
    root: Path
    body: dict[str, Any]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started: dict[str, str] = field(default_factory=dict)
    ready: bool = False
    done: bool = False
    running: bool = False  # every container started: the monitor may judge it
    terminal_written: bool = False  # the final status is in: an earlier one, retried late, must not undo it
    status_lock: threading.Lock = field(default_factory=threading.Lock)


class PodGone(Exception):
    """The pod was deleted (or the harness stopped) while an API call was being retried."""


def retryable(exc: Exception) -> bool:
    """An API failure a later attempt may not see: the server down or restarting, overloaded, timing out.
    A 404 (the object is not there) is for the caller to judge."""
    if isinstance(exc, client.ApiException):
        return exc.status in (0, 429) or exc.status >= 500
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)


class Kubelet:
    def __init__(self, cluster: LocalCluster, images: dict[str, ImageCommand] | None = None) -> None:
        self.cluster = cluster
        self.images = images or {}
        self.faults: list[Fault] = []
        self.pods: dict[str, RunningPod] = {}
        self.timeline: list[tuple[float, str, str, dict[str, str]]] = []  # (time, event, pod, labels)
        self.root = TOOLS / "kubelet" / cluster.name
        self.pvc_root = TOOLS / "pvcs" / cluster.name
        self._ips = (str(ip) for ip in itertools.islice(pod_ips(cluster.name).hosts(), 1, None))
        self._dns: dict[tuple[str, str, str], str] = {}  # (namespace, subdomain, hostname) -> pod IP
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.api = config.new_client_from_config(str(cluster.kubeconfig))
        self.core = client.CoreV1Api(self.api)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Kubelet:
        self.root.mkdir(parents=True, exist_ok=True)
        for target in (self._watch_loop, self._monitor_loop):
            t = threading.Thread(target=target, daemon=True, name=f"kubelet-{target.__name__}")
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for pod in self.pods.values():
                self._kill(pod)

    def inject(self, fault: Fault) -> None:
        self.faults.append(fault)

    def lose_node(self, node: str) -> list[str]:
        """The node is gone (its machine died, or was taken away): the processes of its pods die with it and
        nothing reports for them again; the control plane finds out by itself. Returns the pods lost."""
        lost = []
        with self._lock:
            for pod in self.pods.values():
                if pod.body["spec"].get("nodeName") == node and not pod.done:
                    pod.done = pod.terminal_written = True  # no status update will ever come
                    self._signal(pod, signal.SIGKILL)
                    lost.append(f"{pod.namespace}/{pod.name}")
        return lost

    # ------------------------------------------------------------------ watching

    def _watch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                stream = watch.Watch().stream(
                    self.core.list_pod_for_all_namespaces, label_selector=f"{HARNESS_LABEL}=harness", timeout_seconds=30
                )
                for event in stream:
                    if self._stop.is_set():
                        return
                    self._on_pod(event["type"], self.api.sanitize_for_serialization(event["object"]))
            except Exception:  # the API server restarting, a watch expiring: list and watch again
                log.exception("pod watch failed; restarting it")
                time.sleep(0.5)

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        uid = meta["uid"]
        with self._lock:
            running = self.pods.get(uid)
            if kind == "DELETED":
                if running:
                    self._kill(running)
                    self.pods.pop(uid, None)
                return
            if meta.get("deletionTimestamp"):
                if running and not running.done:
                    running.done = True  # the monitor leaves it alone from now on
                    threading.Thread(target=self._terminate, args=(running, pod), daemon=True).start()
                elif not running or not any(p.poll() is None for p in running.procs.values()):
                    self.pods.pop(uid, None)
                    self._finalize_deletion(meta)
                return
            if running:
                # As a kubelet does on a pod update: downward API volumes follow its labels and annotations.
                running.body["metadata"] = meta
                self._write_downward(running)
                return
            if not spec.get("nodeName") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return
            if (pod.get("status") or {}).get("containerStatuses"):
                return  # started by an earlier harness run: leave its recorded outcome alone
            running = self.pods[uid] = RunningPod(
                uid,
                meta["namespace"],
                meta["name"],
                self._pod_ip(pod),
                self.root / meta["namespace"] / meta["name"],
                pod,
            )
        # Each pod starts in its own thread: one waiting for its volumes must not hold up the others' events.
        threading.Thread(target=self._start_pod, args=(running,), daemon=True, name=f"start-{meta['name']}").start()

    def _start_pod(self, pod: RunningPod) -> None:
        try:
            self._start(pod)
        except PodGone:
            return
        except Exception as exc:
            log.exception("could not start %s/%s", pod.namespace, pod.name)
            with contextlib.suppress(PodGone):
                self._fail_pod(pod, f"harness could not start the pod: {exc}")

    def _pod_ip(self, pod: dict[str, Any]) -> str:
        """A new IP, or the one reserved for the pod's DNS name when a peer referred to it first."""
        spec, ns = pod["spec"], pod["metadata"]["namespace"]
        if spec.get("hostname") and spec.get("subdomain"):
            return self._dns_ip(ns, spec["subdomain"], spec["hostname"])
        return next(self._ips)

    def _dns_ip(self, namespace: str, subdomain: str, hostname: str) -> str:
        with self._lock:
            return self._dns.setdefault((namespace, subdomain, hostname), next(self._ips))

    def _resolve(self, pod: RunningPod, value: str) -> str:
        """`<host>.<subdomain>[.<ns>[.svc[.cluster.local]]]` of a pod under this pod's subdomain -> its IP."""
        subdomain = pod.body["spec"].get("subdomain")
        if not subdomain:
            return value
        name = re.compile(
            rf"\b([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.{re.escape(subdomain)}"
            rf"(\.{re.escape(pod.namespace)}(\.svc(\.cluster\.local)?)?)?(?![-a-z0-9.])"
        )
        return name.sub(lambda m: self._dns_ip(pod.namespace, subdomain, m.group(1)), value)

    def _terminate(self, running: RunningPod, pod: dict[str, Any]) -> None:
        """A kubelet's graceful termination: preStop sleep, SIGTERM, SIGKILL at the end of the grace period."""
        spec, meta = pod["spec"], pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds")
        grace = spec.get("terminationGracePeriodSeconds", 30) if grace is None else grace
        deadline = time.monotonic() + grace
        pre_stop = max(
            (((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
            for c in spec["containers"]
        )
        self._stop.wait(min(pre_stop, grace))
        self._signal(running, signal.SIGTERM)
        while any(p.poll() is None for p in running.procs.values()) and time.monotonic() < deadline:
            if self._stop.wait(0.1):
                break
        self._kill(running)
        # As a kubelet does since Kubernetes 1.27: the pod reaches a terminal phase, with how its containers
        # ended, before it goes (a Job with a pod failure policy counts the attempt only then).
        with contextlib.suppress(PodGone):
            if running.procs:
                codes: dict[str, int | None] = {name: proc.returncode for name, proc in running.procs.items()}
                phase = "Succeeded" if all(c == 0 for c in codes.values()) else "Failed"
                self._set_status(running, phase=phase, started=True, exit_codes=codes)
            else:
                self._write_status(running, {"status": {"phase": "Failed", "reason": "Terminated"}}, True)
        with self._lock:
            self.pods.pop(running.uid, None)
        self._finalize_deletion(meta)

    def _finalize_deletion(self, meta: dict[str, Any]) -> None:
        """The pod's processes are gone: remove the pod object (retried, as a kubelet does, until it can)."""
        delay = RETRY_SECONDS
        while True:
            try:
                self.core.delete_namespaced_pod(
                    meta["name"], meta["namespace"], grace_period_seconds=0, _request_timeout=API_TIMEOUT
                )
                return
            except Exception as exc:
                if isinstance(exc, client.ApiException) and exc.status == 404:
                    return
                if not retryable(exc):
                    raise
                log.warning(
                    "%s/%s: deletion failed (%s); retrying in %.1fs", meta["namespace"], meta["name"], exc, delay
                )
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, MAX_RETRY_SECONDS)

    # ------------------------------------------------------------------ volumes and environment

    def _retry(self, pod: RunningPod, what: str, call: Callable[[], Any], missing_is_transient: bool = False) -> Any:
        """`call` until it succeeds, with backoff, while the failure is one time can cure (a kubelet retries
        a mount and a status update until they work). Stops with PodGone when the pod is deleted."""
        delay = RETRY_SECONDS
        while True:
            try:
                return call()
            except Exception as exc:
                missing = isinstance(exc, client.ApiException) and exc.status == 404
                if not (retryable(exc) or (missing and missing_is_transient)):
                    raise
                log.warning("%s/%s: %s failed (%s); retrying in %.1fs", pod.namespace, pod.name, what, exc, delay)
            if self._stop.wait(delay) or pod.done:
                raise PodGone(f"{pod.namespace}/{pod.name}")
            delay = min(delay * 2, MAX_RETRY_SECONDS)

    def _volume_dir(self, pod: RunningPod, volume: dict[str, Any]) -> Path:
        path = pod.root / "volumes" / volume["name"]
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            return Path(self._retry(pod, f"mount claim {claim}", lambda: self._pvc_dir(pod.namespace, claim)))
        path.mkdir(parents=True, exist_ok=True)
        # A missing ConfigMap or Secret is a FailedMount a kubelet retries (unless the volume is optional).
        if "configMap" in volume:
            source = volume["configMap"]
            cm = self._retry(
                pod,
                f"mount ConfigMap {source['name']}",
                lambda: self.core.read_namespaced_config_map(
                    source["name"], pod.namespace, _request_timeout=API_TIMEOUT
                ),
                missing_is_transient=not source.get("optional"),
            )
            self._write_items(path, cm.data or {}, source.get("items"))
        elif "downwardAPI" in volume:
            self._write_downward_items(pod, path, volume["downwardAPI"].get("items") or [])
        elif "secret" in volume:
            source = volume["secret"]
            secret = self._retry(
                pod,
                f"mount Secret {source['secretName']}",
                lambda: self.core.read_namespaced_secret(
                    source["secretName"], pod.namespace, _request_timeout=API_TIMEOUT
                ),
                missing_is_transient=not source.get("optional"),
            )
            data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
            self._write_items(path, data, source.get("items"))
        return path

    def _write_downward(self, pod: RunningPod) -> None:
        for volume in pod.body["spec"].get("volumes") or []:
            if "downwardAPI" in volume:
                path = pod.root / "volumes" / volume["name"]
                self._write_downward_items(pod, path, volume["downwardAPI"].get("items") or [])

    def _write_downward_items(self, pod: RunningPod, path: Path, items: list[dict[str, Any]]) -> None:
        """Each item's field, replaced atomically (a kubelet swaps a symlinked folder: a reader never sees a
        half-written file); a missing annotation is an empty file."""
        path.mkdir(parents=True, exist_ok=True)
        for item in items:
            target = path / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            value = self._field(pod, item["fieldRef"]["fieldPath"])
            if target.exists() and target.read_text() == value:
                continue
            staging = target.with_name(f".{target.name}.tmp")
            staging.write_text(value)
            staging.replace(target)

    @staticmethod
    def _write_items(path: Path, data: dict[str, str], items: list[dict[str, str]] | None) -> None:
        for item in items or [{"key": k, "path": k} for k in data]:
            target = path / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[item["key"]])

    def _pvc_dir(self, namespace: str, claim: str) -> Path:
        """The hostPath of the PersistentVolume the claim is bound to (the test world's storage)."""
        pvc = self.core.read_namespaced_persistent_volume_claim(claim, namespace, _request_timeout=API_TIMEOUT)
        if not pvc.spec.volume_name:
            raise RuntimeError(f"PersistentVolumeClaim {namespace}/{claim} is not bound")
        pv = self.core.read_persistent_volume(pvc.spec.volume_name, _request_timeout=API_TIMEOUT)
        if not pv.spec.host_path:
            raise RuntimeError(f"PersistentVolume {pv.metadata.name} is not a hostPath volume")
        return Path(pv.spec.host_path.path)

    def _env(self, pod: RunningPod, container: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            if "secretRef" in source:
                secret = self.core.read_namespaced_secret(source["secretRef"]["name"], pod.namespace)
                env.update({k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()})
            elif "configMapRef" in source:
                env.update(
                    self.core.read_namespaced_config_map(source["configMapRef"]["name"], pod.namespace).data or {}
                )
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = var["value"]
            elif (ref := (var.get("valueFrom") or {}).get("secretKeyRef")) is not None:
                secret = self.core.read_namespaced_secret(ref["name"], pod.namespace)
                env[var["name"]] = base64.b64decode((secret.data or {})[ref["key"]]).decode()
            elif (ref := (var.get("valueFrom") or {}).get("fieldRef")) is not None:
                env[var["name"]] = self._field(pod, ref["fieldPath"])
        return env

    @staticmethod
    def _field(pod: RunningPod, path: str) -> str:
        meta = pod.body["metadata"]
        if m := re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path):
            return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
        return {"status.podIP": pod.ip, "metadata.name": pod.name, "metadata.namespace": pod.namespace}[path]

    # ------------------------------------------------------------------ running

    def _start(self, pod: RunningPod) -> None:
        spec = pod.body["spec"]
        volumes = {v["name"]: self._volume_dir(pod, v) for v in spec.get("volumes") or []}
        self._set_status(pod, phase="Pending", started=False)
        for init in spec.get("initContainers") or []:
            proc = self._spawn(pod, init, volumes)
            code = proc.wait()
            if code != 0:
                self._fail_pod(pod, f"init container {init['name']} exited with {code}")
                return
        with self._lock:  # a pod deleted while its volumes were set up starts nothing
            if pod.done:
                raise PodGone(f"{pod.namespace}/{pod.name}")
            for container in spec["containers"]:
                pod.procs[container["name"]] = self._spawn(pod, container, volumes)
                pod.started[container["name"]] = now()
            pod.running = True
        pod.ready = not any(c.get("readinessProbe") for c in spec["containers"])
        self.timeline.append(
            (time.monotonic(), "start", f"{pod.namespace}/{pod.name}", pod.body["metadata"].get("labels") or {})
        )
        self._set_status(pod, phase="Running", started=True)

    def _spawn(self, pod: RunningPod, container: dict[str, Any], volumes: dict[str, Path]) -> subprocess.Popen[bytes]:
        root = pod.root / "rootfs" / container["name"]
        mounts: dict[str, Path] = {}
        for mount in container.get("volumeMounts") or []:
            mounts[mount["mountPath"]] = volumes[mount["name"]]
        term = container.get("terminationMessagePath", "/dev/termination-log")
        term_file = root / term.lstrip("/")
        term_file.parent.mkdir(parents=True, exist_ok=True)
        term_file.write_text("")
        mounts[term] = term_file
        for mount_path, target in mounts.items():
            link = root / mount_path.lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                continue
            link.symlink_to(target)

        def mapped(value: str) -> str:
            """A path under one of the container's mounts, as this machine sees it; also the path after the
            first `=` of an argument (`--lora-modules name=/adapters/name`, `--flag=/path`)."""
            if not value.startswith("/") and "=" in value:
                key, _, path = value.partition("=")
                return f"{key}={mapped(path)}" if path.startswith("/") else value
            if value.startswith("/") and any(
                value == m or value.startswith(m.rstrip("/") + "/") or m.startswith(value.rstrip("/") + "/")
                for m in mounts
            ):
                return str(root / value.lstrip("/"))
            return value

        env = {k: self._resolve(pod, mapped(v)) for k, v in self._env(pod, container).items()}
        command = container.get("command")
        if not command:  # the image's entrypoint: the test world maps images to local programs
            image_command = next(
                (fn for prefix, fn in self.images.items() if container["image"].startswith(prefix)), None
            )
            if image_command is None:
                raise RuntimeError(f"no local command for image {container['image']}")
            command = image_command(pod.body, container)
        argv = [*command, *(container.get("args") or [])]
        # $(VAR) from the container's environment ($$ escapes), as the kubelet expands command and args.
        argv = [
            re.sub(
                r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                lambda m: env.get(m.group(1), m.group(0)) if m.group(1) else "$",
                a,
            )
            for a in argv
        ]
        argv = [
            sys.executable if a in ("python", "python3") and i == 0 else self._resolve(pod, mapped(a))
            for i, a in enumerate(argv)
        ]
        if argv[0] == "torchrun":
            argv = [sys.executable, "-m", "torch.distributed.run", *argv[1:]]
        for fault in self.faults:
            if fault.times > 0 and fault.matches(pod.body):
                fault.times -= 1
                argv = [sys.executable, "-c", f"import sys; sys.exit({fault.exit_code})"]
                pod.body.setdefault("_fault", {})[container["name"]] = fault.reason
        log_file = pod.root / f"{container['name']}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        base_env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "PYTHONPATH", "VIRTUAL_ENV")}
        full_env = {**base_env, **env, "POD_IP": pod.ip, "TMPDIR": str(mounts.get("/tmp", pod.root / "tmp"))}
        Path(full_env["TMPDIR"]).mkdir(parents=True, exist_ok=True)
        out = open(log_file, "ab")  # noqa: SIM115 (owned by the child process)
        return subprocess.Popen(
            argv, env=full_env, cwd=pod.root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def _monitor_loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                pods = [p for p in self.pods.values() if not p.done]
            for pod in pods:
                try:
                    self._check(pod)
                except PodGone:
                    continue
                except Exception:
                    log.exception("monitoring %s/%s failed", pod.namespace, pod.name)
            time.sleep(0.1)

    def _check(self, pod: RunningPod) -> None:
        if not pod.running:
            return
        if not pod.ready and self._probe(pod):
            pod.ready = True
            self._set_status(pod, phase="Running", started=True)
        codes = {name: proc.poll() for name, proc in pod.procs.items()}
        if any(code is None for code in codes.values()):
            return
        pod.done = True
        self.timeline.append(
            (time.monotonic(), "end", f"{pod.namespace}/{pod.name}", pod.body["metadata"].get("labels") or {})
        )
        self._set_status(
            pod, phase="Succeeded" if all(c == 0 for c in codes.values()) else "Failed", started=True, exit_codes=codes
        )

    def _probe(self, pod: RunningPod) -> bool:
        for container in pod.body["spec"]["containers"]:
            probe = (container.get("readinessProbe") or {}).get("httpGet")
            if not probe:
                continue
            port = probe["port"]
            if isinstance(port, str):
                port = next(p["containerPort"] for p in container.get("ports", []) if p.get("name") == port)
            try:
                with urllib.request.urlopen(f"http://{pod.ip}:{port}{probe.get('path', '/')}", timeout=1) as resp:
                    if resp.status >= 400:
                        return False
            except OSError:
                return False
        return True

    def _termination_message(self, pod: RunningPod, container: dict[str, Any], code: int) -> str:
        term = container.get("terminationMessagePath", "/dev/termination-log")
        path = pod.root / "rootfs" / container["name"] / term.lstrip("/")
        message = path.read_bytes()[:TERMINATION_MESSAGE_LIMIT].decode(errors="replace") if path.exists() else ""
        if not message and code != 0 and container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            log_file = pod.root / f"{container['name']}.log"
            message = log_file.read_bytes()[-2048:].decode(errors="replace") if log_file.exists() else ""
        return message

    # ------------------------------------------------------------------ status

    def _set_status(
        self, pod: RunningPod, phase: str, started: bool, exit_codes: dict[str, int | None] | None = None
    ) -> None:
        containers = pod.body["spec"]["containers"]
        statuses = []
        for c in containers:
            status: dict[str, Any] = {
                "name": c["name"],
                "image": c["image"],
                "imageID": "",
                "restartCount": 0,
                "ready": bool(started and pod.ready and exit_codes is None),
                "started": started,
            }
            if exit_codes is not None:
                code = exit_codes[c["name"]] or 0
                code = 128 - code if code < 0 else code  # killed by a signal: 128 + its number, as runtimes say
                reason = (pod.body.get("_fault") or {}).get(c["name"]) or ("Completed" if code == 0 else "Error")
                status["state"] = {
                    "terminated": {
                        "exitCode": code,
                        "reason": reason,
                        "startedAt": pod.started.get(c["name"], now()),
                        "finishedAt": now(),
                        "message": self._termination_message(pod, c, code),
                    }
                }
            elif started:
                status["state"] = {"running": {"startedAt": pod.started.get(c["name"], now())}}
            else:
                status["state"] = {"waiting": {"reason": "ContainerCreating"}}
            statuses.append(status)
        ready = "True" if started and pod.ready and exit_codes is None else "False"
        body = {
            "status": {
                "phase": phase,
                "hostIP": "127.0.0.1",
                "podIP": pod.ip,
                "podIPs": [{"ip": pod.ip}],
                "startTime": pod.body.get("status", {}).get("startTime") or now(),
                "containerStatuses": statuses,
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now()},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": now()},
                    {"type": "ContainersReady", "status": ready, "lastTransitionTime": now()},
                    {"type": "Ready", "status": ready, "lastTransitionTime": now()},
                ],
            }
        }
        pod.body.setdefault("status", {})["startTime"] = body["status"]["startTime"]
        self._write_status(pod, body, final=exit_codes is not None)

    def _fail_pod(self, pod: RunningPod, message: str) -> None:
        pod.done = True
        self._write_status(pod, {"status": {"phase": "Failed", "message": message, "reason": "HarnessError"}}, True)

    def _write_status(self, pod: RunningPod, body: dict[str, Any], final: bool) -> None:
        """Patch the pod's status until the API server takes it (the final one even once the pod is marked
        done: a trial's result must outlive an API server restart); a 404 means the pod is gone."""
        with pod.status_lock:
            if pod.terminal_written:
                return
            delay = RETRY_SECONDS
            while True:
                try:
                    self.core.patch_namespaced_pod_status(pod.name, pod.namespace, body, _request_timeout=API_TIMEOUT)
                    break
                except Exception as exc:
                    if isinstance(exc, client.ApiException) and exc.status == 404:
                        return
                    if not retryable(exc):
                        raise
                    log.warning(
                        "%s/%s: status update failed (%s); retrying in %.1fs", pod.namespace, pod.name, exc, delay
                    )
                if self._stop.wait(delay) or (pod.done and not final):
                    raise PodGone(f"{pod.namespace}/{pod.name}")
                delay = min(delay * 2, MAX_RETRY_SECONDS)
            pod.terminal_written = final

    @staticmethod
    def _signal(pod: RunningPod, sig: signal.Signals) -> None:
        for proc in pod.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)

    def _kill(self, pod: RunningPod) -> None:
        self._signal(pod, signal.SIGKILL)
        for proc in pod.procs.values():
            proc.wait()
        pod.done = True

    def cleanup_files(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
