"""The in-place adapter canary (`canary.adapterRollout: InPlace`): when only adapter URIs change, the
pods of the one base revision load the new adapters at run time, the canary being c of its R replicas.

The operator says what each pod should serve with the pod's `adapterops.io/adapters` annotation; the
pod's adapter agent (adapterops_common.agent) loads it through vLLM's API and reports, from the engine's
own /v1/models, what is loaded (GET :8001/status). The replica ratio is the traffic split behind the one
Service; the canary's metrics are read from its pods (`RevisionStatus.pods`).

Rules:
  - the canary's pods are chosen once and kept (those already asked for the canary's adapters first,
    then Ready pods by name), so a look never moves the canary to other pods;
  - the in-place canary's steps are those below 100: passing the last of them promotes, which asks every
    pod for the new adapters (the 100% step, without a stable reference left to compare with);
  - rollback, supersession and a spec back at the stable adapters ask every pod for the stable ones;
  - a pod is counted for a side only when its agent reports that side's adapters loaded and it is Ready.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from lightkube.resources.core_v1 import Pod

from adapterops.api.modeldeployment import AnalysisStatus, ModelDeploymentSpec, ReplicaStatus, RevisionStatus
from adapterops.deploy import builders, canary
from adapterops.deploy.observe import ServingPod
from adapterops.deploy.status import RolloutState, history_entry, revision_status, rolled_back
from adapterops.runtime import failures
from adapterops.runtime.clock import now
from adapterops.runtime.conditions import set_condition
from adapterops_common.agent import AGENT_PORT, version_of_uri, wanted_annotation

if TYPE_CHECKING:
    from adapterops.deploy.reconciler import ModelDeploymentReconciler

PROBE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class AgentReport:
    loaded: dict[str, str]  # served name -> version, as the engine lists them
    error: str = ""  # the agent's last error, or why it could not be asked


class AgentProbe:
    """GET /status of a pod's adapter agent (read only: what a pod loads is set by its annotation)."""

    def __init__(self) -> None:
        self.http = httpx.AsyncClient()

    async def __call__(self, ip: str) -> AgentReport:
        try:
            response = await self.http.get(f"http://{ip}:{AGENT_PORT}/status", timeout=PROBE_TIMEOUT_SECONDS)
            response.raise_for_status()
            body = response.json()
            loaded = {str(k): str(v) for k, v in (body.get("loaded") or {}).items()}
            return AgentReport(loaded, str(body.get("error") or "")[:500])
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            return AgentReport({}, f"adapter agent not reachable: {type(exc).__name__}")

    async def close(self) -> None:
        await self.http.aclose()


def versions(adapters: dict[str, str]) -> dict[str, str]:
    return {name: version_of_uri(uri) for name, uri in adapters.items()}


def canary_count(replicas: int, weight: int) -> int:
    """c of R replicas for a step below 100: at least one, and at least one left on stable."""
    return min(replicas - 1, max(1, math.ceil(replicas * weight / 100)))


def steps_below_100(spec: ModelDeploymentSpec) -> ModelDeploymentSpec:
    """The spec the canary's decisions see: its last step is the last one below 100 (passing it promotes)."""
    steps = [w for w in spec.canary.steps if w < 100]
    return spec.model_copy(update={"canary": spec.canary.model_copy(update={"steps": steps})})


def choose_canary_pods(pods: list[ServingPod], canary_annotation: str, count: int) -> list[str]:
    """Pods already asked for the canary first (a look never moves the canary), then Ready ones by name."""
    ranked = sorted(pods, key=lambda p: (p.annotation != canary_annotation, not p.ready, p.name))
    return sorted(p.name for p in ranked[:count])


