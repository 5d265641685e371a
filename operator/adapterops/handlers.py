"""kopf registrations, and nothing else: every handler delegates to the Controller.

Indices give the workers a consistent in-memory view (kopf fills them before any handler runs);
event handlers only enqueue the affected FineTuneJob or ModelDeployment.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from adapterops import finetune
from adapterops.api import GROUP, VERSION
from adapterops.config import Config
from adapterops.controller import Controller
from adapterops.kube import Kube
from adapterops.serving import LABEL_MD, LABEL_REVISION
from adapterops.trialjob import CONTAINER, LABEL_COMPONENT, LABEL_JOB

FINALIZER = f"{GROUP}/finalizer"


def _snapshot(body: kopf.Body) -> dict[str, Any]:
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": dict(body.metadata),
        "spec": dict(body.spec),
        "status": dict(body.status),
    }


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Our own domain for everything kopf writes on objects.
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.posting.level = logging.WARNING  # our own Events carry the story; no "handler succeeded" noise
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # one line per watch event is noise
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    config: Config = memo.config
    memo.controller = Controller(config=config, kube=await Kube.connect())
    memo.controller.start()


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await memo.controller.stop()
    await memo.controller.kube.close()


@kopf.index(GROUP, VERSION, "finetunejobs")
def finetunejob_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): _snapshot(body)}


@kopf.index(GROUP, VERSION, "modeldeployments")
def modeldeployment_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): _snapshot(body)}


@kopf.index("batch", "v1", "jobs", labels={LABEL_JOB: kopf.PRESENT})
def trial_job_index(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, labels[LABEL_JOB]): finetune.job_summary(dict(body))}


# JobSets and PyTorchJobs are watched by adapterops.engines: their CRDs may be removed at run time.


@kopf.index("", "v1", "pods", labels={LABEL_JOB: kopf.PRESENT, LABEL_COMPONENT: "trial"})
def trial_pod_index(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, labels[LABEL_JOB]): finetune.pod_summary(dict(body), CONTAINER)}


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_JOB: kopf.PRESENT})
@kopf.on.event("", "v1", "pods", labels={LABEL_JOB: kopf.PRESENT, LABEL_COMPONENT: "trial"})
def trial_changed(namespace: str | None, labels: Mapping[str, str], memo: Any, **kwargs: Any) -> None:
    memo.controller.bind_indices(kwargs)
    memo.controller.enqueue("FineTuneJob", (namespace, labels[LABEL_JOB]))


@kopf.index("apps", "v1", "deployments", labels={LABEL_MD: kopf.PRESENT})
def serving_deployment_index(
    namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> dict[Any, Any]:
    status = body.get("status") or {}
    summary = {
        "name": body["metadata"]["name"],
        "revision": labels.get(LABEL_REVISION),
        "replicas": (body.get("spec") or {}).get("replicas", 0),
        "readyReplicas": status.get("readyReplicas", 0),
    }
    return {(namespace, labels[LABEL_MD]): summary}


@kopf.index("", "v1", "pods", labels={LABEL_MD: kopf.PRESENT})
def serving_pod_index(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    status = body.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    summary = {
        "name": body["metadata"]["name"],
        "revision": labels.get(LABEL_REVISION),
        "ip": status.get("podIP"),
        "ready": ready and not body["metadata"].get("deletionTimestamp"),
    }
    return {(namespace, labels[LABEL_MD]): summary}


@kopf.on.event("apps", "v1", "deployments", labels={LABEL_MD: kopf.PRESENT})
@kopf.on.event("", "v1", "pods", labels={LABEL_MD: kopf.PRESENT})
def serving_changed(namespace: str | None, labels: Mapping[str, str], memo: Any, **kwargs: Any) -> None:
    memo.controller.bind_indices(kwargs)
    memo.controller.enqueue("ModelDeployment", (namespace, labels[LABEL_MD]))


@kopf.on.event(GROUP, VERSION, "finetunejobs")
def finetunejob_changed(namespace: str | None, name: str, memo: Any, **kwargs: Any) -> None:
    memo.controller.bind_indices(kwargs)
    memo.controller.enqueue("FineTuneJob", (namespace, name))
    # A new champion is a new revision of every ModelDeployment that follows this job.
    for (ns, md), bodies in kwargs["modeldeployment_index"].items():
        if ns == namespace and any(
            (a.get("fineTuneJobRef") or {}).get("name") == name for b in bodies for a in b["spec"].get("adapters", [])
        ):
            memo.controller.enqueue("ModelDeployment", (ns, md))


@kopf.on.event(GROUP, VERSION, "modeldeployments")
def modeldeployment_changed(namespace: str | None, name: str, memo: Any, **kwargs: Any) -> None:
    memo.controller.bind_indices(kwargs)
    memo.controller.enqueue("ModelDeployment", (namespace, name))
