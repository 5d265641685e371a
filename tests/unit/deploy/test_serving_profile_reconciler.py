"""The ServingProfile reconciler over the in-memory API of deploy_fixtures: candidates start at most
`parallelism` at a time, in order; a Ready candidate gets its load Job aimed at its pod; a finished load is
measured after the last scrapes; children are deleted only once the stored status holds the result (a
refused status write leaves them, and the next look measures again); a candidate never Ready is failed;
the profile ends with the choice. Prometheus is replaced by a table of measurements per candidate."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from deploy_fixtures import (
    DEPLOYMENT,
    EVENT,
    NAMESPACE,
    FakeClient,
    FakeClock,
    RecordingQueue,
    kind_name,
    patch_clock,
)
from lightkube.codecs import from_dict

from adapterops.api.kinds import SERVINGPROFILE
from adapterops.api.servingprofile import ServingProfileStatus
from adapterops.config import Config, GpuClass
from adapterops.runtime.context import Context, Informers
from adapterops.runtime.events import EventRecorder
from adapterops.runtime.status import StatusWriter
from adapterops.servingprofile import builders
from adapterops.servingprofile.choice import Measurement
from adapterops.servingprofile.reconciler import ServingProfileReconciler
from testworld.engines import nim_profiles

PROFILE = kind_name(SERVINGPROFILE)
JOB = "batch/v1/Job"
NAME = "tp-gpu"
CONFIG = Config(
    gpu_classes={
        gpu: GpuClass.model_validate(
            {"nodeSelector": {"nvidia.com/gpu.product": product}, "pricePerHour": price, "memoryGiB": 80}
        )
        for gpu, product, price in (("H100", "NVIDIA-H100-80GB-HBM3", 4.5), ("B200", "NVIDIA-B200", 7.8))
    },
    status_write_seconds=0,
    nim_profiles=nim_profiles(),
    prometheus_scrape_seconds=1,
)
SPEC: dict[str, Any] = {
    "baseModel": {"name": "tiny-llama"},
    "adapters": [{"name": "commerce", "uri": "pvc://work/adapters/v1"}],
    "candidates": [
        {"tensorParallelSize": 1, "gpuType": "H100"},
        {"tensorParallelSize": 4, "gpuType": "H100"},
        {"tensorParallelSize": 1, "gpuType": "B200"},
    ],
    "load": {"prompts": "configmap://prompts/p.jsonl", "requestsPerSecond": 10, "durationSeconds": 60},
    "slo": {"latency": {"maxSeconds": 2.0}},
    "parallelism": 2,
    "candidateTimeoutSeconds": 600,
}
P95 = {"nim-tp1-h100": 1.8, "nim-tp4-h100": 2.6, "nim-tp1-b200": 1.1}


class ProfileWorld:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.client = FakeClient()
        self.clock = FakeClock()
        patch_clock(monkeypatch, self.clock)
        self.queue = RecordingQueue()
        self.measured: list[str] = []
        monkeypatch.setattr("adapterops.servingprofile.reconciler.measure", self._measure)
        informers = Informers(self.client, ())
        status = StatusWriter(self.client, SERVINGPROFILE, self.queue, 0)
        ctx = Context(self.client, CONFIG, self.queue, status, EventRecorder(self.client), informers)
        self.reconciler = ServingProfileReconciler(ctx)
        self._seen: dict[str, dict[str, dict[str, Any]]] = {}
        self.most_deployments = 0

    async def _measure(self, _http: Any, _url: str, _line: str, _ns: str, revision: str, start: float, end: float,
                       _q: float) -> Measurement:  # fmt: skip
        name = self._name_of(revision)
        self.measured.append(name)
        p95, n = P95[name], 600.0
        return Measurement(end - start, n, n * p95 / 1.5, n * 0.1, n, n * 50, 0.0, n, p95 / 1.5, p95, p95)

    def _name_of(self, revision: str) -> str:
        status = ServingProfileStatus.model_validate(self.body().get("status") or {})
        rows = {r.revision: r.name for r in status.candidates}
        return rows[revision]

    def sync(self) -> None:
        for informer in self.reconciler.ctx.informers.by_name.values():
            rd = informer.res._api_info.resource
            kind = f"{rd.group}/{rd.version}/{rd.kind}".lstrip("/")
            current = {o["metadata"]["uid"]: o for o in self.client.stored(kind, informer.labels)}
            informer._replace("", [from_dict(copy.deepcopy(o)) for o in current.values()])

    async def reconcile(self) -> Any:
        self.sync()
        result = await self.reconciler.reconcile((NAMESPACE, NAME))
        self.most_deployments = max(self.most_deployments, len(self.client.of_kind(DEPLOYMENT)))
        return result

    def create(self, spec: dict[str, Any] = SPEC) -> None:
        meta = {"name": NAME, "namespace": NAMESPACE}
        self.client.put(
            {"apiVersion": SERVINGPROFILE.api_version, "kind": "ServingProfile", "metadata": meta, "spec": spec}
        )

    def body(self) -> dict[str, Any]:
        found = self.client.get_object(PROFILE, NAME)
        assert found is not None
        return found

    def status(self) -> ServingProfileStatus:
        return ServingProfileStatus.model_validate(self.body().get("status") or {})

    def states(self) -> dict[str, str]:
        return {r.name: r.state for r in self.status().candidates}

    def candidate_deployments(self) -> dict[str, dict[str, Any]]:
        return {d["metadata"]["labels"][builders.LABEL_CANDIDATE]: d for d in self.client.of_kind(DEPLOYMENT)}

    def jobs(self) -> dict[str, dict[str, Any]]:
        return {j["metadata"]["labels"][builders.LABEL_CANDIDATE]: j for j in self.client.of_kind(JOB)}

    def ready(self, candidate: str, ip: str) -> None:
        """The kubelet: the candidate's pod Ready with an IP."""
        d = self.candidate_deployments()[candidate]
        meta = {**d["spec"]["template"]["metadata"], "name": f"{d['metadata']['name']}-0", "namespace": NAMESPACE}
        status = {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}
        self.client.put(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": meta,
                "spec": d["spec"]["template"]["spec"],
                "status": status,
            }
        )

    def load_done(self, candidate: str, start: float, end: float) -> None:
        """The Job controller and the kubelet: the load pod exited 0 with its report; the Job is Complete."""
        job = self.jobs()[candidate]
        report = json.dumps({"start": start, "end": end, "sent": 600, "ok": 600, "errors": 0})
        meta = {**job["spec"]["template"]["metadata"], "name": f"{job['metadata']['name']}-x", "namespace": NAMESPACE}
        terminated = {"exitCode": 0, "reason": "Completed", "message": report}
        container = {"name": "load", "ready": False, "restartCount": 0, "image": "x", "imageID": ""}
        status = {"phase": "Succeeded", "containerStatuses": [{**container, "state": {"terminated": terminated}}]}
        self.client.put(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": meta,
                "spec": job["spec"]["template"]["spec"],
                "status": status,
            }
        )
        job["status"] = {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}
        self.client.put(job)

    def events(self, reason: str) -> list[str]:
        return [e["message"] for e in self.client.stored(EVENT) if e["reason"] == reason]

    async def close(self) -> None:
        await self.reconciler.close()


