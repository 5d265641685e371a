"""An in-memory world for the ModelDeployment reconciler: API server, kubelet, clock, analysis and judge.

Real: `ModelDeploymentReconciler` with its builders and canary decisions, the informers (fed with the
objects a watch would deliver, through the same `deployment_item`/`pod_item`/`object_item`
summarisers), `StatusWriter` (conditional merge patches of /status), `EventRecorder` and `Config`.
Fake: the API (`FakeClient`: objects in dicts, the verbs the reconciler uses, resourceVersion
preconditions, the defaults the API server fills in, injected failures), the kubelet and Deployment
controller (`World.run_pods`), the clock (`FakeClock`), the canary's statistics (`FakeAnalysis`:
scripted verdicts per metric) and the paired judge (`FakePairedJudge`: never sends a request).

Informers lag the store until `World.sync()` (done by `World.reconcile()` unless told otherwise), as a
watch lags the API server: that is how a test shows a reconcile computed from a stale object.
"""

from __future__ import annotations

import copy
import itertools
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, NoReturn

import httpx2
import pytest
from lightkube.codecs import from_dict
from lightkube.core.exceptions import ApiError
from lightkube.core.resource import NamespacedResource, NamespacedSubResource

from adapterops.analysis.verdict import MetricVerdict, Verdict
from adapterops.api.common import Condition, get_condition
from adapterops.api.kinds import FINETUNEJOB, HTTPROUTE, MODELDEPLOYMENT, Kind
from adapterops.api.modeldeployment import (
    AnalysisStatus,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    RevisionStatus,
)
from adapterops.config import Config, GpuClass
from adapterops.deploy import builders
from adapterops.deploy.inplace import AgentReport, versions
from adapterops.deploy.reconciler import ModelDeploymentReconciler
from adapterops.runtime import clock
from adapterops.runtime.client import Client, KindNotServed
from adapterops.runtime.context import Context, Informers
from adapterops.runtime.events import EventRecorder
from adapterops.runtime.informer import Informer
from adapterops.runtime.status import StatusWriter
from adapterops.runtime.workqueue import Key, WorkQueue
from testworld.engines import nim_profiles

NAMESPACE = "ml"
NAME = "agent"
KEY: Key = (NAMESPACE, NAME)
T0 = datetime(2026, 1, 1, tzinfo=UTC)

DEPLOYMENT = "apps/v1/Deployment"
SERVICE = "v1/Service"
POD = "v1/Pod"
EVENT = "v1/Event"
CONFIGMAP = "v1/ConfigMap"


def kind_name(kind: Kind) -> str:
    return f"{kind.api_version}/{kind.kind}"


MD = kind_name(MODELDEPLOYMENT)
FTJ = kind_name(FINETUNEJOB)
ROUTE = kind_name(HTTPROUTE)

CONFIG = Config(
    gpu_classes={
        "H100": GpuClass.model_validate(
            {"nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, "pricePerHour": 4.0, "memoryGiB": 80}
        )
    },
    status_write_seconds=0,  # every change is written at once: each reconcile's decision is visible
    allowed_judge_endpoints=("http://judge.invalid/v1",),  # the judge the specs below name
    nim_profiles=nim_profiles(),  # the test world's NIM images and their profiles (testworld/engines.py)
)

ObjectKey = tuple[str, str, str]  # (apiVersion/kind, namespace, name)


# ---------------------------------------------------------------------------------------------- the API


def kind_of(res: type[NamespacedResource] | type[NamespacedSubResource]) -> str:
    """apiVersion/kind of a lightkube class (a subresource's: its parent's)."""
    info = res._api_info
    rd = info.parent or info.resource
    api_version = f"{rd.group}/{rd.version}" if rd.group else rd.version
    return f"{api_version}/{rd.kind}"


def api_error(code: int, message: str, name: str | None = None) -> ApiError:
    """What lightkube raises for a Status answer (the object's name in details, as the API server puts it)."""
    reason = {404: "NotFound", 409: "Conflict", 500: "InternalError"}.get(code, "Failure")
    status: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "status": "Failure"}
    status |= {"message": message, "reason": reason, "code": code}
    if name is not None:
        status["details"] = {"name": name}
    request = httpx2.Request("POST", "https://fake-apiserver.invalid")
    return ApiError(request=request, response=httpx2.Response(code, json=status, request=request))


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386: dicts merge key by key, null removes, anything else replaces (a new object)."""
    return _merge_into(copy.deepcopy(target), patch)


def _merge_into(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = target if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge_into(out.get(k), v)
    return out


def matches(labels: dict[str, str], selector: dict[str, Any] | None) -> bool:
    """lightkube's label selector form: a value must equal, None only asks the label to exist."""
    return all(k in labels and (v is None or labels[k] == v) for k, v in (selector or {}).items())


