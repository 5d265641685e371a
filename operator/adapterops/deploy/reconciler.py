"""ModelDeployment reconcile: serve the stable revision, canary every new one, promote or roll back.

Level-based: children are server-side applied from pure builders each time; the rollout's position
(stable, canary, step, failures) lives in the object's status, so a restarted operator picks up where
it was. Rules the canary keeps:
  - no traffic moves to a canary that is not Ready (its weight stays 0 until its replicas are ready);
  - the stable revision is never scaled down before promotion; an old revision is deleted only once
    no traffic is routed to it;
  - a step passes when every metric passes (as early as the evidence allows), fails when one fails;
    inconclusive data (none, Prometheus or judge down) never promotes: the canary holds and says why;
  - `failureLimit` failed steps roll back; a rolled-back revision is not retried until the spec changes.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import httpx

from adapterops.analysis import run as canary
from adapterops.api.modeldeployment import ModelDeploymentSpec
from adapterops.deploy import acceptance as deploy
from adapterops.deploy import builders as serving
from adapterops.runtime import events
from adapterops.runtime.conditions import now_iso, set_condition
from adapterops.runtime.metrics import (
    ANALYSIS_THRESHOLD,
    ANALYSIS_VALUE,
    ANALYSIS_VERDICT,
    CANARY_WEIGHT,
    MONTHLY_COST,
    PROMOTIONS,
    ROLLBACKS,
    forget,
    set_gauge,
)

if TYPE_CHECKING:
    from adapterops.runtime.manager import Controller

log = logging.getLogger(__name__)
POLL_SECONDS = 2.0
HTTPROUTE_API = "gateway.networking.k8s.io/v1"


def _ts(value: str | None) -> float | None:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() if value else None


def _now() -> float:
    return datetime.now(UTC).timestamp()


class Rollout:
    def __init__(self, ctl: Controller) -> None:
        self.ctl = ctl
        self.judges: dict[tuple[str, str], canary.PairedJudge] = {}  # (md uid, canary revision)
        self.http = httpx.AsyncClient()

    async def close(self) -> None:
        for judge in self.judges.values():
            judge.stop()
        await self.http.aclose()

    # ------------------------------------------------------------------ observing

    def _deployments(self, key: Any) -> dict[str, dict[str, Any]]:
        return {d["revision"]: d for d in self.ctl.children["serving-deployments"].items(key)}

    def _ready_pod(self, key: Any, revision: str) -> str | None:
        pods = [
            p
            for p in self.ctl.children["serving-pods"].items(key)
            if p["revision"] == revision and p["ready"] and p["ip"]
        ]
        return f"http://{sorted(pods, key=lambda p: p['name'])[0]['ip']}:{serving.PORT}" if pods else None

    def _champion_status(self, namespace: str, name: str) -> dict[str, Any] | None:
        body = self.ctl.one("finetunejob_index", (namespace, name))
        return None if body is None else dict(body.get("status") or {})

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self, key: Any) -> None:
        body = self.ctl.one("modeldeployment_index", key)
        if body is None:
            forget("ModelDeployment", *cast(tuple[str, str], key))
            return
        meta = body["metadata"]
        namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
        old = body.get("status") or {}
        acceptance = deploy.accept(body.get("spec") or {}, self.ctl.config)
        if acceptance.error is not None or acceptance.spec is None:
            new = deploy.refused_status(old, acceptance, generation)
            if await self.ctl.write_status(body, new):
                await self.ctl.announce_acceptance(body, old, new)
            return
        spec = acceptance.spec
        adapters, waiting = deploy.resolve_adapters(spec, lambda ftj: self._champion_status(namespace, ftj))
        desired = serving.revision_of(spec, adapters, self.ctl.config) if adapters is not None else None
        state = RolloutState(body, spec, old, generation)
        state.conditions = set_condition(state.conditions, "Accepted", True, "Accepted", "spec accepted", generation)
        await self.ctl.kube.apply(serving.stable_service(body))
        if not old.get("stable"):
            await self._first_revision(key, state, desired, adapters, waiting)
        else:
            await self._stable_and_canary(key, state, desired, adapters, waiting)
        new = state.finish(self.ctl.config)
        await self._garbage_collect(key, body, spec, new)
        if await self.ctl.write_status(body, new):
            await self.ctl.announce_acceptance(body, old, new)
        for reason, message, kind in state.events:
            await events.emit(self.ctl.kube, body, reason, message, kind)
        record_metrics(namespace, name, new, threshold_values(spec, new))
        if new.get("canary") or not _is_true(new, "Ready"):
            self.ctl.queues["ModelDeployment"].add_after(key, POLL_SECONDS)

    async def _ensure_revision(
        self, body: dict[str, Any], spec: ModelDeploymentSpec, rev: str, adapters: dict[str, str], replicas: int
    ) -> None:
        await self.ctl.kube.apply(serving.revision_deployment(body, spec, adapters, rev, replicas, self.ctl.config))
        await self.ctl.kube.apply(serving.revision_service(body, rev))

    async def _first_revision(
        self, key: Any, s: RolloutState, desired: str | None, adapters: dict[str, str] | None, waiting: str
    ) -> None:
        if desired is None or adapters is None:
            s.conditions = set_condition(s.conditions, "Ready", False, "WaitingForAdapters", waiting, s.generation)
            s.progress("WaitingForAdapters", waiting)
            return
        replicas = s.spec.runtime.replicas
        await self._ensure_revision(s.body, s.spec, desired, adapters, replicas)
        ready = self._deployments(key).get(desired, {}).get("readyReplicas", 0)
        s.stable = deploy.revision_status(s.spec, desired, adapters, replicas, ready, 100, self.ctl.config)
        s.history = deploy.add_history(
            s.history,
            {
                "revision": desired,
                "outcome": "Initial",
                "reason": "first revision",
                "adapters": adapters,
                "time": now_iso(),
            },
        )
        s.events.append(
            ("RevisionCreated", f"serving revision {desired} ({self._describe(s.spec, adapters)})", "Normal")
        )
        if s.spec.canary.traffic.mode == "httpRoute":
            await self._set_route(s, desired, None, 0)

    async def _stable_and_canary(
        self, key: Any, s: RolloutState, desired: str | None, adapters: dict[str, str] | None, waiting: str
    ) -> None:
        stable = dict(s.old["stable"])
        replicas = s.spec.runtime.replicas
        deployments = self._deployments(key)
        if desired == stable["revision"]:
            await self._ensure_revision(s.body, s.spec, stable["revision"], stable["adapters"], replicas)
        else:
            # The spec now describes another revision: the stable Deployment keeps the pods it has, only
            # its replica count follows spec.runtime.replicas.
            await self._scale(s, stable["revision"], replicas, deployments)
        stable.update(replicas=replicas, readyReplicas=deployments.get(stable["revision"], {}).get("readyReplicas", 0))
        s.stable = stable
        old_canary = s.old.get("canary")
        if desired is None or desired == stable["revision"]:
            if old_canary:
                self._drop_judge(s, old_canary["revision"])
                s.history = deploy.add_history(
                    s.history, self._entry(old_canary, "Superseded", "the spec serves the stable revision again")
                )
                s.events.append(
                    (
                        "CanarySuperseded",
                        f"canary {old_canary['revision']} removed: the spec serves the stable revision again",
                        "Normal",
                    )
                )
            if desired is None:
                s.progress("WaitingForAdapters", f"{waiting}; revision {stable['revision']} keeps serving")
            if s.spec.canary.traffic.mode == "httpRoute":
                await self._set_route(s, stable["revision"], None, 0)
            return
        assert adapters is not None
        rollback = deploy.rolled_back(s.history, desired)
        if rollback is not None:
            if old_canary:
                self._drop_judge(s, old_canary["revision"])
            s.rolled_back = rollback
            if s.spec.canary.traffic.mode == "httpRoute":
                await self._set_route(s, stable["revision"], None, 0)
            return
        if old_canary and old_canary["revision"] != desired:
            self._drop_judge(s, old_canary["revision"])
            s.history = deploy.add_history(
                s.history, self._entry(old_canary, "Superseded", f"replaced by revision {desired}")
            )
            s.events.append(("CanarySuperseded", f"canary {old_canary['revision']} superseded by {desired}", "Normal"))
            old_canary = None
        await self._run_canary(key, s, desired, adapters, old_canary)

    async def _run_canary(
        self, key: Any, s: RolloutState, desired: str, adapters: dict[str, str], old_canary: dict[str, Any] | None
    ) -> None:
        spec, c = s.spec, s.spec.canary
        analysis_state = dict(s.old.get("analysis") or {}) if old_canary else {}
        if not old_canary:
            analysis_state = {
                "step": 0,
                "startedAt": now_iso(),
                "failedSteps": 0,
                "inconclusiveSteps": 0,
                "metrics": [],
            }
            s.events.append(
                (
                    "CanaryStarted",
                    f"canary revision {desired} ({self._describe(spec, adapters)}) against stable "
                    f"{s.stable['revision']}; steps {c.steps}",
                    "Normal",
                )
            )
        step = analysis_state["step"]
        target = c.steps[step]
        replicas = serving.split_replicas(spec.runtime.replicas, target, c.traffic.mode)
        await self._ensure_revision(s.body, spec, desired, adapters, replicas)
        ready = self._deployments(key).get(desired, {}).get("readyReplicas", 0)
        canary_ready = ready >= replicas
        route_weight = target if canary_ready else 0
        if c.traffic.mode == "httpRoute":
            await self._set_route(s, s.stable["revision"], desired, route_weight)
        weight = serving.effective_weight(
            s.stable["readyReplicas"], ready if canary_ready else 0, route_weight, c.traffic.mode
        )
        s.canary = deploy.revision_status(spec, desired, adapters, replicas, ready, weight, self.ctl.config)
        s.stable["weight"] = 100 - weight
        s.analysis = analysis_state
        if not canary_ready:
            s.progress(
                "CanaryNotReady", f"canary {desired}: {ready}/{replicas} replicas ready; no traffic until it is Ready"
            )
            return
        if not analysis_state.get("stepStartedAt"):
            analysis_state["stepStartedAt"] = now_iso()
            s.events.append(
                ("CanaryStep", f"step {step + 1}/{len(c.steps)}: canary {desired} at {weight}% of traffic", "Normal")
            )
        action = self._action(s, desired)
        if action == "abort":
            self._rollback(s, desired, adapters, "aborted by the adapterops.io/abort annotation")
            return
        if action == "promote":
            self._promote(s, desired, adapters, [], by="the adapterops.io/promote annotation")
            return
        if c.paused:
            s.suspend("Paused", f"spec.canary.paused: holding canary {desired} at step {step + 1} ({weight}%)")
            return
        elapsed = _now() - (_ts(analysis_state["stepStartedAt"]) or _now())
        # The sequential tests take all data since the canary (or its last failed step) began: one test,
        # valid however often it is looked at, and at the last step (100%) stable's earlier traffic is
        # the reference.
        window = _now() - (_ts(analysis_state["startedAt"]) or _now())
        judge = await self._judge(s, desired, adapters)
        verdicts = await canary.analyse(
            self.http, spec, self.ctl.config.prometheus_url, s.namespace, s.stable["revision"], desired, window, judge
        )
        analysis_state["metrics"] = [v.to_status() for v in verdicts]
        interval = deploy.parse_interval(c.interval)
        failed = [v for v in verdicts if v.verdict == "Fail"]
        if failed:
            analysis_state["failedSteps"] += 1
            reason = "; ".join(v.message for v in failed)  # each message starts with its metric's name
            if analysis_state["failedSteps"] >= c.analysis.failure_limit:
                self._rollback(s, desired, adapters, reason)
                return
            s.events.append(
                (
                    "CanaryStepFailed",
                    f"step {step + 1} failed ({analysis_state['failedSteps']}/{c.analysis.failure_limit}): {reason}",
                    "Warning",
                )
            )
            # A failed test is final: the step is retried with a fresh test (new window, new judged pairs).
            analysis_state.update(stepStartedAt=now_iso(), startedAt=now_iso(), holding=False)
            self._drop_judge(s, desired)
            s.progress("StepFailed", reason)
            return
        passed = all(v.verdict == "Pass" for v in verdicts) and (verdicts or elapsed >= interval)
        if passed:
            if step + 1 < len(c.steps):
                s.events.append(
                    (
                        "CanaryStepPassed",
                        f"step {step + 1}/{len(c.steps)} passed at {weight}%: "
                        + "; ".join(f"{v.name} {_fmt(v.canary_value)}" for v in verdicts),
                        "Normal",
                    )
                )
                analysis_state.update(step=step + 1, stepStartedAt=None, holding=False)
                s.progress("CanaryProgressing", f"step {step + 1} passed; moving to {c.steps[step + 1]}%")
                return
            if c.auto_promote:
                self._promote(s, desired, adapters, verdicts)
                return
            s.suspend(
                "AwaitingPromotion",
                f"canary {desired} passed every step; promote it (adapterops.io/promote annotation)",
            )
            return
        inconclusive = "; ".join(v.message for v in verdicts if v.verdict == "Inconclusive")
        if elapsed >= interval:
            if not analysis_state.get("holding"):
                analysis_state["inconclusiveSteps"] += 1
                analysis_state["holding"] = True
                s.events.append(
                    (
                        "CanaryHolding",
                        f"step {step + 1}: no verdict after {c.interval}, holding at {weight}%: {inconclusive}",
                        "Warning",
                    )
                )
            s.suspend("AnalysisInconclusive", f"holding canary {desired} at {weight}%: {inconclusive}")
        else:
            s.progress("Analysing", f"step {step + 1}/{len(c.steps)} at {weight}%: {inconclusive or 'collecting data'}")

    # ------------------------------------------------------------------ outcomes

    def _promote(
        self, s: RolloutState, revision: str, adapters: dict[str, str], verdicts: list[Any], by: str = ""
    ) -> None:
        assert s.canary is not None
        summary = (
            by
            or "; ".join(f"{v.name} {_fmt(v.canary_value)} ({v.threshold})" for v in verdicts)
            or "no metrics configured"
        )
        old_stable = s.stable["revision"]
        s.stable = {**s.canary, "replicas": s.spec.runtime.replicas, "weight": 100}
        s.canary, s.analysis = None, None
        s.history = deploy.add_history(
            s.history,
            {"revision": revision, "outcome": "Promoted", "reason": summary, "adapters": adapters, "time": now_iso()},
        )
        s.events.append(("Promoted", f"revision {revision} promoted over {old_stable}: {summary}", "Normal"))
        s.conditions = set_condition(
            s.conditions, "RolledBack", False, "Promoted", f"revision {revision} promoted", s.generation
        )
        self._drop_judge(s, revision)
        PROMOTIONS.labels(s.namespace, s.name).inc()

    def _rollback(self, s: RolloutState, revision: str, adapters: dict[str, str], reason: str) -> None:
        message = f"revision {revision} rolled back, {s.stable['revision']} keeps serving: {reason}"
        entry = {
            "revision": revision,
            "outcome": "RolledBack",
            "reason": reason,
            "adapters": adapters,
            "time": now_iso(),
        }
        s.history = deploy.add_history(s.history, entry)
        s.canary, s.analysis = None, None
        s.stable["weight"] = 100
        s.rolled_back = entry
        s.events.append(("RolledBack", message, "Warning"))
        self._drop_judge(s, revision)
        ROLLBACKS.labels(s.namespace, s.name).inc()

    @staticmethod
    def _action(s: RolloutState, revision: str) -> str | None:
        """Promote or abort now: an annotation naming the canary's revision (what `kubectl adapterops
        promote|abort` and the Argo CD actions set). Naming the revision makes it apply to that canary only."""
        annotations = s.body["metadata"].get("annotations") or {}
        for action in ("abort", "promote"):
            if annotations.get(f"adapterops.io/{action}") == revision:
                return action
        return None

    # ------------------------------------------------------------------ helpers

    async def _judge(self, s: RolloutState, revision: str, adapters: dict[str, str]) -> canary.PairedJudge | None:
        j = s.spec.canary.analysis.judge
        if j is None:
            return None
        key = (s.body["metadata"]["uid"], revision)
        judge = self.judges.get(key)
        if judge is None:
            try:
                prompts = canary.parse_prompts(await self._read_dataset(s.namespace, j.dataset))
                api_key = (
                    await self._secret(s.namespace, j.judge.api_key_secret_ref) if j.judge.api_key_secret_ref else None
                )
            except Exception as exc:  # a missing ConfigMap or Secret: the judge metric is inconclusive and says why
                placeholder = canary.PairedJudge([], j, None, 0, problem=f"cannot start paired judging: {exc}")
                return placeholder
            judge = self.judges[key] = canary.PairedJudge(prompts, j, api_key, j.samples)
        stable_url = self._ready_pod((s.namespace, s.name), s.stable["revision"])
        canary_url = self._ready_pod((s.namespace, s.name), revision)
        changed = sorted(n for n, u in adapters.items() if s.stable["adapters"].get(n) != u) or sorted(adapters)
        if stable_url and canary_url and changed:
            judge.start(stable_url, canary_url, changed[0])
        return judge

    def _drop_judge(self, s: RolloutState, revision: str) -> None:
        judge = self.judges.pop((s.body["metadata"]["uid"], revision), None)
        if judge:
            judge.stop()

    async def _read_dataset(self, namespace: str, uri: str) -> str:
        if uri.startswith("configmap://"):
            name, _, key = uri.removeprefix("configmap://").partition("/")
            cm = await self.ctl.kube.get("v1", "ConfigMap", namespace, name)
            if cm is None or key not in (cm.get("data") or {}):
                raise LookupError(f"ConfigMap {namespace}/{name} has no key {key!r}")
            return str(cm["data"][key])
        from adapterops_common import storage as uris

        def read() -> str:
            with tempfile.TemporaryDirectory() as tmp:
                return uris.fetch_file(uri, Path(tmp)).read_text()

        return await asyncio.to_thread(read)

    async def _secret(self, namespace: str, ref: Any) -> str:
        secret = await self.ctl.kube.get("v1", "Secret", namespace, ref.name)
        if secret is None or ref.key not in (secret.get("data") or {}):
            raise LookupError(f"Secret {namespace}/{ref.name} has no key {ref.key!r}")
        return base64.b64decode(secret["data"][ref.key]).decode().strip()

    async def _set_route(self, s: RolloutState, stable: str, canary_rev: str | None, weight: int) -> None:
        ref = s.spec.canary.traffic.http_route_ref
        assert ref is not None
        route = await self.ctl.kube.get(HTTPROUTE_API, "HTTPRoute", s.namespace, ref.name)
        if route is None:
            s.progress("HTTPRouteNotFound", f"spec.canary.traffic.httpRouteRef: HTTPRoute {ref.name!r} not found")
            return
        backends = serving.route_backends(s.name, stable, canary_rev, weight)
        rules = route["spec"].get("rules") or [{}]
        if all(r.get("backendRefs") == backends for r in rules):
            return
        route["spec"]["rules"] = [{**r, "backendRefs": backends} for r in rules]
        await self.ctl.kube.request(
            "PUT", f"/apis/{HTTPROUTE_API}/namespaces/{s.namespace}/httproutes/{ref.name}", body=route
        )

    async def _garbage_collect(
        self, key: Any, body: dict[str, Any], spec: ModelDeploymentSpec, status: dict[str, Any]
    ) -> None:
        """Delete revisions no longer stable or canary, once no route sends them traffic."""
        keep = {r["revision"] for r in (status.get("stable"), status.get("canary")) if r}
        for rev in self._deployments(key):
            if rev in keep:
                continue
            if spec.canary.traffic.mode == "httpRoute" and spec.canary.traffic.http_route_ref:
                route = await self.ctl.kube.get(
                    HTTPROUTE_API, "HTTPRoute", body["metadata"]["namespace"], spec.canary.traffic.http_route_ref.name
                )
                names = {
                    b["name"] for r in (route or {}).get("spec", {}).get("rules", []) for b in r.get("backendRefs", [])
                }
                if serving.revision_name(body["metadata"]["name"], rev) in names:
                    continue
            name = serving.revision_name(body["metadata"]["name"], rev)
            await self.ctl.kube.delete("apps/v1", "Deployment", body["metadata"]["namespace"], name)
            await self.ctl.kube.delete("v1", "Service", body["metadata"]["namespace"], name)

    async def _scale(
        self, s: RolloutState, revision: str, replicas: int, deployments: dict[str, dict[str, Any]]
    ) -> None:
        current = deployments.get(revision)
        if current is not None and current["replicas"] != replicas:
            name = serving.revision_name(s.name, revision)
            await self.ctl.kube.patch_merge(
                "apps/v1", "Deployment", s.namespace, name, {"spec": {"replicas": replicas}}
            )

    @staticmethod
    def _describe(spec: ModelDeploymentSpec, adapters: dict[str, str]) -> str:
        r = spec.runtime
        return f"{r.engine} TP{r.tensor_parallel_size} on {r.gpu_type}, adapters {adapters}"

    @staticmethod
    def _entry(rev: dict[str, Any], outcome: str, reason: str) -> dict[str, Any]:
        return {
            "revision": rev["revision"],
            "outcome": outcome,
            "reason": reason,
            "adapters": rev.get("adapters", {}),
            "time": now_iso(),
        }


class RolloutState:
    """What one reconcile computes; `finish` turns it into the status."""

    def __init__(
        self, body: dict[str, Any], spec: ModelDeploymentSpec, old: dict[str, Any], generation: int | None
    ) -> None:
        self.body, self.spec, self.old, self.generation = body, spec, old, generation
        self.namespace, self.name = body["metadata"]["namespace"], body["metadata"]["name"]
        self.conditions: list[dict[str, Any]] = list(old.get("conditions") or [])
        self.history: list[dict[str, Any]] = list(old.get("history") or [])
        self.stable: dict[str, Any] = {}
        self.canary: dict[str, Any] | None = None
        self.analysis: dict[str, Any] | None = None
        self.rolled_back: dict[str, Any] | None = None
        self.events: list[tuple[str, str, Literal["Normal", "Warning"]]] = []
        self._progress: tuple[bool, str, str] | None = None
        self._suspend: tuple[str, str] | None = None

    def progress(self, reason: str, message: str) -> None:
        self._progress = (True, reason, message)

    def suspend(self, reason: str, message: str) -> None:
        self._suspend = (reason, message)
        self._progress = (True, reason, message)

    def finish(self, config: Any) -> dict[str, Any]:
        g = self.generation
        stable = self.stable
        ready = bool(stable) and stable.get("readyReplicas", 0) >= stable.get("replicas", 1)
        if stable:
            msg = f"revision {stable['revision']}: {stable['readyReplicas']}/{stable['replicas']} replicas ready"
            self.conditions = set_condition(
                self.conditions, "Ready", ready, "Serving" if ready else "StableNotReady", msg, g
            )
        if self._progress is None:
            steady = f"revision {stable.get('revision')} serves all traffic" if stable else "nothing to serve yet"
            self._progress = (not ready, "Steady" if ready else "StableNotReady", steady)
        self.conditions = set_condition(self.conditions, "Progressing", *self._progress, g)
        reason, message = self._suspend or ("NotSuspended", "")
        self.conditions = set_condition(self.conditions, "Suspended", self._suspend is not None, reason, message, g)
        previous = next((c for c in self.conditions if c["type"] == "RolledBack"), None)
        if self.rolled_back:
            msg = f"revision {self.rolled_back['revision']} rolled back: {self.rolled_back['reason']}"
            self.conditions = set_condition(self.conditions, "RolledBack", True, "AnalysisFailed", msg, g)
            self.conditions = set_condition(self.conditions, "Degraded", True, "RolledBack", msg, g)
        else:
            if self.canary:
                rolled: tuple[bool | str, str, str] = (False, "NewCanary", "a new revision is being canaried")
            elif previous is not None:
                rolled = (previous["status"], previous["reason"], previous["message"])
            else:
                rolled = (False, "NoRollback", "")
            self.conditions = set_condition(self.conditions, "RolledBack", *rolled, g)
            was_ready = any(c["type"] == "Ready" and c["status"] == "True" for c in self.old.get("conditions") or [])
            degraded = bool(stable) and not ready and was_ready
            self.conditions = set_condition(
                self.conditions,
                "Degraded",
                degraded,
                "StableNotReady" if degraded else "Healthy",
                "the stable revision lost ready replicas" if degraded else "",
                g,
            )
        status: dict[str, Any] = {
            "observedGeneration": g,
            "conditions": self.conditions,
            "history": self.history,
            "canaryWeight": (self.canary or {}).get("weight", 0),
            "endpoint": f"http://{self.name}.{self.namespace}.svc:{serving.PORT}/v1",
        }
        if stable:
            status["stable"] = stable
        if self.canary:
            status["canary"] = self.canary
        if self.analysis:
            status["analysis"] = self.analysis
        status["estimatedMonthlyCost"] = deploy.cost(status, config)
        return status


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _is_true(status: dict[str, Any], type_: str) -> bool:
    return any(c["type"] == type_ and c["status"] == "True" for c in status.get("conditions") or [])


def threshold_values(spec: ModelDeploymentSpec, status: dict[str, Any]) -> dict[str, float]:
    """Each metric's limit in its own unit, as the analysis applies it to this canary."""
    a = spec.canary.analysis
    metrics = {m["name"]: m for m in (status.get("analysis") or {}).get("metrics", [])}
    out: dict[str, float] = {}
    if a.latency:
        stable = metrics.get("latency", {}).get("stableValue")
        limits = [a.latency.max_seconds] if a.latency.max_seconds else []
        if a.latency.max_increase_percent is not None and stable is not None:
            limits.append(stable * (1 + a.latency.max_increase_percent / 100))
        if limits:
            out["latency"] = min(limits)
    if a.error_rate:
        out["errorRate"] = a.error_rate.max_percent / 100
    if a.judge:
        stable = metrics.get("judge", {}).get("stableValue")
        limits = [a.judge.min_score] if a.judge.min_score is not None else []
        if stable is not None:
            limits.append(stable - a.judge.max_drop)
        if limits:
            out["judge"] = max(limits)
    return out


def record_metrics(namespace: str, name: str, status: dict[str, Any], thresholds: dict[str, float]) -> None:
    md = "ModelDeployment"
    # Counters exist from the start at 0, so that increase() sees the first rollback or promotion.
    ROLLBACKS.labels(namespace, name)
    PROMOTIONS.labels(namespace, name)
    set_gauge(md, CANARY_WEIGHT, status.get("canaryWeight", 0), namespace, name)
    cost = status.get("estimatedMonthlyCost") or {}
    for role in ("stable", "canary"):
        set_gauge(md, MONTHLY_COST, (cost.get(role) or {}).get("usd", 0), namespace, name, role)
    # Analysis series describe the current canary only.
    forget(md, namespace, name, only=(ANALYSIS_VALUE, ANALYSIS_VERDICT, ANALYSIS_THRESHOLD))
    for metric in (status.get("analysis") or {}).get("metrics", []):
        for role, key in (("stable", "stableValue"), ("canary", "canaryValue")):
            if metric.get(key) is not None:
                set_gauge(md, ANALYSIS_VALUE, metric[key], namespace, name, metric["name"], role)
        for verdict in ("Pass", "Fail", "Inconclusive"):
            set_gauge(
                md, ANALYSIS_VERDICT, 1 if metric["verdict"] == verdict else 0, namespace, name, metric["name"], verdict
            )
    if status.get("canary"):
        for metric_name, value in thresholds.items():
            set_gauge(md, ANALYSIS_THRESHOLD, value, namespace, name, metric_name)
