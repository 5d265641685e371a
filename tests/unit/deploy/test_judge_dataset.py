"""The canary judge's s3:// prompts are read with the ModelDeployment's own storage Secret (never the
operator's environment), only from an S3 endpoint the admin allowed, and never past a size cap: a larger
object makes the judge metric Inconclusive with a Warning Event, not an out-of-memory operator. Against
a real S3 server (versitygw, as tests/train/test_train_s3.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_fixtures import CONFIG, KEY, NAMESPACE, FakeClient, World, md_spec

from adapterops.analysis.providers.judge import PairedJudge
from adapterops.analysis.run import analyse
from adapterops.deploy.dataset import DatasetError, read_dataset
from adapterops.runtime.acceptance import REFUSED_RETRY_SECONDS
from testworld.listener import Listener
from testworld.s3 import ACCESS_KEY, REGION, SECRET_KEY, LocalS3

CAP = 4096
ROWS = [{"prompt": f"find red shoes, size {n}"} for n in range(20)]
PROMPTS = "".join(json.dumps(r) + "\n" for r in ROWS).encode()


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    with LocalS3(tmp_path_factory.mktemp("s3") / "root") as server:
        server.create_bucket("tenant")
        yield server


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener() as server:
        yield server


@pytest.fixture
async def world(monkeypatch: pytest.MonkeyPatch, s3: LocalS3) -> AsyncIterator[World]:
    # The operator's own environment is an identity that could read the bucket; it must not be used.
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    config = CONFIG.model_copy(update={"allowed_s3_endpoints": (s3.endpoint,), "judge_dataset_max_bytes": CAP})
    w = World(monkeypatch, config)
    yield w
    await w.close()


def put_secret(world: World, name: str, values: dict[str, str]) -> None:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    world.client.put(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NAMESPACE}, "data": data}
    )


def tenant_keys(s3: LocalS3, **extra: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": s3.endpoint,
        **extra,
    }


def judged_spec(dataset: str = "s3://tenant/prompts.jsonl", secret: str | None = "tenant-storage") -> dict[str, Any]:
    spec = md_spec()
    spec["canary"]["analysis"] = {
        "judge": {"dataset": dataset, "judge": {"endpoint": "http://judge.invalid/v1", "model": "judge"}}
    }
    if secret is not None:
        spec["storageSecretRef"] = {"name": secret}
    return spec


async def to_canary(world: World, spec: dict[str, Any]) -> None:
    """Serve the first revision, then change the adapter: a canary with its pods Ready is analysed."""
    world.create(spec)
    first = await world.reconcile()
    world.run_pods(first.stable.revision)
    await world.reconcile()
    world.edit({"adapters": [{"name": "commerce", "uri": "pvc://work/adapters/v2"}]})
    started = await world.reconcile()
    world.run_pods(started.canary.revision)


async def test_s3_prompts_are_read_with_the_modeldeployments_own_secret(world: World, s3: LocalS3) -> None:
    s3.client().put_object(Bucket="tenant", Key="prompts.jsonl", Body=PROMPTS)
    put_secret(world, "tenant-storage", tenant_keys(s3))
    await to_canary(world, judged_spec())
    await world.reconcile()
    judge = world.judges[-1]
    assert judge.problem is None and sorted(r["prompt"] for r in judge.prompts) == sorted(r["prompt"] for r in ROWS)
    assert judge.started and world.events("PairedJudgingNotStarted") == []


async def test_a_secret_with_other_keys_cannot_read_even_when_the_operators_environment_could(
    world: World, s3: LocalS3
) -> None:
    s3.client().put_object(Bucket="tenant", Key="prompts.jsonl", Body=PROMPTS)
    put_secret(world, "tenant-storage", tenant_keys(s3, AWS_SECRET_ACCESS_KEY="another-tenants-guess"))
    await to_canary(world, judged_spec())
    await world.reconcile()
    problem = world.judges[-1].problem
    assert problem is not None and "S3 refused the read (" in problem and world.judges[-1].prompts == []


async def test_without_a_storage_secret_an_s3_dataset_is_not_read(world: World, s3: LocalS3) -> None:
    s3.client().put_object(Bucket="tenant", Key="prompts.jsonl", Body=PROMPTS)
    await to_canary(world, judged_spec(secret=None))
    looked = await world.reconcile()
    problem = world.judges[-1].problem
    assert problem is not None and problem.startswith("cannot start paired judging: spec.storageSecretRef: ")
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in problem
    assert [(e.reason, e.type) for e in looked.events if e.type == "Warning"] == [
        ("PairedJudgingNotStarted", "Warning")
    ]


async def test_an_s3_endpoint_outside_the_allowlist_is_never_contacted(
    world: World, s3: LocalS3, listener: Listener
) -> None:
    put_secret(world, "tenant-storage", tenant_keys(s3, AWS_ENDPOINT_URL=f"{listener.url}/latest/meta-data"))
    await to_canary(world, judged_spec())
    await world.reconcile()
    problem = world.judges[-1].problem
    assert problem is not None
    assert (
        f"spec.storageSecretRef: Secret {NAMESPACE}/tenant-storage key AWS_ENDPOINT_URL: "
        f"'{listener.url}/latest/meta-data' is not under an allowed prefix; this cluster allows S3 endpoints "
        f"under: {s3.endpoint}"
    ) in problem
    assert listener.paths() == []


async def test_a_dataset_over_the_cap_is_inconclusive_with_one_warning_and_read_again_later(
    world: World, s3: LocalS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real analysis and judge provider: the judge metric's message is what the tenant sees.
    monkeypatch.setattr("adapterops.deploy.reconciler.analyse", analyse)
    monkeypatch.setattr("adapterops.deploy.judging.PairedJudge", PairedJudge)
    s3.client().put_object(Bucket="tenant", Key="prompts.jsonl", Body=PROMPTS * (CAP // len(PROMPTS) + 1))
    put_secret(world, "tenant-storage", tenant_keys(s3))
    await to_canary(world, judged_spec())
    looked = await world.reconcile()
    metric = looked.analysis.metrics[0]
    assert metric.name == "judge" and metric.verdict == "Inconclusive"
    assert f"s3://tenant/prompts.jsonl: dataset larger than {CAP} bytes" in (metric.message or "")
    warnings = world.events("PairedJudgingNotStarted")
    assert len(warnings) == 1 and warnings[0].type == "Warning" and f"larger than {CAP} bytes" in warnings[0].message

    again = await world.reconcile()  # too soon to read again: no S3 read, no second Warning
    assert world.events("PairedJudgingNotStarted") == warnings
    assert not [c for c in again.calls if c.kind == "v1/Secret"]

    s3.client().put_object(Bucket="tenant", Key="prompts.jsonl", Body=PROMPTS)  # the tenant fixes it
    world.clock.advance(REFUSED_RETRY_SECONDS)
    await world.reconcile()
    judge = world.reconciler.judges.by_key[KEY][1]
    assert judge.problem is None and len(judge.prompts) == len(ROWS)
    assert world.events("PairedJudgingNotStarted") == warnings


async def test_a_dataset_that_is_a_local_path_is_not_read(tmp_path: Path) -> None:
    """The CRD allows configmap:// and s3:// only; the operator refuses anything else itself too."""
    (tmp_path / "secret.jsonl").write_text('{"prompt": "x"}\n')
    with pytest.raises(DatasetError, match="reads only configmap://NAME/KEY and s3://bucket/key"):
        await read_dataset(FakeClient(), CONFIG, NAMESPACE, str(tmp_path / "secret.jsonl"), None)