@pytest.fixture
async def world(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ProfileWorld]:
    w = ProfileWorld(monkeypatch)
    yield w
    await w.close()


async def measure(world: ProfileWorld, candidate: str, ip: str) -> None:
    """One candidate through Ready, load, the last scrapes and its measurement."""
    world.ready(candidate, ip)
    await world.reconcile()
    job = world.jobs()[candidate]
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--url") + 1] == f"http://{ip}:8000"
    t = world.clock.now().timestamp()
    world.load_done(candidate, t - 60, t)
    await world.reconcile()
    assert world.states()[candidate] == "Measuring"  # the window's last requests are not scraped yet
    world.clock.advance(5)
    await world.reconcile()
    assert world.states()[candidate] == "Measured"
    assert candidate in world.candidate_deployments(), "deleted before its result was stored"


async def test_candidates_are_measured_in_order_a_few_at_a_time_and_the_cheapest_meeting_the_slo_is_chosen(
    world: ProfileWorld,
) -> None:
    world.create()
    await world.reconcile()
    assert world.states() == {"nim-tp1-h100": "Deploying", "nim-tp4-h100": "Deploying", "nim-tp1-b200": "Pending"}
    assert set(world.candidate_deployments()) == {"nim-tp1-h100", "nim-tp4-h100"}
    await measure(world, "nim-tp1-h100", "10.0.0.1")
    await world.reconcile()  # the result is stored: its children go
    assert set(world.candidate_deployments()) == {"nim-tp4-h100"} and "nim-tp1-h100" not in world.jobs()
    await world.reconcile()  # the next candidate starts once they are gone: they hold their GPUs until then
    assert set(world.candidate_deployments()) == {"nim-tp4-h100", "nim-tp1-b200"}
    await measure(world, "nim-tp4-h100", "10.0.0.2")
    await measure(world, "nim-tp1-b200", "10.0.0.3")
    await world.reconcile()
    status = world.status()
    assert status.state == "Succeeded" and status.choice is not None and status.choice.candidate == "nim-tp1-h100"
    assert [r.chosen for r in status.candidates] == [True, False, False]
    assert status.candidates[1].reason == "misses the SLO: p95 2.6s > 2s"
    assert status.candidates[2].reason.startswith("meets the SLO but costs more")
    assert world.client.of_kind(DEPLOYMENT) == [] and world.client.of_kind(JOB) == []
    assert world.most_deployments == 2
    assert world.measured == ["nim-tp1-h100", "nim-tp4-h100", "nim-tp1-b200"]
    assert len(world.events("CandidateMeasured")) == 3 and world.events("ChoiceMade")


