"""P1's raw creator: a process of its own that does what the operator does to start a sweep, and nothing else.

It watches ConfigMaps labelled `adapterops.io/bench-trigger` (one per round, carrying a FineTuneJob spec);
on each new one it plans the trials and builds their Jobs with the operator's own planner and builder,
owned by the ConfigMap (an owner reference with its UID, as the operator's Jobs are owned by the
FineTuneJob), and creates them CREATE_CONCURRENCY at a time, as the operator does. The watch, the build and
the creates are what the operator's reaction costs; what the raw creator skips is the operator's own
machinery (acceptance, status writes, the trial ConfigMap, informers, the work queue).

    python bench/finetune/rawcreator.py KUBECONFIG GPU_CLASSES_YAML
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "operator"), str(REPO / "training-jobs")]

from kubernetes_asyncio import client, config, watch  # noqa: E402

from adapterops.api.finetunejob import FineTuneJobSpec  # noqa: E402
from adapterops.config import Config, load_gpu_classes  # noqa: E402
from adapterops.finetune import builders  # noqa: E402
from adapterops.finetune.plan import plan  # noqa: E402
from adapterops.finetune.reconciler import CREATE_CONCURRENCY  # noqa: E402

TRIGGER = "adapterops.io/bench-trigger"


def jobs_for(trigger: dict[str, Any], cfg: Config) -> list[dict[str, Any]]:
    meta = trigger["metadata"]
    spec = FineTuneJobSpec.model_validate(json.loads(trigger["data"]["spec"]))
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}
    jobs = [builders.trial_job(owner, t, spec, cfg) for t in plan(meta["name"], spec)]
    for job in jobs:
        # Not the operator's: neither the Job nor its pods may be watched by it (its informers select on these).
        for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
            labels.pop(builders.LABEL_JOB)
            labels.pop(builders.LABEL_JOB_UID)
            labels["adapterops.io/bench-owner"] = meta["name"]
    return jobs


async def run(kubeconfig: str, gpu_classes: str) -> None:
    await config.load_kube_config(kubeconfig)
    cfg = Config(gpu_classes=load_gpu_classes(Path(gpu_classes)))
    limit = asyncio.Semaphore(CREATE_CONCURRENCY)
    async with client.ApiClient() as api:
        core, batch = client.CoreV1Api(api), client.BatchV1Api(api)

        async def create(namespace: str, job: dict[str, Any]) -> None:
            async with limit:
                await batch.create_namespaced_job(namespace, job, _preload_content=False)

        listing = await core.list_config_map_for_all_namespaces(label_selector=TRIGGER)
        version = listing.metadata.resource_version
        print("rawcreator: watching", flush=True)
        while True:
            stream = watch.Watch().stream(
                core.list_config_map_for_all_namespaces,
                label_selector=TRIGGER,
                resource_version=version,
                timeout_seconds=300,
                _preload_content=False,
            )
            async for event in stream:
                obj = event["raw_object"]
                version = obj["metadata"]["resourceVersion"]
                if event["type"] != "ADDED":
                    continue
                namespace = obj["metadata"]["namespace"]
                await asyncio.gather(*(create(namespace, j) for j in jobs_for(obj, cfg)))


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], sys.argv[2]))
