"""The `restricted` Pod Security Standard as a function of a pod: the list of its violations.

Written from the standard, not from what AdapterOps builds: every control of the Baseline and
Restricted profiles on https://kubernetes.io/docs/concepts/security/pod-security-standards/ (the
profile the PodSecurity admission plugin enforces for `pod-security.kubernetes.io/enforce:
restricted`), with the allowed values of its implementation, k8s.io/pod-security-admission v0.36.3
(policy/check_*.go), the version the local cluster runs. Pods in a user namespace (hostUsers: false)
relax some controls; AdapterOps never uses one, so they are checked strictly here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# Restricted "Volume Types": inline volume sources allowed (everything else, hostPath included, is not).
ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
# Baseline "Sysctls": the safe set.
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
}
SECCOMP_ALLOWED = {"RuntimeDefault", "Localhost"}
APPARMOR_ALLOWED = {"RuntimeDefault", "Localhost"}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
# Restricted "Capabilities": drop ALL; only NET_BIND_SERVICE may be added back.
CAPABILITIES_ADD_ALLOWED = {"NET_BIND_SERVICE"}


def containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every container the controls apply to: containers, initContainers and ephemeralContainers."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def _selinux(where: str, options: dict[str, Any] | None) -> list[str]:
    if not options:
        return []
    found = []
    if options.get("type", "") not in SELINUX_TYPES:
        found.append(f"SELinux: {where} seLinuxOptions.type {options['type']!r}")
    for field in ("user", "role"):
        if options.get(field):
            found.append(f"SELinux: {where} sets seLinuxOptions.{field}")
    return found


def violations(pod: dict[str, Any]) -> list[str]:
    """What keeps `pod` (a Pod or pod template: metadata + spec) out of a restricted namespace; [] if nothing."""
    meta, spec = pod.get("metadata") or {}, pod["spec"]
    psc = spec.get("securityContext") or {}
    found: list[str] = []

    # ---- Baseline
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            found.append(f"Host Namespaces: spec.{field} is true")
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        found.append("HostProcess: pod windowsOptions.hostProcess is true")
    for key, value in (meta.get("annotations") or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value in ("", "runtime/default") or value.startswith("localhost/")
        ):
            found.append(f"AppArmor: annotation {key}={value!r}")
    if (profile := psc.get("appArmorProfile")) and profile.get("type") not in APPARMOR_ALLOWED:
        found.append(f"AppArmor: pod appArmorProfile.type {profile.get('type')!r}")
    found += _selinux("pod", psc.get("seLinuxOptions"))
    for sysctl in psc.get("sysctls") or []:
        if sysctl["name"] not in SAFE_SYSCTLS:
            found.append(f"Sysctls: {sysctl['name']} is not in the safe set")

    # ---- Restricted, pod level
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            found.append(f"Volume Types: volume {volume['name']!r} is {sorted(kinds - ALLOWED_VOLUMES)}")
    if psc.get("runAsNonRoot") is False:
        found.append("Running as Non-root: pod runAsNonRoot is false")
    if psc.get("runAsUser") == 0:
        found.append("Running as Non-root user: pod runAsUser is 0")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in SECCOMP_ALLOWED:
        found.append(f"Seccomp: pod seccompProfile.type {pod_seccomp!r}")

    for c in containers(spec):
        name, sc = c["name"], c.get("securityContext") or {}
        # Baseline, per container
        if sc.get("privileged"):
            found.append(f"Privileged Containers: {name} is privileged")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            found.append(f"HostProcess: {name} windowsOptions.hostProcess is true")
        if sc.get("procMount") not in (None, "Default"):
            found.append(f"/proc Mount Type: {name} procMount {sc['procMount']!r}")
        if (profile := sc.get("appArmorProfile")) and profile.get("type") not in APPARMOR_ALLOWED:
            found.append(f"AppArmor: {name} appArmorProfile.type {profile.get('type')!r}")
        found += _selinux(name, sc.get("seLinuxOptions"))
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                found.append(f"Host Ports: {name} hostPort {port['hostPort']}")
        for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
            probe = c.get(probe_name) or {}
            for handler in ("httpGet", "tcpSocket"):
                if (probe.get(handler) or {}).get("host"):
                    found.append(f"Host Probes: {name} {probe_name}.{handler}.host is set")
        for hook in ("postStart", "preStop"):
            handler_spec = (c.get("lifecycle") or {}).get(hook) or {}
            for handler in ("httpGet", "tcpSocket"):
                if (handler_spec.get(handler) or {}).get("host"):
                    found.append(f"Host Probes: {name} lifecycle.{hook}.{handler}.host is set")
        # Restricted, per container
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"Privilege Escalation: {name} allowPrivilegeEscalation is not false")
        non_root = sc.get("runAsNonRoot")
        if non_root is False or (non_root is None and psc.get("runAsNonRoot") is not True):
            found.append(f"Running as Non-root: {name} may run as root (runAsNonRoot not true here or on the pod)")
        if sc.get("runAsUser") == 0:
            found.append(f"Running as Non-root user: {name} runAsUser is 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp is not None and seccomp not in SECCOMP_ALLOWED:
            found.append(f"Seccomp: {name} seccompProfile.type {seccomp!r}")
        elif seccomp is None and pod_seccomp not in SECCOMP_ALLOWED:
            found.append(f"Seccomp: {name} has no seccompProfile and the pod sets none")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            found.append(f"Capabilities: {name} does not drop ALL")
        if added := set(caps.get("add") or []) - CAPABILITIES_ADD_ALLOWED:
            found.append(f"Capabilities: {name} adds {sorted(added)}")
    return found