class InPlace:
    def __init__(self, reconciler: ModelDeploymentReconciler) -> None:
        self.r = reconciler
        self.probe = AgentProbe()

    async def close(self) -> None:
        await self.probe.close()

    def pods(self, owner: tuple[str, str], base: str) -> list[ServingPod]:
        return sorted((p for p in self.r.pods.data(owner) if p.revision == base), key=lambda p: p.name)

    async def annotate(self, namespace: str, pods: list[ServingPod], wanted: dict[str, dict[str, str]]) -> None:
        """Ask each pod for its adapters (a merge patch of its annotation, only where it differs)."""
        for pod in pods:
            value = wanted_annotation(wanted[pod.name])
            if pod.annotation == value:
                continue
            with failures.writing("patch", "Pod", pod.name):
                patch = {"metadata": {"annotations": {builders.ANNOTATION_ADAPTERS: value}}}
                await self.r.ctx.client.patch_merge(Pod, namespace, pod.name, patch)

    async def annotate_all(self, owner: tuple[str, str], key: str, adapters: dict[str, str]) -> None:
        """Every pod of one Deployment serves one adapter set (a revision canary of InPlace pods)."""
        pods = self.pods(owner, key)
        await self.annotate(owner[0], pods, {p.name: adapters for p in pods})

    async def reconcile(
        self,
        body: dict[str, Any],
        spec: ModelDeploymentSpec,
        s: RolloutState,
        desired: str,
        adapters: dict[str, str],
        base: str,
    ) -> None:
        r, config = self.r, self.r.ctx.config
        owner = (body["metadata"]["namespace"], body["metadata"]["uid"])
        replicas = spec.runtime.replicas
        await r.ensure_revision(body, spec, base, adapters, replicas)
        if s.old.stable is None:
            s.stable = revision_status(spec, desired, adapters, replicas, 0, 100, config)
            s.record(history_entry(desired, adapters, "Initial", "first revision"))
            s.event("RevisionCreated", f"serving revision {desired} in place (base {base}), adapters {adapters}")
        else:
            s.stable = s.old.stable.model_copy(update={"weight": 100, "pods": []})
        s.stable.base = base
        stable = s.stable
        pods = self.pods(owner, base)
        probed = [p for p in pods if p.ip]  # asked together: one unreachable agent costs its timeout once
        answers = await asyncio.gather(*(self.probe(p.ip) for p in probed if p.ip))
        reports = {p.name: answer for p, answer in zip(probed, answers, strict=True)}

        target, analysis, key = None, None, (s.namespace, s.name)
        old_canary = s.old.canary if s.old.canary is not None and s.old.canary.base == base else None
        if desired != stable.revision and rolled_back(s.history, desired) is not None:
            s.rolled_back = rolled_back(s.history, desired)
            desired, adapters = stable.revision, stable.adapters  # not retried until the spec changes
        if old_canary is not None and old_canary.revision != desired:
            r.judges.drop(key)
            why = (
                "the spec serves the stable revision again" if desired == stable.revision else f"replaced by {desired}"
            )
            s.record(history_entry(old_canary.revision, old_canary.adapters, "Superseded", why))
            s.event("CanarySuperseded", f"canary {old_canary.revision} superseded: {why}")
            old_canary = None
        if desired != stable.revision:
            staged = steps_below_100(spec)
            if old_canary is not None and s.old.analysis is not None:
                analysis = s.old.analysis.model_copy(deep=True)
            else:
                analysis = canary.begin(s, spec, desired, f"adapters {adapters}, in place on {base}")
            target = canary_count(replicas, staged.canary.steps[min(analysis.step, len(staged.canary.steps) - 1)])
        chosen = choose_canary_pods(pods, wanted_annotation(adapters), target) if target else []
        # A rolled-back canary's pods are moved back at once (after an operator restart, too).
        await self._ask(s.namespace, pods, chosen, stable.adapters, adapters, reports, s.rolled_back is None)
        serving = self._replicas(s, pods, reports, chosen, stable, desired, adapters)
        if analysis is None:
            stable.replicas, stable.ready_replicas = replicas, len(serving[0])
            return
        assert target is not None
        s.canary = revision_status(spec, desired, adapters, target, len(serving[1]), 0, config)
        s.canary.base, s.canary.pods = base, serving[1]
        s.analysis = analysis
        counts = (len(serving[0]), len(serving[1]))
        await self._canary(body, spec, s, analysis, adapters, counts, target, pods, reports)

    async def _ask(
        self,
        namespace: str,
        pods: list[ServingPod],
        chosen: list[str],
        stable: dict[str, str],
        new: dict[str, str],
        reports: dict[str, AgentReport],
        budgeted: bool = True,
    ) -> None:
        """The canary's pods are asked at once (a few, by design), and so are the canary's pods on a rollback
        (they serve what failed); otherwise a serving pod is moved to the stable adapters (a promotion) only
        while fewer than a quarter of the pods (at least one) are between two adapter sets: each swap takes a
        pod out of the Service for the agent's drain and the load."""
        wanted = {p.name: new if p.name in chosen else stable for p in pods}
        moving = sum(1 for p in pods if self._moving(p, reports))
        budget = max(1, len(pods) // 4) - moving if budgeted else len(pods)
        asked: dict[str, dict[str, str]] = {}
        for pod in pods:
            value = wanted_annotation(wanted[pod.name])
            if pod.annotation == value:
                continue
            serving = pod.annotation is not None and bool(reports.get(pod.name, AgentReport({})).loaded)
            if serving and pod.name not in chosen:
                if budget <= 0:
                    continue  # asked at a later look, once one of the moving pods has its adapters
                budget -= 1
            asked[pod.name] = wanted[pod.name]
        await self.annotate(namespace, [p for p in pods if p.name in asked], asked)

    @staticmethod
    def _moving(pod: ServingPod, reports: dict[str, AgentReport]) -> bool:
        """Asked for adapters it does not serve yet (and serving others: a fresh pod is not taken out)."""
        if pod.annotation is None:
            return False
        report = reports.get(pod.name, AgentReport({}))
        return bool(report.loaded) and report.loaded != versions(json.loads(pod.annotation))

    def _replicas(
        self,
        s: RolloutState,
        pods: list[ServingPod],
        reports: dict[str, AgentReport],
        chosen: list[str],
        stable: RevisionStatus,
        desired: str,
        adapters: dict[str, str],
    ) -> tuple[list[str], list[str]]:
        """status.replicas and an AdaptersLoaded condition (+ a Warning Event for each new agent error).
        Returns the (stable, canary) pods that are Ready with their side's adapters loaded."""
        sides = {stable.revision: versions(stable.adapters), desired: versions(adapters)}
        before = {p.pod: p.message for p in s.old.replicas}
        out: list[ReplicaStatus] = []
        ready_by: dict[str, list[str]] = {stable.revision: [], desired: []}
        for pod in pods:
            report = reports.get(pod.name, AgentReport({}, "no pod IP yet"))
            serving = next((rev for rev, v in sides.items() if v == report.loaded), "")
            wanted = desired if pod.name in chosen else stable.revision
            ready = pod.ready and serving == wanted
            if ready:
                ready_by[wanted].append(pod.name)
            out.append(ReplicaStatus(pod=pod.name, revision=serving, wanted=wanted, loaded=report.loaded, ready=ready))
            out[-1].message = report.error
            if report.error and report.error != before.get(pod.name) and pod.ip:
                s.event("AdapterLoadFailed", f"pod {pod.name}: {report.error}", "Warning")
        s.replicas = out
        failing = [f"{p.pod}: {p.message}" for p in out if p.message]
        loading = [p.pod for p in out if not p.ready]
        if failing:
            condition = (False, "AdapterLoadFailed", "; ".join(failing)[:1000])
        elif loading:
            condition = (False, "Loading", f"loading adapters on {', '.join(loading)}")
        else:
            condition = (True, "Loaded", f"every pod serves the adapters asked of it ({len(out)} pods)")
        s.loading = bool(loading)
        s.conditions = set_condition(s.conditions, "AdaptersLoaded", *condition, s.generation)
        canary_pods = ready_by[desired] if desired != stable.revision else []
        stable.pods = ready_by[stable.revision] if canary_pods else []
        return ready_by[stable.revision], canary_pods

    async def _canary(
        self,
        body: dict[str, Any],
        spec: ModelDeploymentSpec,
        s: RolloutState,
        analysis: AnalysisStatus,
        adapters: dict[str, str],
        counts: tuple[int, int],
        target: int,
        pods: list[ServingPod],
        reports: dict[str, AgentReport],
    ) -> None:
        assert s.stable is not None and s.canary is not None
        r, key, desired = self.r, (s.namespace, s.name), s.canary.revision
        staged = steps_below_100(spec)
        canary_ready = counts[1] >= target
        weight = round(100 * counts[1] / (counts[0] + counts[1])) if canary_ready and any(counts) else 0
        s.canary.weight, s.stable.weight = weight, 100 - weight
        s.stable.replicas, s.stable.ready_replicas = spec.runtime.replicas - target, counts[0]
        action = canary.action_of(body["metadata"].get("annotations") or {}, desired)
        if action == "abort":
            canary.rollback(s, desired, adapters, "aborted by the adapterops.io/abort annotation")
        elif not spec.canary.paused and canary.check_progress(s, staged, analysis, adapters) == "rolled-back":
            pass
        elif analysis.stuck:
            return
        elif not canary_ready:
            s.progress(
                "CanaryNotReady",
                f"canary {desired}: {counts[1]}/{target} pods have its adapters loaded; no traffic until they have",
            )
            return
        else:
            if analysis.step_started_at is None:
                # Each step is its own test, from when its pods serve the canary's adapters: a pod's counters
                # before that are stable's, and the next step's canary is other pods.
                analysis.started_at = now()
            urls = (self._url(pods, s.stable.pods), self._url(pods, s.canary.pods))
            await r.analyse_step(body, staged, s, analysis, adapters, weight, action, urls)
        if s.canary is None:  # promoted or rolled back: every pod is asked for the stable adapters now
            r.judges.drop(key)
            assert s.stable is not None
            s.stable.replicas, s.stable.pods = spec.runtime.replicas, []
            s.stable.ready_replicas = counts[0] if s.rolled_back is not None else counts[1]
            s.loading = s.loading or s.stable.ready_replicas < s.stable.replicas  # the rest load it now
            rollback = s.rolled_back is not None
            await self._ask(s.namespace, pods, [], s.stable.adapters, s.stable.adapters, reports, not rollback)
        if s.canary is not None and s.analysis is not None:
            more = canary_count(spec.runtime.replicas, staged.canary.steps[s.analysis.step])
            if more != target:  # the next step: more pods load the canary's adapters now
                assert s.stable is not None
                chosen = choose_canary_pods(pods, wanted_annotation(adapters), more)
                await self._ask(s.namespace, pods, chosen, s.stable.adapters, adapters, reports)
                s.canary.replicas, s.stable.replicas = more, spec.runtime.replicas - more

    @staticmethod
    def _url(pods: list[ServingPod], names: list[str]) -> str | None:
        found = next((p for p in pods if p.name in names and p.ip), None)
        return f"http://{found.ip}:{builders.PORT}" if found else None
