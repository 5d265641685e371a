"""A spec naming a URL the operator (or a trial pod) would call is refused unless the cluster admin
allowed it: Accepted=False names the field, the URL and what is allowed, a Warning Event says the same,
and nothing is created. FineTuneJob judge endpoints go through the same check."""

from __future__ import annotations

from typing import Any

import pytest
from deploy_fixtures import CONFIG, DEPLOYMENT, World, md_spec

from adapterops.config import Config
from adapterops.finetune.acceptance import accept as accept_finetunejob
from adapterops.runtime.acceptance import Refusal

METADATA = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


def with_prometheus(url: str) -> dict[str, Any]:
    spec = md_spec()
    spec["canary"]["analysis"]["latency"]["prometheusUrl"] = url
    return spec


def with_judge(endpoint: str) -> dict[str, Any]:
    spec = md_spec()
    spec["canary"]["analysis"]["judge"] = {
        "dataset": "configmap://prompts/prompts.jsonl",
        "judge": {"endpoint": endpoint, "model": "judge"},
    }
    return spec


def finetunejob(endpoint: str) -> dict[str, Any]:
    return {
        "baseModel": {"name": "tiny", "uri": "/models/tiny"},
        "backend": "hf",  # nemo trains only the base models with a NeMo recipe
        "dataset": {"train": "/data/train.jsonl"},
        "training": {"maxSteps": 10},
        "objective": {"metric": "judgeScore", "goal": "maximize"},
        "evaluation": {"dataset": "/data/challenge.jsonl", "judge": {"endpoint": endpoint, "model": "j"}},
        "output": {"uri": "pvc://out/adapters"},
        "resources": {"gpuType": "H100"},
        "sweep": {"maxTrials": 1, "parameters": {"training.learningRate": {"values": [1e-4]}}},
    }


def config(**settings: Any) -> Config:
    return CONFIG.model_copy(update=settings)


@pytest.mark.parametrize(
    "url",
    [
        METADATA,
        "http://prometheus-operated.monitoring:9090@169.254.169.254/",  # the allowed host as a user name
        "http://prometheus-operated.monitoring:9091",  # the allowed host, another port
        "https://prometheus-operated.monitoring:9090",
    ],
)
async def test_a_prometheus_url_outside_the_allowlist_is_refused_and_nothing_is_created(world: World, url: str) -> None:
    world.create(with_prometheus(url))
    refused = await world.reconcile()
    accepted = refused.condition("Accepted")
    assert accepted.status == "False" and accepted.reason == "PrometheusUrlNotAllowed"
    assert accepted.message.startswith(f"spec.canary.analysis.latency.prometheusUrl: {url!r} ")
    assert "this cluster allows Prometheus under: http://prometheus-operated.monitoring:9090" in accepted.message
    assert "ADAPTEROPS_ALLOWED_PROMETHEUS_URLS" in accepted.message
    assert [(e.reason, e.type) for e in refused.events] == [("PrometheusUrlNotAllowed", "Warning")]
    assert world.client.of_kind(DEPLOYMENT) == [] and world.analysis.calls == []


async def test_the_operators_own_prometheus_and_allowed_prefixes_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch, config(allowed_prometheus_urls=("http://thanos-query.monitoring:9090",)))
    try:
        for url in (
            CONFIG.prometheus_url,
            "http://thanos-query.monitoring:9090/team-a",
            "HTTP://Thanos-Query.monitoring:9090",
        ):
            world.create(with_prometheus(url))
            assert (await world.reconcile()).condition("Accepted").status == "True", url
    finally:
        await world.close()


async def test_a_modeldeployment_judge_outside_the_allowlist_is_refused(world: World) -> None:
    world.create(with_judge("http://admin-api.kube-system:8080/v1"))
    refused = await world.reconcile()
    accepted = refused.condition("Accepted")
    assert accepted.status == "False" and accepted.reason == "JudgeEndpointNotAllowed"
    assert accepted.message == (
        "spec.canary.analysis.judge.judge.endpoint: 'http://admin-api.kube-system:8080/v1' is not under an allowed "
        "prefix; this cluster allows judge endpoints under: http://judge.invalid/v1 (set by the cluster admin: "
        "ADAPTEROPS_ALLOWED_JUDGE_ENDPOINTS)"
    )
    assert world.client.of_kind(DEPLOYMENT) == [] and world.judges == []


async def test_narrowing_the_allowlist_refuses_a_running_canary_and_stops_its_judge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check runs on every reconcile: an operator restarted with a narrower list refuses at once."""
    world = World(monkeypatch)
    try:
        world.client.put(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "prompts", "namespace": "ml"},
                "data": {"prompts.jsonl": '{"prompt": "find red shoes"}\n'},
            }
        )
        world.create(with_judge("http://judge.invalid/v1"))
        first = await world.reconcile()
        world.run_pods(first.stable.revision)
        await world.reconcile()
        world.edit({"adapters": [{"name": "commerce", "uri": "pvc://work/adapters/v2"}]})
        started = await world.reconcile()
        world.run_pods(started.canary.revision)
        await world.reconcile()
        judge = world.judges[-1]
        assert judge.started and not judge.stopped
        world.config = config(allowed_judge_endpoints=())
        await world.restart()
        refused = await world.reconcile()
        assert refused.condition("Accepted").reason == "JudgeEndpointNotAllowed"
        assert "allows judge endpoints under: none" in refused.condition("Accepted").message
        assert len(world.judges) == 1 and judge.stopped  # the old judge is not running, no new one started
    finally:
        await world.close()


def test_a_finetunejob_judge_outside_the_allowlist_is_refused_naming_the_field() -> None:
    with pytest.raises(Refusal) as caught:
        accept_finetunejob("sweep", finetunejob("http://judge.invalid@10.0.0.1/v1"), CONFIG)
    assert caught.value.reason == "JudgeEndpointNotAllowed"
    assert caught.value.message.startswith(
        "spec.evaluation.judge.endpoint: 'http://judge.invalid@10.0.0.1/v1' has userinfo"
    )
    assert "allows judge endpoints under: http://judge.invalid/v1" in caught.value.message
    with pytest.raises(Refusal, match="allows judge endpoints under: none"):
        accept_finetunejob(
            "sweep", finetunejob("https://integrate.api.nvidia.com/v1"), config(allowed_judge_endpoints=())
        )


def test_a_finetunejob_judge_under_an_allowed_prefix_is_accepted() -> None:
    accepted = accept_finetunejob("sweep", finetunejob("http://judge.invalid/v1/"), CONFIG)
    assert accepted.spec.evaluation is not None and len(accepted.trials) == 1
    anything = config(allowed_judge_endpoints=("*",))
    assert accept_finetunejob("sweep", finetunejob("http://10.0.0.1:8000/v1"), anything).trials
