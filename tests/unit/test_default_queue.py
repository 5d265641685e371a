"""A FineTuneJob that names no Kueue queue is admitted through its namespace's default queue
(ADAPTEROPS_DEFAULT_QUEUES, the chart's tenantPolicy.defaultQueues): the trial Jobs carry the queue label and
start suspended for Kueue, exactly as if the spec had named it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from adapterops.config import Config, ConfigError, GpuClass
from adapterops.finetune import builders
from adapterops.finetune.acceptance import accept

CONFIG = Config(
    gpu_classes={
        "H100": GpuClass.model_validate(
            {"nodeSelector": {"nvidia.com/gpu.product": "H100"}, "pricePerHour": 4.5, "memoryGiB": 80}
        )
    },
    default_queues={"team-a": "team-a-gpus"},
)


def spec(**resources: Any) -> dict[str, Any]:
    return {
        "baseModel": {"name": "tiny", "uri": "pvc://models/tiny"},
        "backend": "hf",  # nemo trains only the base models with a NeMo recipe
        "dataset": {"train": "pvc://data/train.jsonl"},
        "training": {"maxSteps": 10},
        "objective": {"metric": "validationLoss", "goal": "minimize"},
        "output": {"uri": "pvc://adapters/runs"},
        "resources": {"gpuType": "H100", **resources},
    }


def trial_job(namespace: str, **resources: Any) -> dict[str, Any]:
    accepted = accept("sweep", spec(**resources), CONFIG, namespace)
    owner = {
        "apiVersion": "adapterops.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "sweep", "namespace": namespace, "uid": "u1"},
    }
    return builders.trial_job(owner, accepted.trials[0], accepted.spec, CONFIG)


def test_a_job_without_a_queue_takes_its_namespace_default() -> None:
    job = trial_job("team-a")
    assert job["metadata"]["labels"][builders.KUEUE_QUEUE_LABEL] == "team-a-gpus"
    assert job["spec"]["suspend"] is True  # Kueue unsuspends it by the queue's quota


def test_a_named_queue_wins_over_the_default() -> None:
    job = trial_job("team-a", queueName="burst")
    assert job["metadata"]["labels"][builders.KUEUE_QUEUE_LABEL] == "burst"


def test_a_namespace_without_a_default_runs_unqueued_as_before() -> None:
    job = trial_job("team-b")
    assert builders.KUEUE_QUEUE_LABEL not in job["metadata"]["labels"] and job["spec"]["suspend"] is False


def test_default_queues_parse_from_json_and_refuse_anything_else(tmp_path: Path) -> None:
    classes = tmp_path / "gpu-classes.yaml"
    classes.write_text(yaml.safe_dump({}))
    env = {"ADAPTEROPS_GPU_CLASSES_FILE": str(classes)}
    assert Config.from_env(env).default_queues == {}
    parsed = Config.from_env({**env, "ADAPTEROPS_DEFAULT_QUEUES": '{"team-a": "gpus"}'})
    assert parsed.default_queues == {"team-a": "gpus"}
    with pytest.raises(ConfigError, match="ADAPTEROPS_DEFAULT_QUEUES must be a JSON object of namespace -> queue"):
        Config.from_env({**env, "ADAPTEROPS_DEFAULT_QUEUES": "team-a=gpus"})
