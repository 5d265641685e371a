"""The reconcile loop: work queues fed by watch events, workers that converge each object.

kopf watches our own kinds and keeps indices of them; adapterops.watches watches the children (label
selected on the server). The workers read those in-memory views, so a reconcile costs API calls only
for what it changes, and they start once every child watch has listed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from adapterops.api.finetunejob import FineTuneJobSpec
from adapterops.api.kinds import API_VERSION
from adapterops.config import Config
from adapterops.deploy import builders as serving
from adapterops.deploy.reconciler import Rollout
from adapterops.finetune import builders as trialjob
from adapterops.finetune import observe as finetune
from adapterops.finetune.plan import PlannedTrial
from adapterops.runtime import events
from adapterops.runtime.client import ApiException, Kube
from adapterops.runtime.conditions import get_condition
from adapterops.runtime.informer import ChildWatch, Summarize
from adapterops.runtime.metrics import (
    API_ERRORS,
    BEST_SCORE,
    RECONCILE_ERRORS,
    RECONCILE_SECONDS,
    TRIALS,
    forget,
    set_gauge,
)
from adapterops.runtime.workqueue import Key, WorkQueue

log = logging.getLogger(__name__)

WORKERS_PER_KIND = 4
CREATE_CONCURRENCY = 8
GROUP_CACHE_SECONDS = 10  # how long "is Kueue / JobSet installed" answers are reused
BUILDERS = {"Job": trialjob.trial_job, "JobSet": trialjob.trial_jobset, "PyTorchJob": trialjob.trial_pytorchjob}
KUEUE_API = "kueue.x-k8s.io/v1beta1"
ENGINE_APIS = {"JobSet": "jobset.x-k8s.io/v1alpha2", "PyTorchJob": "kubeflow.org/v1"}
RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 300.0


@dataclass
class Controller:
    config: Config
    kube: Kube
    queues: dict[str, WorkQueue] = field(default_factory=dict)
    # Live kopf indices, captured from the first handler call (kopf passes them to every handler).
    indices: Mapping[str, Any] = field(default_factory=dict)
    last_write: dict[Key, float] = field(default_factory=dict)
    failures: dict[tuple[str, Key], int] = field(default_factory=dict)
    backoff_until: dict[tuple[str, Key], float] = field(default_factory=dict)
    # Validated sweep plans by (uid, generation).
    plans: dict[tuple[Any, Any], finetune.Acceptance] = field(default_factory=dict)
    # Trial Jobs created but not yet seen in the index, per FineTuneJob.
    created: dict[Key, set[str]] = field(default_factory=dict)
    # The uid of the FineTuneJob whose trials ConfigMap is known to exist, per key.
    configmaps: dict[Key, str] = field(default_factory=dict)
    # Children by what they are: trial Jobs and pods, serving Deployments and pods.
    children: dict[str, ChildWatch] = field(default_factory=dict)
    # Multi-node trials by engine kind (JobSet, PyTorchJob); their API groups may come and go.
    engines: dict[str, ChildWatch] = field(default_factory=dict)
    _groups: dict[str, tuple[bool, float]] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def bind_indices(self, kwargs: Mapping[str, Any]) -> None:
        if not self.indices:
            self.indices = {k: v for k, v in kwargs.items() if k.endswith("_index")}

    def one(self, index: str, key: Key) -> dict[str, Any] | None:
        """The single object an index holds under `key` (our own objects are indexed by (ns, name))."""
        store = self.indices.get(index, {}).get(key)
        return next(iter(store), None) if store else None

    def __post_init__(self) -> None:
        self.rollout = Rollout(self)

    def start(self) -> None:
        ns = self.config.namespaces

        def watch(
            api_version: str,
            kind: str,
            label: str,
            summarize: Summarize,
            owner: str,
            selector: str = "",
            optional: bool = False,  # an add-on's kind: its API group is looked for first
        ) -> ChildWatch:
            group = api_version.split("/")[0]
            return ChildWatch(
                kube=self.kube,
                api_version=api_version,
                kind=kind,
                label=label,
                selector=selector,
                summarize=summarize,
                on_change=functools.partial(self.enqueue, owner),
                served=functools.partial(self.api_group_served, group) if optional else None,
                namespaces=ns,
            )

        job = trialjob.LABEL_JOB
        self.children = {
            "trial-jobs": watch("batch/v1", "Job", job, finetune.job_summary, "FineTuneJob"),
            "trial-pods": watch(
                "v1",
                "Pod",
                job,
                functools.partial(finetune.pod_summary, container=trialjob.CONTAINER),
                "FineTuneJob",
                selector=f"{job},{trialjob.LABEL_COMPONENT}=trial",
            ),
            "serving-deployments": watch(
                "apps/v1", "Deployment", serving.LABEL_MD, serving.deployment_summary, "ModelDeployment"
            ),
            "serving-pods": watch("v1", "Pod", serving.LABEL_MD, serving.pod_summary, "ModelDeployment"),
        }
        for engine, api_version in ENGINE_APIS.items():
            self.engines[engine] = watch(
                api_version, engine, job, finetune.engine_summary, "FineTuneJob", optional=True
            )
        for w in [*self.children.values(), *self.engines.values()]:
            self._tasks.append(asyncio.create_task(w.run()))
        self._tasks.append(asyncio.create_task(self._start_workers()))

    async def _start_workers(self) -> None:
        """Workers start once every child watch has listed: an empty view would look like lost children."""
        await asyncio.gather(*(w.synced.wait() for w in [*self.children.values(), *self.engines.values()]))
        reconcilers: dict[str, Callable[[Key], Awaitable[None]]] = {
            "FineTuneJob": self.reconcile_finetunejob,
            "ModelDeployment": self.reconcile_modeldeployment,
        }
        for kind, fn in reconcilers.items():
            queue = self.queues.setdefault(kind, WorkQueue())
            for _ in range(WORKERS_PER_KIND):
                self._tasks.append(asyncio.create_task(queue.run_worker(self._guarded(kind, fn))))

    async def stop(self) -> None:
        await self.rollout.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def enqueue(self, kind: str, key: Key) -> None:
        self.queues.setdefault(kind, WorkQueue()).add(key)

    def _guarded(self, kind: str, fn: Callable[[Key], Awaitable[None]]) -> Callable[[Key], Awaitable[None]]:
        async def run(key: Key) -> None:
            start = time.monotonic()
            # A key that keeps failing waits out its backoff, however many watch events arrive meanwhile.
            wait = self.backoff_until.get((kind, key), 0.0) - start
            if wait > 0:
                self.queues[kind].add_after(key, wait)
                return
            try:
                await fn(key)
                self.failures.pop((kind, key), None)
                # Level-based: look again later even without events (e.g. a CRD that got installed).
                self.queues[kind].add_after(key, self.config.reconcile_seconds)
            except ApiException as exc:
                API_ERRORS.labels(kind, str(exc.status)).inc()
                self._retry(kind, key, f"API error {exc.status} {exc.reason}")
            except Exception:
                log.exception("%s %s: reconcile failed", kind, key)
                self._retry(kind, key, "unexpected error")
            finally:
                RECONCILE_SECONDS.labels(kind).observe(time.monotonic() - start)

        return run

    def _retry(self, kind: str, key: Key, why: str) -> None:
        RECONCILE_ERRORS.labels(kind).inc()
        failures = self.failures[(kind, key)] = self.failures.get((kind, key), 0) + 1
        delay = min(RETRY_SECONDS * 2 ** (failures - 1), MAX_RETRY_SECONDS)
        self.backoff_until[(kind, key)] = time.monotonic() + delay
        log.warning("%s %s: %s; retry %d in %.0fs", kind, key, why, failures, delay)
        self.queues[kind].add_after(key, delay)

    async def write_status(self, body: dict[str, Any], status: dict[str, Any]) -> bool:
        """Patch status only when it differs from what the object carries (no write churn).

        A merge patch keeps keys it does not name, so fields that went away are sent as null. The
        resourceVersion makes the write conditional: computed from a stale view of the object (the index
        lags our own last write), it is refused and the next reconcile sees the fresh object, so a
        transition is written, and announced, once."""
        old = body.get("status") or {}
        if status == old:
            return False
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        # Coalesce minor changes (a trial started, a metric moved) under load: at most one write per
        # config.status_write_seconds per object, unless a condition or the summary state changes.
        since = time.monotonic() - self.last_write.get(key, 0.0)
        interval = self.config.status_write_seconds
        if since < interval and not _significant(old, status):
            self.queues[body["kind"]].add_after(key, interval - since)
            return False
        patch = {
            "metadata": {"resourceVersion": meta["resourceVersion"]},
            "status": merge_patch(old, status),
        }
        try:
            await self.kube.patch_merge(
                API_VERSION, body["kind"], meta["namespace"], meta["name"], patch, subresource="status"
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.queues[body["kind"]].add_after(key, 0.5)
            return False
        self.last_write[key] = time.monotonic()
        return True

    async def announce_acceptance(self, body: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> None:
        before = get_condition(old.get("conditions"), "Accepted")
        after = get_condition(new.get("conditions"), "Accepted")
        if after is None or (before and (before["status"], before["message"]) == (after["status"], after["message"])):
            return
        if after["status"] == "True":
            await events.emit(self.kube, body, "Accepted", after["message"])
        else:
            await events.emit(self.kube, body, after["reason"], after["message"], "Warning")

    async def reconcile_finetunejob(self, key: Key) -> None:
        body = self.one("finetunejob_index", key)
        if body is None:
            self.created.pop(key, None)
            self.configmaps.pop(key, None)
            forget("FineTuneJob", *cast(tuple[str, str], key))
            return
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        old = body.get("status") or {}
        # The plan depends only on the spec (immutable but for parallelism and suspend): validated once.
        plan_key = (meta.get("uid"), meta.get("generation"))
        acceptance = self.plans.get(plan_key) or finetune.accept(name, body.get("spec") or {}, self.config)
        self.plans[plan_key] = acceptance
        if acceptance.error is None and acceptance.spec and acceptance.spec.resources.queue_name:
            acceptance = await self.check_queue(namespace, acceptance)
        engine = "Job"
        if acceptance.error is None and acceptance.spec and acceptance.spec.resources.nodes > 1:
            acceptance, engine = await self.distributed_engine(acceptance)
        if acceptance.error is not None or acceptance.spec is None:
            new = finetune.refused_status(old, acceptance, meta.get("generation"))
            if await self.write_status(body, new):
                await self.announce_acceptance(body, old, new)
            return
        spec = acceptance.spec
        engine_trials = [t for watch in self.engines.values() for t in watch.items(key)]
        jobs = {j["name"]: j for j in [*self.children["trial-jobs"].items(key), *engine_trials]}
        pods_by_job: dict[str, list[dict[str, Any]]] = {}
        for pod in self.children["trial-pods"].items(key):
            pods_by_job.setdefault(pod["job"], []).append(pod)
        old_rows = {r["name"]: r for r in old.get("trials") or []}
        rows = [
            finetune.observe_trial(t, jobs.get(t.name), pods_by_job.get(t.name, []), old_rows.get(t.name))
            for t in acceptance.trials
        ]
        # Jobs created but not yet seen by the watch still count (controller-runtime's "expectations").
        created = self.created.setdefault(key, set())
        created -= jobs.keys()
        existing = set(jobs) | created
        starting = finetune.to_start(acceptance.trials, rows, existing, spec.sweep.parallelism, spec.suspend)
        if starting:
            await self.start_trials(body, acceptance.trials, starting, spec, created, engine)
        accepted_message = f"sweep planned: {len(acceptance.trials)} trials"
        new = finetune.sweep_status(old, rows, spec, meta.get("generation"), accepted_message)
        if await self.write_status(body, new):
            await self.announce_acceptance(body, old, new)
            await self.announce_trials(body, old, new)
        record_trial_metrics(namespace, name, new, spec.objective.metric)

    async def start_trials(
        self,
        body: dict[str, Any],
        trials: list[PlannedTrial],
        starting: list[PlannedTrial],
        spec: FineTuneJobSpec,
        created: set[str],
        engine: str,
    ) -> None:
        """Create the trials' Jobs, a few at a time (the API server takes concurrent creates well). The
        TrialStarted Event comes with the status write that first shows them started."""
        # The trial specs' ConfigMap, created once per job (a create that finds it is a no-op, but a
        # request: with parallelism below maxTrials this runs once per wave of trials).
        meta = body["metadata"]
        key, uid = (meta["namespace"], meta["name"]), meta.get("uid")
        if self.configmaps.get(key) != uid:
            await self.kube.create(trialjob.trials_configmap(body, trials, spec))
            self.configmaps[key] = uid
        limit = asyncio.Semaphore(CREATE_CONCURRENCY)

        async def create(trial: PlannedTrial) -> None:
            async with limit:
                await self.kube.create(BUILDERS[engine](body, trial, spec, self.config))
            created.add(trial.name)

        await asyncio.gather(*(create(t) for t in starting))
        if engine in self.engines:
            self.engines[engine].poke()

    async def check_queue(self, namespace: str, acceptance: finetune.Acceptance) -> finetune.Acceptance:
        """With resources.queueName, Kueue must be installed and the LocalQueue must exist."""
        assert acceptance.spec is not None and acceptance.spec.resources.queue_name
        queue = acceptance.spec.resources.queue_name
        if not await self.api_group_served("kueue.x-k8s.io"):
            error = (
                f"spec.resources.queueName: {queue!r} names a Kueue LocalQueue, "
                "but Kueue (kueue.x-k8s.io) is not installed"
            )
            return finetune.Acceptance(acceptance.spec, [], error, "KueueNotInstalled")
        if await self.kube.get(KUEUE_API, "LocalQueue", namespace, queue) is None:
            error = f"spec.resources.queueName: LocalQueue {queue!r} does not exist in namespace {namespace!r}"
            return finetune.Acceptance(acceptance.spec, [], error, "QueueNotFound")
        return acceptance

    async def distributed_engine(self, acceptance: finetune.Acceptance) -> tuple[finetune.Acceptance, str]:
        """Multi-node trials run on an existing engine (JobSet, else the Kubeflow PyTorchJob), never our own."""
        assert acceptance.spec is not None
        if await self.api_group_served("jobset.x-k8s.io"):
            return acceptance, "JobSet"
        if await self.api_group_served("kubeflow.org"):
            return acceptance, "PyTorchJob"
        error = (
            f"spec.resources.nodes: {acceptance.spec.resources.nodes} nodes per trial needs a distributed engine: "
            "install JobSet (jobset.x-k8s.io) or the Kubeflow Training Operator (kubeflow.org PyTorchJob), "
            "or use nodes: 1"
        )
        return finetune.Acceptance(acceptance.spec, [], error, "NoDistributedEngine"), "Job"

    async def api_group_served(self, group: str) -> bool:
        cached = self._groups.get(group)
        if cached is not None and time.monotonic() - cached[1] < GROUP_CACHE_SECONDS:
            return cached[0]
        try:
            await self.kube.request("GET", f"/apis/{group}")
            served = True
        except ApiException as exc:
            if exc.status != 404:
                raise
            served = False
        self._groups[group] = (served, time.monotonic())
        return served

    async def announce_trials(self, body: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> None:
        """Events for the transitions since the status the object carried (so never twice)."""
        before = {r["name"]: r for r in old.get("trials") or []}
        started, succeeded, failed = [], [], []
        for row in new.get("trials") or []:
            if _started(row) and not _started(before.get(row["name"], {})):
                started.append(f"{row['name']} {row['parameters']}")
            if row["state"] == before.get(row["name"], {}).get("state"):
                continue
            if row["state"] == "Succeeded":
                scores = ", ".join(
                    f"{k}={row[k]:.4g}" for k in ("judgeScore", "validationLoss") if row.get(k) is not None
                )
                succeeded.append(f"{row['name']} ({scores})")
            elif row["state"] == "Failed":
                failed.append(f"{row['name']} after {row['attempts']} attempt(s): {row.get('message', '')}")
        # Transitions seen in one reconcile share an Event: fewer API calls when many trials finish at once.
        if started:
            await events.emit(self.kube, body, "TrialStarted", f"started {len(started)}: " + "; ".join(started))
        if succeeded:
            await events.emit(self.kube, body, "TrialSucceeded", "succeeded: " + "; ".join(succeeded))
        if failed:
            await events.emit(self.kube, body, "TrialFailed", "failed: " + "; ".join(failed), "Warning")
        old_champion = (old.get("champion") or {}).get("trial")
        champion = new.get("champion")
        finished = new.get("state") in ("Succeeded", "Failed")
        was_finished = old.get("state") in ("Succeeded", "Failed")
        if champion and finished and (not was_finished or champion["trial"] != old_champion):
            await events.emit(self.kube, body, "ChampionSelected", f"champion {champion['trial']}: {champion}")
        if finished and old.get("state") != new["state"]:
            cond = next(c for c in new["conditions"] if c["type"] == new["state"])
            kind: Literal["Normal", "Warning"] = "Normal" if new["state"] == "Succeeded" else "Warning"
            await events.emit(self.kube, body, f"Sweep{new['state']}", cond["message"], kind)

    async def reconcile_modeldeployment(self, key: Key) -> None:
        await self.rollout.reconcile(key)


def _started(row: dict[str, Any]) -> bool:
    return bool(row.get("startTime") or row.get("attempts") or row.get("state") in ("Running", "Succeeded", "Failed"))


def _significant(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """A change worth writing at once: a condition flips or changes reason, or the summary moves."""

    def conditions(status: dict[str, Any]) -> set[tuple[str, str, str]]:
        return {(c["type"], c["status"], c["reason"]) for c in status.get("conditions") or []}

    summary = ("state", "canaryWeight", "champion", "observedGeneration")
    return (
        conditions(old) != conditions(new)
        or any(old.get(k) != new.get(k) for k in summary)
        or ((old.get("stable") or {}).get("revision") != (new.get("stable") or {}).get("revision"))
    )


def record_trial_metrics(namespace: str, name: str, status: dict[str, Any], metric: str) -> None:
    counts = status.get("trialCounts") or {}
    for state in ("pending", "running", "succeeded", "failed"):
        set_gauge("FineTuneJob", TRIALS, counts.get(state, 0), namespace, name, state)
    champion = status.get("champion") or {}
    value = champion.get(metric)
    if value is not None:
        set_gauge("FineTuneJob", BEST_SCORE, value, namespace, name, metric)


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch turning `old` into `new`: removed keys, at any depth, become null."""
    patch: dict[str, Any] = {k: None for k in old if k not in new}
    for k, v in new.items():
        before = old.get(k)
        if isinstance(v, dict) and isinstance(before, dict):
            if sub := merge_patch(before, v):
                patch[k] = sub
        elif v != before or k not in old:
            patch[k] = v
    return patch
