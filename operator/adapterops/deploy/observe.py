"""What a ModelDeployment's children say: each revision's Deployment and the serving pods, summarised
as the informers keep them (matched to the ModelDeployment by its namespace and UID label: anyone who may
create a Deployment, Service or pod in another namespace can copy the labels, and such an object is
nobody's child; within the namespace, whoever can create one could edit the ModelDeployment too)."""

from __future__ import annotations

from dataclasses import dataclass

from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod, Service

from adapterops.deploy.builders import ANNOTATION_ADAPTERS, LABEL_MD, LABEL_MD_UID, LABEL_REVISION
from adapterops.runtime.informer import Item


@dataclass(frozen=True)
class RevisionDeployment:
    name: str
    revision: str
    replicas: int
    ready_replicas: int


@dataclass(frozen=True)
class ServingPod:
    name: str
    revision: str
    ip: str | None
    ready: bool  # ready and not terminating: it takes requests
    annotation: str | None = None  # adapterRollout InPlace: the adapters asked of it (JSON), as the operator set them


def deployment_item(deployment: Deployment) -> Item[RevisionDeployment] | None:
    meta = deployment.metadata
    labels = (meta.labels if meta else None) or {}
    if meta is None or meta.uid is None or meta.name is None or meta.namespace is None or LABEL_MD_UID not in labels:
        return None
    revision = RevisionDeployment(
        name=meta.name,
        revision=labels.get(LABEL_REVISION, ""),
        replicas=(deployment.spec.replicas if deployment.spec else None) or 0,
        ready_replicas=(deployment.status.readyReplicas if deployment.status else None) or 0,
    )
    return Item(meta.uid, (meta.namespace, labels[LABEL_MD_UID]), (meta.namespace, labels[LABEL_MD]), revision)


def pod_item(pod: Pod) -> Item[ServingPod] | None:
    meta = pod.metadata
    labels = (meta.labels if meta else None) or {}
    if meta is None or meta.uid is None or meta.name is None or meta.namespace is None or LABEL_MD_UID not in labels:
        return None
    if pod.spec is not None and pod.spec.hostNetwork:
        # Never a serving pod of ours: its IP is the node's, and the canary judge would post prompts to
        # whatever listens on the node at the serving port.
        return None
    status = pod.status
    ready = any(c.type == "Ready" and c.status == "True" for c in (status.conditions if status else None) or [])
    serving = ServingPod(
        name=meta.name,
        revision=labels.get(LABEL_REVISION, ""),
        ip=status.podIP if status else None,
        ready=ready and meta.deletionTimestamp is None,
        annotation=(meta.annotations or {}).get(ANNOTATION_ADAPTERS),
    )
    return Item(meta.uid, (meta.namespace, labels[LABEL_MD_UID]), (meta.namespace, labels[LABEL_MD]), serving)


def service_item(service: Service) -> Item[str] | None:
    """A revision's or the stable Service: only that it exists matters (it is re-applied when it goes)."""
    meta = service.metadata
    labels = (meta.labels if meta else None) or {}
    if meta is None or meta.uid is None or meta.name is None or meta.namespace is None or LABEL_MD_UID not in labels:
        return None
    return Item(meta.uid, (meta.namespace, labels[LABEL_MD_UID]), (meta.namespace, labels[LABEL_MD]), meta.name)
