"""ModelDeployment reconcile: serve the stable revision, canary every new one, promote or roll back.

Level-based: children are server-side applied from pure builders each time; the rollout's position
(stable, canary, step, failures) lives in the object's status, so a restarted operator picks up where
it was, the paired judge's scores included (recorded per canary test in a ConfigMap it owns).
Rules the rollout keeps (the canary's own are in `canary.py`):
  - no traffic moves to a canary that is not Ready (its weight stays 0 until its replicas are ready);
  - the stable revision is never scaled down before promotion; an old revision is deleted only once
    no traffic is routed to it;
  - a rolled-back revision is not retried until the spec changes.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod, Service
from pydantic import ValidationError

from adapterops.analysis.run import LatencyTests, analyse, output_throughput
from adapterops.api.kinds import FINETUNEJOB, HTTPROUTE, MODELDEPLOYMENT, SERVINGPROFILE
from adapterops.api.modeldeployment import AnalysisStatus, ModelDeploymentSpec, ModelDeploymentStatus, RevisionStatus
from adapterops.deploy import builders, canary
from adapterops.deploy.acceptance import (
    accept,
    finetunejob_status,
    follows_finetunejob,
    follows_profile,
    resolve_adapters,
    resolve_runtime,
)
from adapterops.deploy.inplace import InPlace
from adapterops.deploy.judging import CanaryJudges, comparison
from adapterops.deploy.metrics import record_metrics
from adapterops.deploy.observe import RevisionDeployment, deployment_item, pod_item, service_item
from adapterops.deploy.status import RolloutState, history_entry, refused_status, revision_status, rolled_back
from adapterops.runtime import failures
from adapterops.runtime.acceptance import REFUSED_RETRY_SECONDS, Refusal, announce
from adapterops.runtime.applied import AppliedCache
from adapterops.runtime.client import KindNotServed
from adapterops.runtime.clock import now
from adapterops.runtime.conditions import set_condition
from adapterops.runtime.context import Context, Result
from adapterops.runtime.failures import ChildError, Reported
from adapterops.runtime.informer import requeue_referrers
from adapterops.runtime.metrics import PROMOTIONS, ROLLBACKS, forget
from adapterops.runtime.workqueue import Key

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0  # how often a canary (or a revision not yet ready) is looked at
EVIDENCE_SAVE_SECONDS = 10.0
SELECTOR = {builders.LABEL_MD_UID: None}
Owner = tuple[str, str]  # a ModelDeployment's namespace and UID: what its children are grouped by


def dump(status: ModelDeploymentStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


def describe(spec: ModelDeploymentSpec, adapters: dict[str, str]) -> str:
    r = spec.runtime
    return f"{r.engine} TP{r.tensor_parallel_size} on {r.gpu_type}, adapters {adapters}"


class ModelDeploymentReconciler:
    kind = MODELDEPLOYMENT

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        informers = ctx.informers
        self.deployments = informers.of(MODELDEPLOYMENT)
        self.finetunejobs = informers.of(FINETUNEJOB)
        self.profiles = informers.of(SERVINGPROFILE)
        self.revisions = informers.get("serving-deployments", Deployment, deployment_item, labels=SELECTOR)
        self.pods = informers.get("serving-pods", Pod, pod_item, labels=SELECTOR)
        self.services = informers.get("serving-services", Service, service_item, labels=SELECTOR)
        for informer in (self.deployments, self.revisions, self.pods, self.services):
            informer.subscribe(ctx.queue.add)
        # A FineTuneJob or ServingProfile changed: the ModelDeployments following it may have a new revision.
        self.finetunejobs.subscribe(requeue_referrers(self.deployments, ctx.queue.add, follows_finetunejob))
        self.profiles.subscribe(requeue_referrers(self.deployments, ctx.queue.add, follows_profile))
        # The canary's paired judge, per ModelDeployment; dropped with the canary.
        self.judges = CanaryJudges(ctx.client, ctx.config, ctx.events, self._apply)
        # The relative latency test's evidence, per ModelDeployment (rebuilt from Prometheus after a restart).
        self.latency_tests = LatencyTests(ctx.config.prometheus_scrape_seconds)
        self.applied = AppliedCache()
        self.http = httpx.AsyncClient()
        self.inplace = InPlace(self)

    async def close(self) -> None:
        self.judges.close()
        await self.http.aclose()
        await self.inplace.close()

    def forget(self, key: Key) -> None:
        self.judges.forget(key)
        self.latency_tests.forget(key)
        self.applied.forget(key)
        self.ctx.status.forget(key)
        forget("ModelDeployment", *key)

    # ------------------------------------------------------------------ observing

    # Children are looked up by `owner`, (namespace, UID) of their ModelDeployment: never another namespace's.

    def _revisions(self, owner: Owner) -> dict[str, RevisionDeployment]:
        return {d.revision: d for d in self.revisions.data(owner)}

    def _ready_pod(self, owner: Owner, revision: str) -> str | None:
        pods = sorted(
            (p for p in self.pods.data(owner) if p.revision == revision and p.ready and p.ip), key=lambda p: p.name
        )
        return f"http://{pods[0].ip}:{builders.PORT}" if pods else None

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, key: Key) -> Result:
        body = self.deployments.one(key)
        if body is None:
            self.forget(key)
            return None
        meta = body["metadata"]
        namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
        old = _status(body)
        try:
            spec = accept(name, body.get("spec") or {}, self.ctx.config)
            # Same namespace only: a profile is looked up by this object's namespace, never another's.
            chosen = self.profiles.one((namespace, spec.runtime.from_profile)) if spec.runtime.from_profile else None
            spec, profile = resolve_runtime(spec, chosen, self.ctx.config)
        except Refusal as refusal:
            self.judges.drop(key)
            new = refused_status(old, refusal, generation)
            if await self.ctx.status.write(body, dump(new)):
                await announce(self.ctx.events, body, old.conditions, new.conditions)
            return REFUSED_RETRY_SECONDS
        adapters, waiting = resolve_adapters(spec, finetunejob_status(self.finetunejobs, namespace))
        if profile is not None and not profile[0]:
            adapters, waiting = None, profile[2]  # nothing new is served before the profile has chosen
        desired = builders.revision_of(spec, adapters, self.ctx.config) if adapters is not None else None
        s = RolloutState(name, namespace, old, generation)
        s.conditions = set_condition(s.conditions, "Accepted", True, "Accepted", "spec accepted", generation)
        others = [c for c in s.conditions if c.type != "ProfileResolved"]
        s.conditions = set_condition(s.conditions, "ProfileResolved", *profile, generation) if profile else others
        try:
            stable_service = builders.stable_service(body)
            await self._apply(stable_service, self._exists(_owner(body), "Service", stable_service["metadata"]["name"]))
            base = builders.base_revision_of(spec, adapters, self.ctx.config) if adapters is not None else None
            if (
                base is not None
                and desired is not None
                and builders.in_place(spec)
                and (old.stable is None or old.stable.base == base)
            ):
                assert adapters is not None
                await self.inplace.reconcile(body, spec, s, desired, adapters, base)
            elif old.stable is None:
                await self._first_revision(body, spec, s, desired, adapters, waiting)
            else:
                await self._stable_and_canary(body, spec, s, desired, adapters, waiting)
            new = s.finish(self.ctx.config)
            await self._garbage_collect(body, spec, new)
        except ChildError as exc:
            # Nothing this reconcile decided is recorded: only the refusal, and it is retried with backoff.
            failed = old.model_copy(update={"conditions": failures.record(s.conditions, exc, generation)})
            if await self.ctx.status.write(body, dump(failed)):
                await failures.announce(self.ctx.events, body, old.conditions, failed.conditions)
            raise Reported(str(exc)) from exc
        new.conditions = failures.record(new.conditions, None, generation)
        if await self.ctx.status.write(body, dump(new)):
            # Events announce what this status records: a write refused (computed from a stale version)
            # or deferred is decided again by the next reconcile, and announced then, once.
            await announce(self.ctx.events, body, old.conditions, new.conditions)
            for reason, message, type_ in s.events:
                await self.ctx.events.emit(body, reason, message, type_)
            # Counted the same way: `canary.promote` and `canary.rollback` post these, once recorded.
            reasons = {reason for reason, _, _ in s.events}
            if "Promoted" in reasons:
                PROMOTIONS.labels(namespace, name).inc()
            if "RolledBack" in reasons:
                ROLLBACKS.labels(namespace, name).inc()
        record_metrics(namespace, name, spec, new)
        if new.canary is not None or s.loading:  # the analysis (or in-place loads) need looks in time
            return POLL_SECONDS
        return self.ctx.config.reconcile_seconds

    async def ensure_revision(
        self, body: dict[str, Any], spec: ModelDeploymentSpec, revision: str, adapters: dict[str, str], replicas: int
    ) -> None:
        config = self.ctx.config
        owner = _owner(body)
        for manifest in (
            builders.revision_deployment(body, spec, adapters, revision, replicas, config),
            builders.revision_service(body, revision),
        ):
            await self._apply(manifest, self._exists(owner, manifest["kind"], manifest["metadata"]["name"]))

    async def _apply(self, manifest: dict[str, Any], exists: bool = False) -> None:
        """Server-side apply; skipped when this exact manifest was applied recently and the child still exists."""
        meta = manifest["metadata"]
        owner = (meta["namespace"], meta["ownerReferences"][0]["name"])
        if exists and self.applied.unchanged(owner, manifest):
            return
        with failures.manifest_writing("apply", manifest):
            await self.ctx.client.apply(manifest)
        self.applied.remember(owner, manifest)

    def _exists(self, owner: Owner, kind: str, name: str) -> bool:
        if kind == "Deployment":
            return any(d.name == name for d in self.revisions.data(owner))
        return name in self.services.data(owner)

    async def _first_revision(
        self,
        body: dict[str, Any],
        spec: ModelDeploymentSpec,
        s: RolloutState,
        desired: str | None,
        adapters: dict[str, str] | None,
        waiting: str,
    ) -> None:
        if desired is None or adapters is None:
            reason = "WaitingForProfile" if waiting.startswith("spec.runtime.fromProfile") else "WaitingForAdapters"
            s.conditions = set_condition(s.conditions, "Ready", False, reason, waiting, s.generation)
            s.progress(reason, waiting)
            return
        replicas = spec.runtime.replicas
        await self.ensure_revision(body, spec, desired, adapters, replicas)
        found = self._revisions(_owner(body)).get(desired)
        ready = found.ready_replicas if found else 0
        s.stable = revision_status(spec, desired, adapters, replicas, ready, 100, self.ctx.config)
        s.record(history_entry(desired, adapters, "Initial", "first revision"))
        s.event("RevisionCreated", f"serving revision {desired} ({describe(spec, adapters)})")
        await self._route(body, spec, s, desired, None, 0)

    async def _stable_and_canary(
        self,
        body: dict[str, Any],
        spec: ModelDeploymentSpec,
        s: RolloutState,
        desired: str | None,
        adapters: dict[str, str] | None,
        waiting: str,
    ) -> None:
        key = (s.namespace, s.name)
        assert s.old.stable is not None
        stable = s.old.stable.model_copy(update={"weight": 100})  # all traffic, unless a canary takes its share
        replicas = spec.runtime.replicas
        revisions = self._revisions(_owner(body))
        skey = key_of(stable)  # the stable Deployment's revision label (InPlace: its base)
        if desired == stable.revision:
            await self.ensure_revision(body, spec, skey, stable.adapters, replicas)
        else:
            # The spec now describes another revision: the stable Deployment keeps the pods it has, only
            # its replica count follows spec.runtime.replicas.
            await self._scale(s, skey, replicas, revisions)
        if stable.base is not None:  # InPlace pods (a base change is a revision canary): they serve stable's
            await self.inplace.annotate_all(_owner(body), skey, stable.adapters)
        found = revisions.get(skey)
        stable.replicas, stable.ready_replicas = replicas, found.ready_replicas if found else 0
        s.stable = stable
        old_canary = s.old.canary
        if desired is None or desired == stable.revision:
            if old_canary is not None:
                self.judges.drop(key)
                why = waiting if desired is None else "the spec serves the stable revision again"
                s.record(history_entry(old_canary.revision, old_canary.adapters, "Superseded", why))
                s.event("CanarySuperseded", f"canary {old_canary.revision} removed: {why}")
            if desired is None:
                reason = "WaitingForProfile" if waiting.startswith("spec.runtime.fromProfile") else "WaitingForAdapters"
                s.progress(reason, f"{waiting}; revision {stable.revision} keeps serving")
            await self._route(body, spec, s, stable.revision, None, 0)
            return
        assert adapters is not None
        rollback = rolled_back(s.history, desired)
        if rollback is not None:
            self.judges.drop(key)
            s.rolled_back = rollback
            await self._route(body, spec, s, stable.revision, None, 0)
            return
        if old_canary is not None and old_canary.revision != desired:
            self.judges.drop(key)
            why = f"replaced by revision {desired}"
            s.record(history_entry(old_canary.revision, old_canary.adapters, "Superseded", why))
            s.event("CanarySuperseded", f"canary {old_canary.revision} superseded by {desired}")
            old_canary = None
        await self._run_canary(body, spec, s, desired, adapters, old_canary)

    async def _run_canary(
        self,
        body: dict[str, Any],
        spec: ModelDeploymentSpec,
        s: RolloutState,
        desired: str,
        adapters: dict[str, str],
        old_canary: RevisionStatus | None,
    ) -> None:
        assert s.stable is not None
        c, key, owner = spec.canary, (s.namespace, s.name), _owner(body)
        if old_canary is not None and s.old.analysis is not None:
            analysis = s.old.analysis.model_copy(deep=True)
        else:
            analysis = canary.begin(s, spec, desired, describe(spec, adapters))
        target = c.steps[analysis.step]
        replicas = builders.split_replicas(spec.runtime.replicas, target, c.traffic.mode)
        base = builders.base_revision_of(spec, adapters, self.ctx.config) if builders.in_place(spec) else None
        dkey = base or desired
        await self.ensure_revision(body, spec, dkey, adapters, replicas)
        if base is not None:
            await self.inplace.annotate_all(owner, base, adapters)
        found = self._revisions(owner).get(dkey)
        ready = found.ready_replicas if found else 0
        canary_ready = ready >= replicas
        route_weight = target if canary_ready else 0
        await self._route(body, spec, s, s.stable.revision, desired, route_weight)
        weight = builders.effective_weight(
            s.stable.ready_replicas, ready if canary_ready else 0, route_weight, c.traffic.mode
        )
        s.canary = revision_status(spec, desired, adapters, replicas, ready, weight, self.ctx.config)
        s.canary.base = base
        s.stable.weight = 100 - weight
        s.analysis = analysis
        action = canary.action_of(body["metadata"].get("annotations") or {}, desired)
        if action == "abort":  # at any time, ready or not: getting rid of a canary is always safe
            canary.rollback(s, desired, adapters, "aborted by the adapterops.io/abort annotation")
            self.judges.drop(key)
            return
        if not c.paused:
            if canary.check_progress(s, spec, analysis, adapters) == "rolled-back":
                self.judges.drop(key)
                return
            if analysis.stuck:
                return
        if not canary_ready:
            s.progress(
                "CanaryNotReady", f"canary {desired}: {ready}/{replicas} replicas ready; no traffic until it is Ready"
            )
            return
        await self.analyse_step(body, spec, s, analysis, adapters, weight, action)

    async def analyse_step(
        self,
        body: dict[str, Any],
        spec: ModelDeploymentSpec,
        s: RolloutState,
        analysis: AnalysisStatus,
        adapters: dict[str, str],
        weight: int,
        action: str | None,
        urls: tuple[str | None, str | None] | None = None,
    ) -> None:
        """A Ready canary at its step's weight: promote on the annotation, hold while paused, else this look's
        verdicts decide (the judge asks one pod of each side: `urls`, by default one of each revision)."""
        assert s.stable is not None and s.canary is not None
        c, key, owner, desired = spec.canary, (s.namespace, s.name), _owner(body), s.canary.revision
        canary.enter_step(s, spec, analysis, weight)
        if action == "promote":  # only a Ready canary: promotion moves every request to it
            canary.promote(s, desired, adapters, [], by="the adapterops.io/promote annotation")
            self.judges.drop(key)
            return
        if c.paused:
            canary.pause(s, spec, analysis, weight)
            return

        test = f"{desired}@{analysis.started_at.isoformat() if analysis.started_at else ''}"
        if urls is None:
            urls = (self._ready_pod(owner, key_of(s.stable)), self._ready_pod(owner, key_of(s.canary)))
        judge = await self.judges.judge(body, spec, test, *urls, comparison(spec, s.stable.adapters, adapters))
        verdicts = await analyse(
            self.http,
            spec,
            self.ctx.config.prometheus_url,
            s.namespace,
            s.stable,
            s.canary,
            canary.window_seconds(analysis),
            judge,
            self.latency_tests.of(key, test, analysis.started_at),
            now().timestamp(),
        )
        step = canary.step_seconds(analysis)
        s.throughput = await output_throughput(self.http, spec, self.ctx.config.prometheus_url, s, step)
        outcome = canary.judge(s, spec, analysis, verdicts, adapters, weight)
        if outcome in ("promoted", "rolled-back", "step-failed"):
            self.judges.drop(key)
        elif judge is not None:
            await self.judges.save(body, key, judge)

    # ------------------------------------------------------------------ traffic and cleanup

    async def _route(
        self,
        body: dict[str, Any],
        spec: ModelDeploymentSpec,
        s: RolloutState,
        stable: str,
        canary_revision: str | None,
        weight: int,
    ) -> None:
        """With Gateway API traffic: the HTTPRoute's backendRefs carry the split (updated only when it changes)."""
        ref = spec.canary.traffic.http_route_ref
        if spec.canary.traffic.mode != "httpRoute" or ref is None:
            return
        route = await self._get_route(s, ref.name)
        if route is None:
            return
        backends = builders.route_backends(s.name, stable, canary_revision, weight)
        rules = route["spec"].get("rules") or [{}]
        if all(r.get("backendRefs") == backends for r in rules):
            return
        route["spec"]["rules"] = [{**r, "backendRefs": backends} for r in rules]
        with failures.manifest_writing("update", route):
            await self.ctx.client.replace(route)

    async def _get_route(self, s: RolloutState, name: str) -> dict[str, Any] | None:
        try:
            route = await self.ctx.client.get(HTTPROUTE.resource, s.namespace, name)
        except KindNotServed:
            s.progress(
                "HTTPRouteNotFound",
                f"spec.canary.traffic.httpRouteRef: Gateway API ({HTTPROUTE.group}) is not installed",
            )
            return None
        if route is None:
            s.progress("HTTPRouteNotFound", f"spec.canary.traffic.httpRouteRef: HTTPRoute {name!r} not found")
        return route

    async def _garbage_collect(
        self, body: dict[str, Any], spec: ModelDeploymentSpec, status: ModelDeploymentStatus
    ) -> None:
        """Delete the children this object owns but no longer needs (revisions no longer stable or canary,
        and any child whose name this version of the operator would not give it, e.g. from before an
        upgrade), once no route sends them traffic. Matched by the owner's namespace and UID, named as observed."""
        meta = body["metadata"]
        namespace, owner = meta["namespace"], _owner(body)
        keep = {builders.revision_name(meta["name"], key_of(r)) for r in (status.stable, status.canary) if r}
        stale_deployments = [d.name for d in self.revisions.data(owner) if d.name not in keep]
        stale_services = [
            n for n in self.services.data(owner) if n not in keep | {builders.stable_service_name(meta["name"])}
        ]
        if not stale_deployments and not stale_services:
            return
        routed: set[str] = set()
        ref = spec.canary.traffic.http_route_ref
        if spec.canary.traffic.mode == "httpRoute" and ref is not None:
            try:
                route = await self.ctx.client.get(HTTPROUTE.resource, namespace, ref.name)
            except KindNotServed:
                route = None
            routed = {
                b["name"] for r in (route or {}).get("spec", {}).get("rules", []) for b in r.get("backendRefs", [])
            }
        for kind, res, names in (("Deployment", Deployment, stale_deployments), ("Service", Service, stale_services)):
            for name in names:
                if name in routed:
                    continue
                with failures.writing("delete", kind, name):
                    await self.ctx.client.delete(res, namespace, name)

    async def _scale(
        self, s: RolloutState, revision: str, replicas: int, revisions: dict[str, RevisionDeployment]
    ) -> None:
        current = revisions.get(revision)
        if current is not None and current.replicas != replicas:
            with failures.writing("update", "Deployment", current.name):
                patch = {"spec": {"replicas": replicas}}
                await self.ctx.client.patch_merge(Deployment, s.namespace, current.name, patch)


def key_of(revision: RevisionStatus) -> str:
    """The revision label of a revision's Deployment and pods: InPlace ones are named after their base."""
    return revision.base or revision.revision


def _owner(body: dict[str, Any]) -> Owner:
    return body["metadata"]["namespace"], body["metadata"]["uid"]


def _status(body: dict[str, Any]) -> ModelDeploymentStatus:
    try:
        return ModelDeploymentStatus.model_validate(body.get("status") or {})
    except ValidationError as exc:  # written by another version: start over rather than stop
        log.warning("%s: unreadable status, recomputing it: %s", body["metadata"]["name"], exc)
        return ModelDeploymentStatus()
