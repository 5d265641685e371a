"""Every kind AdapterOps declares or touches, in one table: group, version, plural, short names.

The CRD generator, the operator's client and the kubectl plugin all read it; nothing else spells a
plural. Core kinds (Pod, Job, Deployment, ...) come with the client library and are not listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from lightkube.generic_resource import GenericNamespacedResource

GROUP: Final = "adapterops.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = "adapterops.io/v1alpha1"  # GROUP/VERSION, spelled out for the type checker


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    kind: str
    plural: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @cached_property
    def resource(self) -> type[GenericNamespacedResource]:
        """The client library's class for this kind (lightkube registers it once, by apiVersion and kind)."""
        from lightkube.generic_resource import create_namespaced_resource

        return create_namespaced_resource(self.group, self.version, self.kind, self.plural)


# Ours: the CRDs AdapterOps ships.
FINETUNEJOB = Kind(GROUP, VERSION, "FineTuneJob", "finetunejobs", ("ftj",), ("adapterops",))
MODELDEPLOYMENT = Kind(GROUP, VERSION, "ModelDeployment", "modeldeployments", ("mdep",), ("adapterops",))
SERVINGPROFILE = Kind(GROUP, VERSION, "ServingProfile", "servingprofiles", ("sprof",), ("adapterops",))
OURS: Final = (FINETUNEJOB, MODELDEPLOYMENT, SERVINGPROFILE)

# Add-ons AdapterOps uses when installed: distributed trial engines, Kueue, Gateway API.
JOBSET = Kind("jobset.x-k8s.io", "v1alpha2", "JobSet", "jobsets")
PYTORCHJOB = Kind("kubeflow.org", "v1", "PyTorchJob", "pytorchjobs")
LOCALQUEUE = Kind("kueue.x-k8s.io", "v1beta1", "LocalQueue", "localqueues")
WORKLOAD = Kind("kueue.x-k8s.io", "v1beta1", "Workload", "workloads")
HTTPROUTE = Kind("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes")
ADDONS: Final = (JOBSET, PYTORCHJOB, LOCALQUEUE, WORKLOAD, HTTPROUTE)


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    """The controller reference a child carries to one of our objects (garbage collection follows it)."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
