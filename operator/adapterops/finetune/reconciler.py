"""FineTuneJob reconcile: plan the sweep once, start trials up to `parallelism`, recompute every trial's
state from its Job and pods, pick the champion, write the status and tell what changed in Events.

Level-based: the plan is deterministic (same spec, same trial names), children carry the job's UID
and are matched by it, and a Job the API server already has is recognised as ours or waited out, so a
restarted operator (or a second reconcile of the same state) never duplicates a trial.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import ConfigMap, Pod
from pydantic import ValidationError

from adapterops.api.finetunejob import Baseline, FineTuneJobSpec, FineTuneJobStatus, PairwiseResult, Trial
from adapterops.api.kinds import FINETUNEJOB, JOBSET, LOCALQUEUE, PYTORCHJOB, WORKLOAD
from adapterops.finetune import builders
from adapterops.finetune.acceptance import Accepted, accept
from adapterops.finetune.observe import (
    TERMINAL,
    QueueState,
    TrialPod,
    baseline_pairwise,
    engine_item,
    job_item,
    observe_trial,
    pod_item,
    trial_specs_item,
    workload_item,
)
from adapterops.finetune.plan import PlannedTrial, baseline_trial, legacy_trial_name, to_start
from adapterops.finetune.status import NOT_BETTER, baseline_wanted, champion, refused_status, sweep_status
from adapterops.runtime import failures
from adapterops.runtime.acceptance import REFUSED_RETRY_SECONDS, Refusal, announce
from adapterops.runtime.client import KindNotServed, resource_of
from adapterops.runtime.context import Context, Result
from adapterops.runtime.failures import ChildError, Reported
from adapterops.runtime.informer import Informer
from adapterops.runtime.metrics import BASELINE_SCORE, BEST_SCORE, CHAMPION_WIN_RATE, TRIALS, forget, set_gauge
from adapterops.runtime.workqueue import Key

log = logging.getLogger(__name__)

CREATE_CONCURRENCY = 8
NAME_TAKEN_RETRY_SECONDS = 5.0  # a Job of a deleted namesake is being garbage-collected
BUILDERS = {"Job": builders.trial_job, "JobSet": builders.trial_jobset, "PyTorchJob": builders.trial_pytorchjob}
SELECTOR = {builders.LABEL_JOB_UID: None}  # lightkube: a label that exists, whatever its value


def dump(status: FineTuneJobStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


class FineTuneJobReconciler:
    kind = FINETUNEJOB

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        informers = ctx.informers
        self.jobs = informers.of(FINETUNEJOB)
        self.trial_jobs = informers.get("trial-jobs", Job, job_item, labels=SELECTOR)
        self.trial_pods = informers.get(
            "trial-pods", Pod, pod_item, labels={**SELECTOR, builders.LABEL_COMPONENT: ["trial", "baseline"]}
        )
        self.engines: dict[str, Informer] = {
            kind.kind: informers.get(kind.plural, kind.resource, engine_item, labels=SELECTOR, optional=True)
            for kind in (JOBSET, PYTORCHJOB)
        }
        self.trial_specs = informers.get(
            "trial-specs", ConfigMap, trial_specs_item, labels={**SELECTOR, builders.LABEL_COMPONENT: "trial-specs"}
        )
        # Kueue's Workloads: why a queued trial waits (quota, preemption), shown in its row.
        self.workloads = informers.get("workloads", WORKLOAD.resource, workload_item, optional=True)
        informers_of_trials = (self.trial_jobs, self.trial_pods, self.trial_specs, self.workloads)
        for informer in (self.jobs, *informers_of_trials, *self.engines.values()):
            informer.subscribe(ctx.queue.add)
        # Per object, dropped with it: the validated plan (uid, generation), Jobs created but not yet seen
        # by the informer (controller-runtime's "expectations"), and the trials ConfigMaps' names and content
        # hashes for (uid, generation) (the content itself is rebuilt only when one must be applied), with
        # the names seen in step since (one of those missing later was deleted: that is announced).
        self.plans: dict[Key, tuple[str, int | None, Accepted]] = {}
        self.created: dict[Key, set[str]] = {}
        self.configmaps: dict[Key, tuple[str, int | None, dict[str, str], set[str]]] = {}

    def forget(self, key: Key) -> None:
        self.plans.pop(key, None)
        self.created.pop(key, None)
        self.configmaps.pop(key, None)
        self.ctx.status.forget(key)
        forget("FineTuneJob", *key)

    async def reconcile(self, key: Key) -> Result:
        body = self.jobs.one(key)
        if body is None:
            self.forget(key)
            return None
        meta = body["metadata"]
        namespace, uid, generation = meta["namespace"], meta["uid"], meta.get("generation")
        old = _status(body)
        try:
            accepted = self._accept(key, body)
            engine = await self._engine(namespace, accepted)
        except Refusal as refusal:
            new = refused_status(old, refusal, generation)
            if await self.ctx.status.write(body, dump(new)):
                await announce(self.ctx.events, body, old.conditions, new.conditions)
            return REFUSED_RETRY_SECONDS
        spec = accepted.spec
        owner = (namespace, uid)  # children are matched in the job's own namespace only
        runs = {r.name: r for r in self.trial_jobs.data(owner)}
        runs |= {r.name: r for engine_informer in self.engines.values() for r in engine_informer.data(owner)}
        pods: dict[str, list[TrialPod]] = {}
        for pod in self.trial_pods.data(owner):
            pods.setdefault(pod.trial, []).append(pod)
        for trial in accepted.trials:  # Jobs an older operator named otherwise (0.1): carried on as they are
            legacy = legacy_trial_name(meta["name"], trial.index)
            if trial.name not in runs and legacy != trial.name and legacy in runs:
                runs[trial.name] = runs.pop(legacy)
                pods[trial.name] = pods.pop(legacy, [])
        queues: dict[str, QueueState] = {}
        for q in sorted(self.workloads.data(owner), key=lambda q: q.created or datetime.min.replace(tzinfo=UTC)):
            queues[q.trial] = q  # the newest Workload of each trial
        old_rows = {r.name: r for r in old.trials}
        rows = [
            observe_trial(t, runs.get(t.name), pods.get(t.name, []), old_rows.get(t.name), queues.get(t.name))
            for t in accepted.trials
        ]
        baseline = baseline_trial(meta["name"], accepted.trials) if baseline_wanted(old, spec) else None
        base_row, pairwise = None, None
        if baseline is not None:
            base_pods = pods.get(baseline.name, [])
            base_row = observe_trial(
                baseline, runs.get(baseline.name), base_pods, _row(old.baseline), queues.get(baseline.name)
            )
            found = baseline_pairwise(base_pods)
            pairwise = old.baseline.pairwise if old.baseline else None  # recorded before, if the pod is gone
            if found is not None:
                pairwise = PairwiseResult.model_validate(found)
        created = self.created.setdefault(key, set())
        created -= runs.keys()
        existing = set(runs) | created
        retry: Result = self.ctx.config.reconcile_seconds
        failure: ChildError | None = None
        unfinished = any(r.state not in TERMINAL for r in [*rows, *([base_row] if base_row else [])])
        try:
            if unfinished:  # a pod still to start (a first attempt or a retry) mounts its trial's spec
                await self._trial_specs(body, accepted, baseline)
            if not spec.suspend:
                busy = sum(1 for r in rows if r.name in existing and r.state not in TERMINAL)
                starting = to_start(accepted.trials, busy, existing, spec.sweep.parallelism)
                if starting and not await self._start(body, accepted, starting, created, engine):
                    retry = NAME_TAKEN_RETRY_SECONDS
                if (
                    baseline is not None
                    and baseline.name not in existing
                    and not await self._start_baseline(body, spec, baseline, rows, created)
                ):
                    retry = NAME_TAKEN_RETRY_SECONDS
        except ChildError as exc:
            failure = exc
        planned = f"sweep planned: {len(accepted.trials)} trials" + (" and a baseline" if baseline else "")
        new = sweep_status(old, rows, spec, generation, planned, base_row, pairwise)
        new.conditions = failures.record(new.conditions, failure, generation)
        if await self.ctx.status.write(body, dump(new)):
            await announce(self.ctx.events, body, old.conditions, new.conditions)
            await failures.announce(self.ctx.events, body, old.conditions, new.conditions)
            await self._announce_trials(body, old, new)
        _record_metrics(namespace, meta["name"], new, spec.objective.metric)
        if failure is not None:
            raise Reported(str(failure))
        return retry

    def _accept(self, key: Key, body: dict[str, Any]) -> Accepted:
        """The plan depends only on the spec (immutable but for parallelism and suspend): validated once."""
        meta = body["metadata"]
        cached = self.plans.get(key)
        if cached is not None and cached[:2] == (meta["uid"], meta.get("generation")):
            return cached[2]
        accepted = accept(meta["name"], body.get("spec") or {}, self.ctx.config, meta["namespace"])
        self.plans[key] = (meta["uid"], meta.get("generation"), accepted)
        return accepted

    async def _engine(self, namespace: str, accepted: Accepted) -> str:
        """Kueue must serve the named queue; multi-node trials need an installed distributed engine."""
        resources = accepted.spec.resources
        if resources.queue_name:
            queue = resources.queue_name
            try:
                found = await self.ctx.client.get(LOCALQUEUE.resource, namespace, queue)
            except KindNotServed as exc:
                raise Refusal(
                    "KueueNotInstalled",
                    f"spec.resources.queueName: {queue!r} names a Kueue LocalQueue, but Kueue ({LOCALQUEUE.group}) "
                    "is not installed",
                ) from exc
            if found is None:
                raise Refusal(
                    "QueueNotFound",
                    f"spec.resources.queueName: LocalQueue {queue!r} does not exist in namespace {namespace!r}",
                )
        if resources.nodes == 1:
            return "Job"
        # A multi-node trial runs on an existing engine (JobSet, else the Kubeflow PyTorchJob), never our own.
        for kind in (JOBSET, PYTORCHJOB):
            if self.engines[kind.kind].served:
                return kind.kind
        raise Refusal(
            "NoDistributedEngine",
            f"spec.resources.nodes: {resources.nodes} nodes per trial needs a distributed engine: install JobSet "
            f"({JOBSET.group}) or the Kubeflow Training Operator ({PYTORCHJOB.group} PyTorchJob), or use nodes: 1",
        )

    async def _start_baseline(
        self, body: dict[str, Any], spec: FineTuneJobSpec, baseline: PlannedTrial, rows: list[Trial], created: set[str]
    ) -> bool:
        """The baseline Job, once every trial has finished and there is a champion to compare (the Job takes its
        adapter for the pairwise comparison); False when its name is held by an object not ours."""
        best = champion(rows, spec.objective.metric)
        if best is None or any(r.state not in TERMINAL for r in rows):
            return True
        compare = best.adapter_uri if spec.evaluation is not None and spec.baseline.pairwise else None
        manifest = builders.baseline_job(body, baseline, spec, self.ctx.config, compare)
        with failures.manifest_writing("create", manifest):
            found = await self.ctx.client.create(manifest)
        if found is None and not await self._ours(manifest, body["metadata"]["uid"]):
            log.info("%s/%s: baseline Job name held by another object", body["metadata"]["namespace"], baseline.name)
            return False
        created.add(baseline.name)
        await self.ctx.events.emit(body, "BaselineStarted", f"evaluating the base model in Job {baseline.name}")
        return True

    async def _trial_specs(self, body: dict[str, Any], accepted: Accepted, baseline: PlannedTrial | None) -> None:
        """The trials ConfigMaps exist and match this generation's spec (applied again when one is missing,
        edited, or the spec changed, e.g. gpusPerTrial)."""
        meta = body["metadata"]
        key, uid, generation = (meta["namespace"], meta["name"]), meta["uid"], meta.get("generation")
        cached = self.configmaps.get(key)
        if cached is None or cached[:2] != (uid, generation):
            manifests = builders.trials_configmaps(body, accepted.trials, accepted.spec, baseline)
            wanted = {m["metadata"]["name"]: m["metadata"]["annotations"][builders.CONTENT_HASH] for m in manifests}
            # Seen in step before a spec change that leaves them as they were (parallelism): still seen.
            before = cached[2:] if cached is not None and cached[0] == uid else ({}, set())
            kept = {n for n in before[1] if before[0].get(n) == wanted.get(n)}
            self.configmaps[key] = (uid, generation, wanted, kept)
        wanted, seen = self.configmaps[key][2:]
        observed = dict(self.trial_specs.data((meta["namespace"], uid)))
        seen |= {name for name, digest in wanted.items() if observed.get(name) == digest}
        if all(observed.get(name) == digest for name, digest in wanted.items()):
            return
        for manifest in builders.trials_configmaps(body, accepted.trials, accepted.spec, baseline):
            name = manifest["metadata"]["name"]
            if observed.get(name) != wanted[name]:
                with failures.manifest_writing("apply", manifest):
                    await self.ctx.client.apply(manifest)
                if name in seen:  # it was there: someone deleted or edited it (pods still to start mount it)
                    what = "was deleted" if name not in observed else "was changed"
                    await self.ctx.events.emit(
                        body, "TrialSpecsApplied", f"trials ConfigMap {name} {what}; applied again", "Warning"
                    )

    async def _start(
        self, body: dict[str, Any], accepted: Accepted, starting: list[PlannedTrial], created: set[str], engine: str
    ) -> bool:
        """Create the trials' Jobs, a few at a time; False when a name is still held by an object not ours.
        The TrialStarted Event comes with the status write that first shows them started."""
        meta = body["metadata"]
        key, uid = (meta["namespace"], meta["name"]), meta["uid"]
        limit = asyncio.Semaphore(CREATE_CONCURRENCY)
        taken: list[str] = []

        async def create(trial: PlannedTrial) -> None:
            manifest = BUILDERS[engine](body, trial, accepted.spec, self.ctx.config)
            async with limit:
                with failures.manifest_writing("create", manifest):
                    found = await self.ctx.client.create(manifest)
                if found is None and not await self._ours(manifest, uid):
                    taken.append(trial.name)
                    return
            created.add(trial.name)

        await asyncio.gather(*(create(t) for t in starting))
        if engine in self.engines:
            self.engines[engine].poke()
        if accepted.spec.resources.queue_name:
            self.workloads.poke()  # Kueue makes a Workload of each: look for the kind now if it was absent
        if taken:
            log.info("%s/%s: trial names still held by another object: %s", *key, ", ".join(taken))
        return not taken

    async def _ours(self, manifest: dict[str, Any], uid: str) -> bool:
        """Whether an existing object of the manifest's name is this job's (a create raced a restart)."""
        meta = manifest["metadata"]
        found = await self.ctx.client.get(
            resource_of(manifest["apiVersion"], manifest["kind"]), meta["namespace"], meta["name"]
        )
        return found is not None and (found["metadata"].get("labels") or {}).get(builders.LABEL_JOB_UID) == uid

    async def _announce_trials(self, body: dict[str, Any], old: FineTuneJobStatus, new: FineTuneJobStatus) -> None:
        """Events for the transitions since the status the object carried (so never twice). Transitions seen
        in one reconcile share an Event: fewer API calls when many trials finish at once."""
        before = {r.name: r for r in old.trials}
        started, succeeded, failed = [], [], []
        for row in new.trials:
            prior = before.get(row.name)
            if _started(row) and not (prior and _started(prior)):
                started.append(f"{row.name} {row.parameters}")
            if prior is not None and row.state == prior.state:
                continue
            if row.state == "Succeeded":
                scores = ", ".join(
                    f"{name}={value:.4g}"
                    for name, value in (("judgeScore", row.judge_score), ("validationLoss", row.validation_loss))
                    if value is not None
                )
                succeeded.append(f"{row.name} ({scores})")
            elif row.state == "Failed":
                failed.append(f"{row.name} after {row.attempts} attempt(s): {row.message or ''}")
        events = self.ctx.events
        if started:
            await events.emit(body, "TrialStarted", f"started {len(started)}: " + "; ".join(started))
        if succeeded:
            await events.emit(body, "TrialSucceeded", "succeeded: " + "; ".join(succeeded))
        if failed:
            await events.emit(body, "TrialFailed", "failed: " + "; ".join(failed), "Warning")
        base, was = new.baseline, old.baseline
        if base is not None and base.state in TERMINAL and (was is None or was.state != base.state):
            numbers = f"validationLoss={base.validation_loss}, judgeScore={base.judge_score}"
            if base.pairwise is not None and base.pairwise.win_rate is not None:
                p = base.pairwise
                numbers += (
                    f"; champion vs base model pairwise: won {p.wins}, tied {p.ties}, lost {p.losses} "
                    f"(win rate {p.win_rate:.3g}, orders agreed on {p.agreement or 0:.0%})"
                )
            if base.state == "Succeeded":
                await events.emit(body, "BaselineEvaluated", f"base model ({base.job}): {numbers}")
            else:
                await events.emit(body, "BaselineFailed", f"{base.job}: {base.message or ''}", "Warning")
        worse = next((c for c in new.conditions if c.type == NOT_BETTER and c.status == "True"), None)
        if worse is not None and not any(c.type == NOT_BETTER and c.status == "True" for c in old.conditions):
            await events.emit(body, NOT_BETTER, worse.message, "Warning")
        finished = new.state in ("Succeeded", "Failed")
        was_finished = old.state in ("Succeeded", "Failed")
        champion = new.champion
        if champion and finished and (not was_finished or old.champion is None or champion.trial != old.champion.trial):
            summary = champion.model_dump(by_alias=True, exclude_none=True)
            await events.emit(body, "ChampionSelected", f"champion {champion.trial}: {summary}")
        if finished and old.state != new.state:
            cond = next(c for c in new.conditions if c.type == new.state)
            await events.emit(
                body, f"Sweep{new.state}", cond.message, "Normal" if new.state == "Succeeded" else "Warning"
            )


def _status(body: dict[str, Any]) -> FineTuneJobStatus:
    try:
        return FineTuneJobStatus.model_validate(body.get("status") or {})
    except ValidationError as exc:  # written by another version: start over rather than stop
        log.warning("%s: unreadable status, recomputing it: %s", body["metadata"]["name"], exc)
        return FineTuneJobStatus()


def _row(baseline: Baseline | None) -> Trial | None:
    """The baseline's last recorded row, as observe_trial keeps a result whose pod is gone."""
    if baseline is None:
        return None
    return Trial(
        name=baseline.job,
        index=0,
        state=baseline.state,
        validation_loss=baseline.validation_loss,
        judge_score=baseline.judge_score,
        message=baseline.message,
        start_time=baseline.start_time,
        completion_time=baseline.completion_time,
    )


def _started(row: Trial) -> bool:
    return bool(row.start_time or row.attempts or row.state in ("Running", "Succeeded", "Failed"))


def _record_metrics(namespace: str, name: str, status: FineTuneJobStatus, metric: str) -> None:
    counts = status.trial_counts
    for state in ("pending", "running", "succeeded", "failed"):
        set_gauge("FineTuneJob", TRIALS, getattr(counts, state) if counts else 0, namespace, name, state)
    champion = status.champion
    value = None if champion is None else (champion.judge_score if metric == "judgeScore" else champion.validation_loss)
    if value is not None:
        set_gauge("FineTuneJob", BEST_SCORE, value, namespace, name, metric)
    base = status.baseline
    value = None if base is None else (base.judge_score if metric == "judgeScore" else base.validation_loss)
    if value is not None:
        set_gauge("FineTuneJob", BASELINE_SCORE, value, namespace, name, metric)
    if base is not None and base.pairwise is not None and base.pairwise.win_rate is not None:
        set_gauge("FineTuneJob", CHAMPION_WIN_RATE, base.pairwise.win_rate, namespace, name)
