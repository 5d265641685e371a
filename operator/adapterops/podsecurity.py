"""The restricted Pod Security Standard, as every pod AdapterOps creates (trials, serving) meets it.

https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted: runAsNonRoot, a
non-zero runAsUser, seccomp RuntimeDefault, no privilege escalation, capabilities dropped to none, and
only configMap / emptyDir / persistentVolumeClaim / secret (and the other allowed) volume types. On
top of the profile: no ServiceAccount token (no pod of ours calls the Kubernetes API), a read-only
root filesystem where the image allows (config.CONTAINER_USERS), and every emptyDir bounded.
docs/pod-security.md explains each choice; tests/unit/test_pod_security.py checks every pod kind
against the profile's rules.
"""

from __future__ import annotations

from typing import Any

from adapterops.config import ContainerUser

# A ceiling for small scratch space (an engine's /tmp, an init container's): a runaway writer is
# evicted instead of filling the node's disk.
SMALL_SCRATCH = "10Gi"


def pod_security_context(fs_group: int) -> dict[str, Any]:
    """Pod level: no container may run as root, seccomp's runtime default applies to all of them, and
    mounted volumes that support it are group-owned by `fs_group` (writable by the main container).
    OnRootMismatch: a large model volume is not re-chowned at every start."""
    return {
        "runAsNonRoot": True,
        "fsGroup": fs_group,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(user: ContainerUser) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": user.run_as_user,
        "runAsGroup": user.run_as_group,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": user.read_only_root_filesystem,
        "capabilities": {"drop": ["ALL"]},
    }


def empty_dir(name: str, size_limit: str, memory: bool = False) -> dict[str, Any]:
    """An emptyDir with a sizeLimit (the kubelet evicts the pod past it). Memory-backed ones count
    against the container's memory limit."""
    source: dict[str, Any] = {"sizeLimit": size_limit}
    if memory:
        source["medium"] = "Memory"
    return {"name": name, "emptyDir": source}


def shared_memory(memory_request_gib: int) -> dict[str, Any]:
    """/dev/shm (DataLoader workers, NCCL between the GPUs of a pod, engines' worker processes): half the
    pod's memory request, which leaves the other half of the request for the processes themselves."""
    return empty_dir("dshm", f"{max(1, memory_request_gib // 2)}Gi", memory=True)
