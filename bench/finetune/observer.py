"""The benchmark's observer: a process of its own that watches the cluster and writes one JSON line per
event it sees, stamped with its own clock.

Neither the operator nor the raw creator nor the driver stamps anything: every interval P1 and P2 report
is the difference of two stamps written here, by one clock, through watches that see both sides alike.

    python bench/finetune/observer.py KUBECONFIG OUT.jsonl NAMESPACE_PREFIX...

Lines: {"t": seconds (CLOCK_MONOTONIC), "kind": ..., "type": ADDED|MODIFIED|DELETED, "ns", "name", "uid",
plus per kind what the benchmark reads (a Job's trial label and whether it is complete, a FineTuneJob's
state, a pod's Job, a Deployment's owner kind)}.
"""

from __future__ import annotations

import functools
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes

GROUP, VERSION = "adapterops.io", "v1alpha1"
TRIGGER = "adapterops.io/bench-trigger"


def job_fields(job: dict[str, Any]) -> dict[str, Any]:
    labels = job["metadata"].get("labels") or {}
    status = job.get("status") or {}
    return {
        "trial": labels.get("adapterops.io/trial"),
        "owner": labels.get("adapterops.io/finetunejob") or labels.get("adapterops.io/bench-owner"),
        "complete": bool(status.get("succeeded")) or bool(status.get("failed")),
    }


def pod_fields(pod: dict[str, Any]) -> dict[str, Any]:
    labels = pod["metadata"].get("labels") or {}
    return {"job": labels.get("job-name"), "phase": (pod.get("status") or {}).get("phase")}


def ftj_fields(ftj: dict[str, Any]) -> dict[str, Any]:
    return {"state": (ftj.get("status") or {}).get("state")}


def deploy_fields(deploy: dict[str, Any]) -> dict[str, Any]:
    owners = deploy["metadata"].get("ownerReferences") or []
    return {"owner": next((o["name"] for o in owners if o["kind"] == "ModelDeployment"), None)}


def plain(_: dict[str, Any]) -> dict[str, Any]:
    return {}


class Observer:
    def __init__(self, kubeconfig: str, out: str, prefixes: list[str]) -> None:
        self.api = kubernetes.config.new_client_from_config(kubeconfig)
        self.prefixes = tuple(prefixes)
        self.out = open(out, "a", buffering=1)  # noqa: SIM115 - open for the process's life
        self.lock = threading.Lock()

    def write(self, kind: str, event: dict[str, Any], fields: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        t = time.monotonic()
        obj = event["object"]
        meta = obj["metadata"]
        if not meta.get("namespace", "").startswith(self.prefixes):
            return
        line = {"t": t, "kind": kind, "type": event["type"], "ns": meta["namespace"], "name": meta["name"]}
        line |= {"uid": meta.get("uid")} | fields(obj)
        with self.lock:
            self.out.write(json.dumps(line) + "\n")

    def watch(self, kind: str, lister: Callable[..., Any], fields: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Watch for ever, resuming from the last resource version (a watch the server closes is re-opened)."""
        version: str | None = None
        while True:
            try:
                if version is None:
                    listing = lister(_preload_content=False)
                    body = json.loads(listing.data)
                    version = body["metadata"]["resourceVersion"]
                    for item in body["items"]:
                        self.write(kind, {"type": "EXISTING", "object": item}, fields)
                for event in self.stream(lister, version):
                    if event["type"] == "ERROR":  # 410 Gone: list again
                        version = None
                        break
                    version = event["object"]["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        self.write(kind, event, fields)
            except kubernetes.client.ApiException as error:
                if error.status == 410:  # the version was compacted away: list again
                    version = None
                else:  # the kind is not served yet (the chart installs the CRDs after the observer starts)
                    time.sleep(1)
            except Exception as error:  # a dropped connection: resume from the last version
                print(f"observer: {kind} watch: {error!r}", file=sys.stderr, flush=True)
                time.sleep(0.5)

    def stream(self, lister: Callable[..., Any], version: str) -> Iterator[dict[str, Any]]:
        w = kubernetes.watch.Watch()
        # Bookmarks keep the version current on a quiet watch (else it is compacted away: 410 Gone).
        stream = w.stream(lister, resource_version=version, timeout_seconds=300, allow_watch_bookmarks=True)
        for event in stream:
            yield {"type": event["type"], "object": event["raw_object"]}


def main() -> None:
    kubeconfig, out, *prefixes = sys.argv[1:]
    observer = Observer(kubeconfig, out, prefixes)
    batch = kubernetes.client.BatchV1Api(observer.api)
    core = kubernetes.client.CoreV1Api(observer.api)
    apps = kubernetes.client.AppsV1Api(observer.api)
    custom = kubernetes.client.CustomObjectsApi(observer.api)

    def ftjs(**kw: Any) -> Any:
        return custom.list_cluster_custom_object(GROUP, VERSION, "finetunejobs", **kw)

    watches: list[tuple[str, Callable[..., Any], Callable[[dict[str, Any]], dict[str, Any]]]] = [
        ("Job", batch.list_job_for_all_namespaces, job_fields),
        ("Pod", core.list_pod_for_all_namespaces, pod_fields),
        ("FineTuneJob", ftjs, ftj_fields),
        ("ConfigMap", functools.partial(core.list_config_map_for_all_namespaces, label_selector=TRIGGER), plain),
        ("Deployment", apps.list_deployment_for_all_namespaces, deploy_fields),
    ]
    for kind, lister, fields in watches:
        threading.Thread(target=observer.watch, args=(kind, lister, fields), daemon=True).start()
    print("observer: watching", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