async def test_a_refused_status_write_keeps_the_children_and_the_next_look_measures_again(world: ProfileWorld) -> None:
    world.create({**SPEC, "candidates": SPEC["candidates"][:1]})
    await world.reconcile()
    world.ready("nim-tp1-h100", "10.0.0.1")
    await world.reconcile()
    t = world.clock.now().timestamp()
    world.load_done("nim-tp1-h100", t - 60, t)
    world.clock.advance(5)
    world.client.fail("patch_merge", PROFILE, code=409)  # the status write of the measured result is refused
    await world.reconcile()
    assert world.states() == {"nim-tp1-h100": "Loading"}  # what was stored before
    await world.reconcile()  # nothing deleted: the Job and its report are still there
    assert world.measured == ["nim-tp1-h100", "nim-tp1-h100"] and world.status().state == "Succeeded"
    await world.reconcile()
    assert world.client.of_kind(DEPLOYMENT) == [] and world.client.of_kind(JOB) == []


async def test_a_candidate_never_ready_is_failed_after_its_timeout(world: ProfileWorld) -> None:
    world.create({**SPEC, "candidates": SPEC["candidates"][:1]})
    await world.reconcile()
    world.clock.advance(599)
    await world.reconcile()
    assert world.states() == {"nim-tp1-h100": "Deploying"}
    world.clock.advance(2)
    await world.reconcile()
    status = world.status()
    assert status.candidates[0].state == "Failed"
    assert "not Ready within candidateTimeoutSeconds (600s)" in status.candidates[0].reason
    assert status.state == "Failed" and world.events("NoCandidateMeetsSLO") and world.events("CandidateFailed")
    await world.reconcile()
    assert world.client.of_kind(DEPLOYMENT) == []


async def test_a_changed_spec_measures_again_and_removes_the_old_candidates(world: ProfileWorld) -> None:
    world.create({**SPEC, "candidates": SPEC["candidates"][:1]})
    await world.reconcile()
    old = world.candidate_deployments()["nim-tp1-h100"]["metadata"]["name"]
    faster = {**SPEC, "candidates": SPEC["candidates"][:1], "load": {**SPEC["load"], "requestsPerSecond": 20}}
    world.create(faster)
    await world.reconcile()
    names = [d["metadata"]["name"] for d in world.client.of_kind(DEPLOYMENT)]
    assert old not in names and len(names) == 1 and world.states() == {"nim-tp1-h100": "Deploying"}