@dataclass
class Call:
    verb: str  # the Client method: get, list, apply, create, patch_merge, replace, delete
    kind: str  # apiVersion/kind
    namespace: str
    name: str
    body: dict[str, Any] | None = None
    subresource: str | None = None
    error: int | None = None  # the HTTP status it was refused with


@dataclass
class Failure:
    verb: str
    kind: str | None
    code: int
    times: int  # matching calls still to refuse; -1: all of them


class FakeClient(Client):
    """The API server in dicts, behind the verbs `Client` offers."""

    def __init__(self) -> None:  # nothing to connect to: no lightkube client behind it
        self.requests = 0
        self.objects: dict[ObjectKey, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self.not_served: set[str] = set()  # apiVersion/kind of add-ons not installed
        self.failures: list[Failure] = []
        self._versions = itertools.count(1)
        self._uids = itertools.count(1)
        self._names = itertools.count(1)

    # ------------------------------------------------------------------ for tests

    def fail(self, verb: str, kind: str | None = None, code: int = 500, times: int = 1) -> None:
        """Refuse the next `times` calls of `verb` (on `kind`) with `code`."""
        self.failures.append(Failure(verb, kind, code, times))

    def get_object(self, kind: str, name: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def of_kind(self, kind: str, selector: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for o in self.stored(kind, selector)]

    def stored(self, kind: str, selector: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The stored objects themselves (writes replace them, never change them: safe to keep, not to edit)."""
        return [
            o
            for (k, _, _), o in self.objects.items()
            if k == kind and matches(o["metadata"].get("labels") or {}, selector)
        ]

    def calls_of(self, verb: str, kind: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.verb == verb and kind in (None, c.kind)]

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Another actor's write (kubectl, a controller): stored as sent, not recorded as our call."""
        return self._store(self._key(obj), copy.deepcopy(obj))

    def remove(self, kind: str, name: str, namespace: str = NAMESPACE) -> None:
        self._remove((kind, namespace, name))

    # ------------------------------------------------------------------ the store

    @staticmethod
    def _key(manifest: dict[str, Any]) -> ObjectKey:
        meta = manifest["metadata"]
        return f"{manifest['apiVersion']}/{manifest['kind']}", meta.get("namespace") or "", meta["name"]

    def _call(
        self, verb: str, kind: str, namespace: str | None, name: str, body: Any = None, sub: str | None = None
    ) -> Call:
        self.requests += 1
        call = Call(verb, kind, namespace or "", name, copy.deepcopy(body), sub)
        self.calls.append(call)
        for f in self.failures:
            if f.verb == verb and f.kind in (None, kind) and f.times != 0:
                f.times -= f.times > 0
                self._refuse(call, f.code, f"injected failure of {verb} {kind} {name}")
        return call

    @staticmethod
    def _refuse(call: Call, code: int, message: str) -> NoReturn:
        call.error = code
        raise api_error(code, message, call.name)

    def _store(self, key: ObjectKey, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or update; an update that changes nothing is no write (the resourceVersion stays)."""
        old = self.objects.get(key)
        meta = obj.setdefault("metadata", {})
        meta["namespace"], meta["name"] = key[1], key[2]
        if old is None:
            meta["uid"] = f"uid-{next(self._uids)}"
            meta["creationTimestamp"] = clock.now_iso()
            meta["generation"] = 1
        else:
            kept = old["metadata"]
            meta["uid"], meta["creationTimestamp"] = kept["uid"], kept["creationTimestamp"]
            # generation counts changes of anything but metadata and status
            changed = {k: v for k, v in obj.items() if k not in ("metadata", "status")} != {
                k: v for k, v in old.items() if k not in ("metadata", "status")
            }
            meta["generation"] = kept["generation"] + int(changed)
        self._default(key[0], obj)
        if old is not None:
            meta["resourceVersion"] = old["metadata"]["resourceVersion"]
            if obj == old:
                return copy.deepcopy(old)
        meta["resourceVersion"] = str(next(self._versions))
        self.objects[key] = obj
        return copy.deepcopy(obj)

    @staticmethod
    def _default(kind: str, obj: dict[str, Any]) -> None:
        """What the API server fills in: Gateway API's CRD schema defaults backendRefs' group, kind and
        weight (the cluster test reads `group: ""` back)."""
        if kind == ROUTE:
            for rule in (obj.get("spec") or {}).get("rules") or []:
                for ref in rule.get("backendRefs") or []:
                    ref.setdefault("group", "")
                    ref.setdefault("kind", "Service")
                    ref.setdefault("weight", 1)

    def _remove(self, key: ObjectKey) -> None:
        """Delete, and (as the garbage collector does) everything owned by it."""
        gone = self.objects.pop(key)
        uid = gone["metadata"]["uid"]
        for k, o in list(self.objects.items()):
            owners = o["metadata"].get("ownerReferences") or []
            if k in self.objects and any(r.get("uid") == uid for r in owners):
                self._remove(k)

    # ------------------------------------------------------------------ Client's verbs

    async def get(self, res: type[NamespacedResource], namespace: str | None, name: str) -> dict[str, Any] | None:
        kind = kind_of(res)
        self._call("get", kind, namespace, name)
        if kind in self.not_served:
            raise KindNotServed(res)
        return self.get_object(kind, name, namespace or "")

    async def list(
        self, res: type[NamespacedResource], namespace: str | None, labels: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        kind = kind_of(res)
        self._call("list", kind, namespace, "")
        return [o for o in self.of_kind(kind, labels) if namespace in (None, o["metadata"]["namespace"])]

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply under one field manager: create, or merge the manifest into the object."""
        key = self._key(manifest)
        self._call("apply", key[0], key[1], key[2], manifest)
        return self._store(key, merge(self.objects.get(key) or {}, manifest))

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        meta = manifest["metadata"]
        name = meta.get("name") or f"{meta['generateName']}{next(self._names):05d}"
        key = self._key({**manifest, "metadata": {**meta, "name": name}})
        self._call("create", key[0], key[1], name, manifest)
        if key in self.objects:
            return None
        return self._store(key, merge({}, {**manifest, "metadata": {**meta, "name": name}}))

    async def patch_merge(
        self,
        res: type[NamespacedResource] | type[NamespacedSubResource],
        namespace: str | None,
        name: str,
        patch: dict[str, Any],
    ) -> dict[str, Any]:
        """A merge patch; `metadata.resourceVersion` in it is a precondition (409 when it is not current).
        On /status only the status changes; on the object, status is left alone (its own subresource)."""
        kind, sub = kind_of(res), res._api_info.action
        call = self._call("patch_merge", kind, namespace, name, patch, sub)
        key = (kind, namespace or "", name)
        current = self.objects.get(key)
        if current is None:
            self._refuse(call, 404, f"{kind} {name} not found")
        precondition = (patch.get("metadata") or {}).get("resourceVersion")
        if precondition is not None and precondition != current["metadata"]["resourceVersion"]:
            self._refuse(call, 409, f"the object has been modified: {precondition} is not the current version")
        if sub == "status":
            new = {**copy.deepcopy(current), "status": merge(current.get("status"), patch.get("status") or {})}
        else:
            rest = {k: v for k, v in patch.items() if k != "status"}
            rest["metadata"] = {k: v for k, v in (patch.get("metadata") or {}).items() if k != "resourceVersion"}
            new = merge(current, rest)
        return self._store(key, new)

    async def replace(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """PUT, conditional on the manifest's resourceVersion; status is kept (its own subresource)."""
        key = self._key(manifest)
        call = self._call("replace", key[0], key[1], key[2], manifest)
        current = self.objects.get(key)
        if current is None:
            self._refuse(call, 404, f"{key[0]} {key[2]} not found")
        version = manifest["metadata"].get("resourceVersion")
        if version is not None and version != current["metadata"]["resourceVersion"]:
            self._refuse(call, 409, f"the object has been modified: {version} is not the current version")
        new = copy.deepcopy(manifest)
        new.pop("status", None)
        if "status" in current:
            new["status"] = copy.deepcopy(current["status"])
        return self._store(key, new)

    async def delete(self, res: type[NamespacedResource], namespace: str | None, name: str) -> bool:
        kind = kind_of(res)
        self._call("delete", kind, namespace, name)
        key = (kind, namespace or "", name)
        if key not in self.objects:
            return False
        self._remove(key)
        return True


# ---------------------------------------------------------------------------------------------- time, analysis


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.moment = start

    def now(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


def patch_clock(monkeypatch: pytest.MonkeyPatch, fake: FakeClock) -> list[str]:
    """Replace `clock.now` wherever it was imported by name (and in `clock` itself, for `now_iso`)."""
    original = clock.now
    patched = []
    for name, module in list(sys.modules.items()):
        if name.startswith("adapterops") and getattr(module, "now", None) is original:
            monkeypatch.setattr(module, "now", fake.now)
            patched.append(name)
    return patched


@dataclass
class AnalysisCall:
    stable: RevisionStatus
    canary: RevisionStatus
    window_seconds: float
    judge: Any


class FakeAnalysis:
    """Stands in for `analyse`: one verdict per metric the spec configures, as the test scripted it
    (Inconclusive when it did not: no data). The statistics have their own tests."""

    def __init__(self) -> None:
        self.verdicts: dict[str, Verdict] = {}
        self.calls: list[AnalysisCall] = []
        self.tokens_per_second: dict[str, float] = {}
        self.throughput_windows: list[float] = []

    def script(self, **verdicts: Verdict) -> None:
        self.verdicts = dict(verdicts)

    async def __call__(
        self,
        http: Any,
        spec: ModelDeploymentSpec,
        prometheus_url: str,
        namespace: str,
        stable: RevisionStatus,
        canary: RevisionStatus,
        window_seconds: float,
        judge: Any,
        latency_test: Any = None,
        now: float | None = None,
    ) -> list[MetricVerdict]:
        a = spec.canary.analysis
        configured = [n for n, m in (("latency", a.latency), ("errorRate", a.error_rate), ("judge", a.judge)) if m]
        unknown = set(self.verdicts) - set(configured)
        assert not unknown, f"scripted verdicts for metrics the spec does not configure: {unknown}"
        self.calls.append(AnalysisCall(stable, canary, window_seconds, judge))
        out = []
        for name in configured:
            verdict = self.verdicts.get(name, "Inconclusive")
            canary_value = {"Pass": 0.1, "Fail": 0.9, "Inconclusive": None}[verdict]
            out.append(MetricVerdict(name, verdict, 0.1, canary_value, 100, "scripted", f"{name}: scripted {verdict}"))
        return out

    async def output_throughput(
        self, http: Any, spec: ModelDeploymentSpec, prometheus_url: str, sides: Any, window_seconds: float
    ) -> dict[tuple[str, str], float | None]:
        """Output tokens/s per (role, revision), as scripted in `tokens_per_second` by role (absent: no data)."""
        self.throughput_windows.append(window_seconds)
        revs = (("stable", sides.stable), ("canary", sides.canary))
        return {(role, rev.revision): self.tokens_per_second.get(role) for role, rev in revs if rev is not None}


@dataclass
class FakePairedJudge:
    """Stands in for `PairedJudge`: records what the reconciler asks of it, judges nothing."""

    prompts: list[dict[str, Any]]
    judge: Any
    api_key: str | None
    samples: int
    problem: str | None = None
    pairs: list[tuple[float | None, float | None]] = field(default_factory=list)
    compared: str = ""
    started: list[tuple[str, str, str, str]] = field(default_factory=list)
    stopped: bool = False

    def start(self, stable_url: str, canary_url: str, stable_model: str, canary_model: str) -> None:
        self.started.append((stable_url, canary_url, stable_model, canary_model))

    def stop(self) -> None:
        self.stopped = True


class FakeAgents:
    """Stands in for the pods' adapter agents (`AgentProbe`): an agent loads what its pod's annotation asks for
    by the next look, unless the test holds it (`hold`: still loading) or makes it fail (`fail`: an error, and
    what it had stays loaded)."""

    def __init__(self, client: FakeClient) -> None:
        self.client = client
        self.loaded: dict[str, dict[str, str]] = {}  # pod -> served name -> version
        self.failing: dict[str, str] = {}  # pod -> error
        self.held: set[str] = set()
        self.asked: list[str] = []  # pod IPs probed

    def hold(self, *pods: str) -> None:
        self.held |= set(pods)

    def release(self) -> None:
        self.held.clear()
        self.failing.clear()

    def fail(self, pod: str, error: str) -> None:
        self.failing[pod] = error

    async def __call__(self, ip: str) -> AgentReport:
        self.asked.append(ip)
        pod = next((p for p in self.client.stored(POD) if (p.get("status") or {}).get("podIP") == ip), None)
        if pod is None:
            return AgentReport({}, "adapter agent not reachable: ConnectError")
        name = pod["metadata"]["name"]
        wanted = (pod["metadata"].get("annotations") or {}).get(builders.ANNOTATION_ADAPTERS)
        if name not in self.failing and name not in self.held and wanted is not None:
            self.loaded[name] = versions(json.loads(wanted))
        return AgentReport(dict(self.loaded.get(name, {})), self.failing.get(name, ""))

    async def close(self) -> None:
        pass


class UnusedHttp:
    """In place of the reconciler's httpx.AsyncClient, which only the analysis and the judge use."""

    async def aclose(self) -> None:
        pass


class RecordingQueue(WorkQueue):
    """The work queue, recording what is queued instead of running it (the test drives the reconciles)."""

    def __init__(self) -> None:
        super().__init__()
        self.added: list[Key] = []
        self.later: list[tuple[Key, float]] = []

    def add(self, key: Key) -> None:
        self.added.append(key)

    def add_after(self, key: Key, seconds: float) -> None:
        self.later.append((key, seconds))


# ---------------------------------------------------------------------------------------------- specs


def md_spec(
    adapter: str = "pvc://work/adapters/v1",
    *,
    steps: tuple[int, ...] = (50, 100),
    interval: str = "30s",
    failure_limit: int = 1,
    replicas: int = 2,
    route: str | None = None,
    **canary: Any,
) -> dict[str, Any]:
    """A ModelDeployment spec analysed on latency and error rate (as the cluster test's)."""
    traffic = {"mode": "httpRoute", "httpRouteRef": {"name": route}} if route else {"mode": "replicas"}
    return {
        "baseModel": {"name": "tiny-llama"},
        "runtime": {"engine": "nim", "gpuType": "H100", "replicas": replicas},
        "adapters": [{"name": "commerce", "uri": adapter}],
        "canary": {
            "steps": list(steps),
            "interval": interval,
            "traffic": traffic,
            "analysis": {
                "latency": {"quantile": 0.9, "maxIncreasePercent": 30},
                "errorRate": {"maxPercent": 5},
                "failureLimit": failure_limit,
            },
            **canary,
        },
    }


# ---------------------------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class PostedEvent:
    reason: str
    message: str
    type: str


@dataclass
class Reconciled:
    """One reconcile: what it returned, the status the object carries after it, what it posted and called."""

    result: float | None
    written_status: ModelDeploymentStatus | None  # None: the object has none (or is gone)
    events: list[PostedEvent]
    calls: list[Call]

    @property
    def status(self) -> ModelDeploymentStatus:
        assert self.written_status is not None, "the ModelDeployment has no status"
        return self.written_status

    @property
    def stable(self) -> RevisionStatus:
        assert self.status.stable is not None, "no stable revision"
        return self.status.stable

    @property
    def canary(self) -> RevisionStatus:
        assert self.status.canary is not None, "no canary"
        return self.status.canary

    @property
    def analysis(self) -> AnalysisStatus:
        assert self.status.analysis is not None, "no analysis"
        return self.status.analysis

    def condition(self, type_: str) -> Condition:
        found = get_condition(self.status.conditions, type_)
        assert found is not None, f"no {type_} condition in {self.status.conditions}"
        return found

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]

    @property
    def wrote_status(self) -> bool:
        return any(c.subresource == "status" and c.error is None for c in self.calls)


class World:
    """One namespace of a cluster with the ModelDeployment reconciler in it (see the module's docstring)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, config: Config = CONFIG) -> None:
        self.client = FakeClient()
        self.clock = FakeClock()
        self.analysis = FakeAnalysis()
        self.judges: list[FakePairedJudge] = []
        self.config = config
        patched = patch_clock(monkeypatch, self.clock)
        assert {"adapterops.deploy.canary", "adapterops.deploy.status", "adapterops.runtime.clock"} <= set(patched)
        monkeypatch.setattr("adapterops.deploy.reconciler.analyse", self.analysis)
        monkeypatch.setattr("adapterops.deploy.reconciler.output_throughput", self.analysis.output_throughput)
        monkeypatch.setattr("adapterops.deploy.judging.PairedJudge", self._new_judge)
        # Its HTTP client only serves the (fake) analysis and judge; a real one costs a TLS context each.
        monkeypatch.setattr("adapterops.deploy.reconciler.httpx", SimpleNamespace(AsyncClient=UnusedHttp))
        self.agents = FakeAgents(self.client)
        monkeypatch.setattr("adapterops.deploy.inplace.AgentProbe", lambda: self.agents)
        self.queue = RecordingQueue()
        self.reconciler = self._start()

    def _new_judge(self, *args: Any, **kwargs: Any) -> FakePairedJudge:
        judge = FakePairedJudge(*args, **kwargs)
        self.judges.append(judge)
        return judge

    def _start(self) -> ModelDeploymentReconciler:
        informers = Informers(self.client, ())
        status = StatusWriter(self.client, MODELDEPLOYMENT, self.queue, self.config.status_write_seconds)
        ctx = Context(self.client, self.config, self.queue, status, EventRecorder(self.client), informers)
        self._seen: dict[str, dict[str, dict[str, Any]]] = {}  # informer name -> uid -> object last fed
        return ModelDeploymentReconciler(ctx)

    def queue_subscribed_to_pods(self) -> bool:
        """The serving pods' informer wakes this reconciler's queue (readiness needs no polling)."""
        return self.queue.add in self.reconciler.pods.subscribers

    async def restart(self) -> None:
        """The operator process restarts: new reconciler, informers, queue and status writer; same API."""
        await self.reconciler.close()
        self.queue = RecordingQueue()
        self.reconciler = self._start()

    async def close(self) -> None:
        await self.reconciler.close()

    # ------------------------------------------------------------------ informers

    def sync(self) -> None:
        """Deliver every change since the last sync to the informers, as watch events (a first sync lists),
        decoded as lightkube decodes what the API server sends."""
        for name, informer in self.reconciler.ctx.informers.by_name.items():
            self._feed(name, informer)

    def _feed(self, name: str, informer: Informer) -> None:
        kind = kind_of(informer.res)
        current = {o["metadata"]["uid"]: o for o in self.client.stored(kind, informer.labels)}
        seen = self._seen.get(name)
        if seen is None:
            informer._replace("", [from_dict(copy.deepcopy(o)) for o in current.values()])
        else:
            for uid, obj in current.items():
                if uid not in seen or seen[uid]["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]:
                    informer._remember("", from_dict(copy.deepcopy(obj)))
            for uid, obj in seen.items():
                if uid not in current:
                    informer._forget("", from_dict(copy.deepcopy(obj)))
        self._seen[name] = current

    # ------------------------------------------------------------------ what a user and the cluster do

    def create(self, spec: dict[str, Any], name: str = NAME, annotations: dict[str, str] | None = None) -> Key:
        meta: dict[str, Any] = {"name": name, "namespace": NAMESPACE}
        if annotations:
            meta["annotations"] = annotations
        self.client.put(
            {"apiVersion": MODELDEPLOYMENT.api_version, "kind": "ModelDeployment", "metadata": meta, "spec": spec}
        )
        return (NAMESPACE, name)

    def body(self, name: str = NAME) -> dict[str, Any]:
        found = self.client.get_object(MD, name)
        assert found is not None, f"no ModelDeployment {name}"
        return found

    def edit(self, spec_patch: dict[str, Any], name: str = NAME) -> None:
        """`kubectl patch --type=merge -p '{"spec": ...}'`."""
        body = self.body(name)
        self.client.put({**body, "spec": merge(body["spec"], spec_patch)})

    def annotate(self, annotations: dict[str, str | None], name: str = NAME) -> None:
        body = self.body(name)
        body["metadata"]["annotations"] = merge(body["metadata"].get("annotations") or {}, annotations)
        self.client.put(body)

    def finetunejob(self, name: str, champion: str | None, state: str = "Succeeded") -> None:
        """A FineTuneJob's status as its reconciler writes it: the champion's adapter once the sweep is done."""
        status: dict[str, Any] = {"state": state}
        if champion is not None:
            status["champion"] = {"trial": f"{name}-t00", "adapterUri": champion}
        body = self.client.get_object(FTJ, name) or {
            "apiVersion": FINETUNEJOB.api_version,
            "kind": "FineTuneJob",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {},
        }
        self.client.put({**body, "status": status})

    def route(self, name: str = "agent") -> None:
        self.client.put(
            {
                "apiVersion": HTTPROUTE.api_version,
                "kind": "HTTPRoute",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {
                    "parentRefs": [{"name": "gateway"}],
                    "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}]}],
                },
            }
        )

    def backends(self, name: str = "agent") -> list[tuple[str, int]]:
        route = self.client.get_object(ROUTE, name)
        assert route is not None
        return [(b["name"], b["weight"]) for b in route["spec"]["rules"][0].get("backendRefs", [])]

    def run_pods(self, revision: str, ready: int | None = None, name: str = NAME) -> None:
        """The kubelet and the Deployment controller: the revision's Deployment gets spec.replicas pods,
        the first `ready` of them (default: all) Ready with an IP, and its status says how many are ready."""
        dname = builders.revision_name(name, revision)
        deployment = self.client.get_object(DEPLOYMENT, dname)
        assert deployment is not None, f"no Deployment for revision {revision}"
        replicas = deployment["spec"]["replicas"]
        ready = replicas if ready is None else ready
        assert ready <= replicas, f"{ready} ready of {replicas} replicas"
        owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": dname, "uid": deployment["metadata"]["uid"]}
        template = deployment["spec"]["template"]
        subnet = sum(map(ord, revision)) % 250
        for i in range(replicas):
            status: dict[str, Any] = {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True" if i < ready else "False"}],
            }
            if i < ready:
                status["podIP"] = f"10.{subnet}.0.{i + 1}"
            meta = {**template["metadata"], "name": f"{dname}-{i}", "namespace": NAMESPACE, "ownerReferences": [owner]}
            existing = self.client.get_object(POD, meta["name"])
            if existing is not None and existing["metadata"].get("annotations"):  # the operator's, kept
                meta["annotations"] = {**(meta.get("annotations") or {}), **existing["metadata"]["annotations"]}
            self.client.put(
                {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"], "status": status}
            )
        for pod in self.client.of_kind(POD, {builders.LABEL_REVISION: revision}):
            if int(pod["metadata"]["name"].rsplit("-", 1)[1]) >= replicas:
                self.client.remove(POD, pod["metadata"]["name"])
        deployment["status"] = {"replicas": replicas, "readyReplicas": ready}
        self.client.put(deployment)

    # ------------------------------------------------------------------ what the operator did

    def status(self, name: str = NAME) -> ModelDeploymentStatus | None:
        found = self.client.get_object(MD, name)
        if found is None or "status" not in found:
            return None
        return ModelDeploymentStatus.model_validate(found["status"])

    def deployments(self, name: str = NAME) -> dict[str, int]:
        """revision -> replicas of the serving Deployments."""
        return {
            d["metadata"]["labels"][builders.LABEL_REVISION]: d["spec"]["replicas"]
            for d in self.client.of_kind(DEPLOYMENT, {builders.LABEL_MD: name})
        }

    def services(self, name: str = NAME) -> list[str]:
        return sorted(s["metadata"]["name"] for s in self.client.of_kind(SERVICE, {builders.LABEL_MD: name}))

    def events(self, reason: str | None = None) -> list[PostedEvent]:
        """Every Event posted so far, oldest first."""
        return [
            PostedEvent(e["reason"], e["message"], e["type"])
            for e in sorted(self.client.stored(EVENT), key=lambda e: int(e["metadata"]["resourceVersion"]))
            if reason in (None, e["reason"])
        ]

    async def reconcile(self, name: str = NAME, sync: bool = True) -> Reconciled:
        """Run the real reconcile once (after delivering the store's changes to the informers, unless
        `sync` is False) and say what it did."""
        if sync:
            self.sync()
        before_calls, before_events = len(self.client.calls), len(self.events())
        result = await self.reconciler.reconcile((NAMESPACE, name))
        return Reconciled(result, self.status(name), self.events()[before_events:], self.client.calls[before_calls:])
