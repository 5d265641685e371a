"""kopf registrations, and nothing else: every handler delegates to the Controller.

kopf watches our own kinds: indices give the workers an in-memory view of them (kopf fills them before
any handler runs); event handlers only enqueue the affected FineTuneJob or ModelDeployment. Handlers
are coroutines, so kopf calls them on its event loop instead of handing each to a thread pool.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from adapterops.api.kinds import GROUP, VERSION
from adapterops.config import Config
from adapterops.runtime.client import Kube
from adapterops.runtime.manager import Controller

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
async def finetunejob_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): _snapshot(body)}


@kopf.index(GROUP, VERSION, "modeldeployments")
async def modeldeployment_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): _snapshot(body)}


# Children (trial Jobs and pods, JobSets, PyTorchJobs, serving Deployments and pods) are watched by
# adapterops.watches with server-side label selectors, not by kopf (see that module for why).


@kopf.on.event(GROUP, VERSION, "finetunejobs")
async def finetunejob_changed(namespace: str | None, name: str, memo: Any, **kwargs: Any) -> None:
    memo.controller.bind_indices(kwargs)
    memo.controller.enqueue("FineTuneJob", (namespace, name))
    # A new champion is a new revision of every ModelDeployment that follows this job.
    for (ns, md), bodies in kwargs["modeldeployment_index"].items():
        if ns == namespace and any(
            (a.get("fineTuneJobRef") or {}).get("name") == name for b in bodies for a in b["spec"].get("adapters", [])
        ):
            memo.controller.enqueue("ModelDeployment", (ns, md))


@kopf.on.event(GROUP, VERSION, "modeldeployments")
async def modeldeployment_changed(namespace: str | None, name: str, memo: Any, **kwargs: Any) -> None:
    memo.controller.bind_indices(kwargs)
    memo.controller.enqueue("ModelDeployment", (namespace, name))
