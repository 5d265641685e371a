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


@kopf.index("", "v1", "pods", labels={LABEL_JOB: kopf.PRESENT, LABEL_COMPONENT: "trial"})
def trial_pod_index(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, labels[LABEL_JOB]): finetune.pod_summary(dict(body), CONTAINER)}


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_JOB: kopf.PRESENT})
@kopf.on.event("", "v1", "pods", labels={LABEL_JOB: kopf.PRESENT, LABEL_COMPONENT: "trial"})
def trial_changed(namespace: str | None, labels: Mapping[str, str], memo: Any, **kwargs: Any) -> None:
    memo.controller.bind_indices(kwargs)
    memo.controller.enqueue("FineTuneJob", (namespace, labels[LABEL_JOB]))


@kopf.on.event(GROUP, VERSION, "finetunejobs")
def finetunejob_changed(namespace: str | None, name: str, memo: Any, **kwargs: Any) -> None:
    memo.controller.bind_indices(kwargs)
    memo.controller.enqueue("FineTuneJob", (namespace, name))


@kopf.on.event(GROUP, VERSION, "modeldeployments")
def modeldeployment_changed(namespace: str | None, name: str, memo: Any, **kwargs: Any) -> None:
    memo.controller.bind_indices(kwargs)
    memo.controller.enqueue("ModelDeployment", (namespace, name))
