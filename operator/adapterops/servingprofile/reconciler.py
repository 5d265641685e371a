"""ServingProfile reconcile: deploy each candidate briefly, drive load at it, measure it from the engine's
series, delete it, and choose the cheapest candidate that meets the SLO.

Level-based: a candidate's state is read from its children (Deployment, load Job, their pods) and from
the results already in status; nothing else is remembered. At most `spec.parallelism` candidates have
children at a time. A candidate's children are deleted only once the status the operator reads back
records its result (a write deferred or refused leaves them, and the next reconcile measures again),
so a result is never lost with its evidence. Children are matched by namespace and owner UID.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod
from pydantic import ValidationError

from adapterops.analysis.providers.prometheus import PrometheusError
from adapterops.api.kinds import FINETUNEJOB, SERVINGPROFILE
from adapterops.api.servingprofile import CandidateResult, ServingProfileSpec, ServingProfileStatus, Window
from adapterops.deploy.acceptance import finetunejob_status, follows_finetunejob, resolve_adapters
from adapterops.deploy.builders import PORT
from adapterops.deploy.engine import image_of, version_of
from adapterops.runtime import failures
from adapterops.runtime.acceptance import REFUSED_RETRY_SECONDS, Refusal, announce
from adapterops.runtime.clock import now
from adapterops.runtime.conditions import set_condition
from adapterops.runtime.context import Context, Result
from adapterops.runtime.failures import ChildError, Reported
from adapterops.runtime.informer import requeue_referrers
from adapterops.runtime.workqueue import Key
from adapterops.servingprofile import builders
from adapterops.servingprofile.acceptance import accept
from adapterops.servingprofile.choice import cost_per_hour, measured
from adapterops.servingprofile.measure import NotMeasured, measure
from adapterops.servingprofile.metrics import forget_profile, record_metrics
from adapterops.servingprofile.observe import deployment_item, job_item, parse_report, pod_item
from adapterops.servingprofile.status import DONE, profile_status, transitions

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
SELECTOR = {builders.LABEL_PROFILE_UID: None}
Owner = tuple[str, str]


def dump(status: ServingProfileStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


class ServingProfileReconciler:
    kind = SERVINGPROFILE

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        informers = ctx.informers
        self.profiles = informers.of(SERVINGPROFILE)
        self.finetunejobs = informers.of(FINETUNEJOB)
        self.deployments = informers.get("profile-deployments", Deployment, deployment_item, labels=SELECTOR)
        self.pods = informers.get("profile-pods", Pod, pod_item, labels=SELECTOR)
        self.jobs = informers.get("profile-jobs", Job, job_item, labels=SELECTOR)
        for informer in (self.profiles, self.deployments, self.pods, self.jobs):
            informer.subscribe(ctx.queue.add)
        self.finetunejobs.subscribe(requeue_referrers(self.profiles, ctx.queue.add, follows_finetunejob))
        self.http = httpx.AsyncClient()

    async def close(self) -> None:
        await self.http.aclose()

    def forget(self, key: Key) -> None:
        self.ctx.status.forget(key)
        forget_profile(*key)

    async def reconcile(self, key: Key) -> Result:
        body = self.profiles.one(key)
        if body is None:
            self.forget(key)
            return None
        meta = body["metadata"]
        namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
        old = _status(body)
        try:
            spec = accept(name, body.get("spec") or {}, self.ctx.config)
        except Refusal as refusal:
            conditions = set_condition(old.conditions, "Accepted", False, refusal.reason, refusal.message, generation)
            new = old.model_copy(update={"conditions": conditions, "observed_generation": generation})
            if await self.ctx.status.write(body, dump(new)):
                await announce(self.ctx.events, body, old.conditions, new.conditions)
            return REFUSED_RETRY_SECONDS
        served = builders.candidate_spec(spec, spec.candidates[0])
        adapters, waiting = resolve_adapters(served, finetunejob_status(self.finetunejobs, namespace))
        again: float = self.ctx.config.reconcile_seconds
        try:
            if adapters is None:
                pending = [self._row(body, spec, i, {}) for i in range(len(spec.candidates))]
                new = profile_status(old, spec, pending, generation, waiting)
            else:
                rows, again = await self._candidates(body, spec, old, adapters)
                new = profile_status(old, spec, rows, generation)
            await self._clean_up(body, old, new)
        except ChildError as exc:
            failed = old.model_copy(update={"conditions": failures.record(old.conditions, exc, generation)})
            if await self.ctx.status.write(body, dump(failed)):
                await failures.announce(self.ctx.events, body, old.conditions, failed.conditions)
            raise Reported(str(exc)) from exc
        new.conditions = failures.record(new.conditions, None, generation)
        if await self.ctx.status.write(body, dump(new)):
            await announce(self.ctx.events, body, old.conditions, new.conditions)
            for reason, message, type_ in transitions(old, new):
                await self.ctx.events.emit(body, reason, message, type_)
        record_metrics(namespace, name, new)
        return again

    def _row(self, body: dict[str, Any], spec: ServingProfileSpec, i: int, adapters: dict[str, str]) -> CandidateResult:
        c = spec.candidates[i]
        config = self.ctx.config
        served = builders.candidate_spec(spec, c)
        return CandidateResult(
            name=builders.candidate_name(c),
            engine=c.engine,
            tensor_parallel_size=c.tensor_parallel_size,
            gpu_type=c.gpu_type,
            image=image_of(served, config),
            revision=builders.candidate_revision(body["metadata"]["uid"], spec, c, adapters, config),
            state="Pending",
            cost_per_hour=cost_per_hour(config.gpu_classes[c.gpu_type].price_per_hour, c.tensor_parallel_size),
        )

    async def _candidates(
        self, body: dict[str, Any], spec: ServingProfileSpec, old: ServingProfileStatus, adapters: dict[str, str]
    ) -> tuple[list[CandidateResult], float]:
        """Each candidate's row, advancing those under way; and when to look again."""
        meta = body["metadata"]
        owner: Owner = (meta["namespace"], meta["uid"])
        results = {r.revision: r for r in old.candidates if r.state in DONE}
        deployments = {d.revision: d for d in self.deployments.data(owner)}
        jobs = {j.revision: j for j in self.jobs.data(owner)}
        pods = self.pods.data(owner)
        rows: list[CandidateResult] = []
        again = self.ctx.config.reconcile_seconds
        active = 0
        for i, c in enumerate(spec.candidates):
            row = self._row(body, spec, i, adapters)
            if row.revision in results:
                rows.append(results[row.revision])
                if row.revision in deployments or row.revision in jobs:
                    # Measured, its children being deleted: they hold their GPUs until gone, so they still count.
                    active += 1
                    again = min(again, POLL_SECONDS)
                continue
            job, deployment = jobs.get(row.revision), deployments.get(row.revision)
            if job is not None:
                active += 1
                row, wait = await self._loaded(spec, row, job, pods, meta["namespace"])
                again = min(again, wait)
            elif deployment is not None:
                active += 1
                ready = next(
                    (p for p in pods if p.revision == row.revision and p.component == "serving" and p.ready and p.ip),
                    None,
                )
                if ready is not None:
                    target = f"http://{ready.ip}:{PORT}"
                    job_manifest = builders.load_job(body, spec, c, row.revision, target, self.ctx.config)
                    with failures.manifest_writing("create", job_manifest):
                        await self.ctx.client.create(job_manifest)
                    row = row.model_copy(update={"state": "Loading"})
                elif (
                    deployment.created
                    and now().timestamp() - deployment.created.timestamp() > spec.candidate_timeout_seconds
                ):
                    why = f"failed: not Ready within candidateTimeoutSeconds ({spec.candidate_timeout_seconds}s)"
                    row = row.model_copy(update={"state": "Failed", "reason": why})
                else:
                    row = row.model_copy(update={"state": "Deploying"})
                again = min(again, POLL_SECONDS)
            rows.append(row)
        # Start what the parallelism allows, in the listed order.
        for i, row in enumerate(rows):
            if active >= spec.parallelism:
                break
            if row.state != "Pending":
                continue
            manifest = builders.candidate_deployment(
                body, spec, spec.candidates[i], adapters, row.revision, self.ctx.config
            )
            with failures.manifest_writing("apply", manifest):
                await self.ctx.client.apply(manifest)
            rows[i] = row.model_copy(update={"state": "Deploying"})
            active += 1
            again = min(again, POLL_SECONDS)
        return rows, again

    async def _loaded(
        self, spec: ServingProfileSpec, row: CandidateResult, job: Any, pods: list[Any], namespace: str
    ) -> tuple[CandidateResult, float]:
        """A candidate whose load Job exists: still loading, waiting for the last scrapes, measured, or failed."""
        if job.failed:
            return row.model_copy(
                update={"state": "Failed", "reason": f"failed: the load Job failed ({job.message})"}
            ), POLL_SECONDS
        if not job.complete:
            return row.model_copy(update={"state": "Loading"}), POLL_SECONDS
        load_pod = next((p for p in pods if p.revision == row.revision and p.component == "profile-load"), None)
        report = parse_report(load_pod.report if load_pod else None)
        if isinstance(report, str):
            return row.model_copy(update={"state": "Failed", "reason": f"failed: {report}"}), POLL_SECONDS
        window = Window.model_validate({"start": _iso(report.start), "end": _iso(report.end)})
        row = row.model_copy(update={"window": window})
        # The engine's last requests of the window reach Prometheus with the next scrapes.
        settle = report.end + 2 * self.ctx.config.prometheus_scrape_seconds + 1.0 - now().timestamp()
        if settle > 0:
            return row.model_copy(update={"state": "Measuring"}), settle
        line = version_of(builders.candidate_spec(spec, _candidate_of(spec, row)), self.ctx.config).line
        try:
            m = await measure(
                self.http,
                self.ctx.config.prometheus_url,
                line,
                namespace,
                row.revision,
                report.start,
                report.end,
                spec.slo.latency.quantile,
            )
        except PrometheusError as exc:  # held: Prometheus may come back; the children stay until measured
            return row.model_copy(update={"state": "Measuring", "reason": f"waiting for Prometheus: {exc}"}), 10.0
        except NotMeasured as exc:
            return row.model_copy(update={"state": "Failed", "reason": f"failed: {exc}"}), POLL_SECONDS
        return measured(row, m, spec), POLL_SECONDS

    async def _clean_up(self, body: dict[str, Any], old: ServingProfileStatus, new: ServingProfileStatus) -> None:
        """Delete children of candidates whose result the stored status holds, and of revisions no longer
        listed (a changed spec)."""
        meta = body["metadata"]
        owner: Owner = (meta["namespace"], meta["uid"])
        recorded = {r.revision for r in old.candidates if r.state in DONE}
        listed = {r.revision for r in new.candidates}
        for res, kind, children in (
            (Job, "Job", self.jobs.data(owner)),
            (Deployment, "Deployment", self.deployments.data(owner)),
        ):
            for child in children:
                # A result reached in this reconcile is not stored yet: its children go at the next look.
                if child.revision in recorded or child.revision not in listed:
                    with failures.writing("delete", kind, child.name):
                        await self.ctx.client.delete(res, meta["namespace"], child.name)


def _candidate_of(spec: ServingProfileSpec, row: CandidateResult) -> Any:
    return next(
        c
        for c in spec.candidates
        if builders.candidate_name(c) == row.name and (c.image is None or c.image == row.image)
    )


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _status(body: dict[str, Any]) -> ServingProfileStatus:
    try:
        return ServingProfileStatus.model_validate(body.get("status") or {})
    except ValidationError as exc:
        log.warning("%s: unreadable status, recomputing it: %s", body["metadata"]["name"], exc)
        return ServingProfileStatus()
