"""Which process of a trial the runner is (from its launcher's environment), what it refuses to run as, and
the operator's refusal of a base model the nemo backend has no recipe for."""

from __future__ import annotations

from typing import Any

import pytest

from adapterops.config import Config, GpuClass
from adapterops.finetune.acceptance import accept
from adapterops.runtime.acceptance import Refusal
from adapterops_common.nemo_models import NEMO_BASE_MODELS
from adapterops_train.distributed import Ranks, launch_problem, ranks_from_env

TORCHRUN = {  # what torchrun puts in the environment of worker 1 on node 1 of 2 x 2
    "RANK": "3",
    "WORLD_SIZE": "4",
    "LOCAL_RANK": "1",
    "LOCAL_WORLD_SIZE": "2",
    "GROUP_RANK": "1",
    "MASTER_ADDR": "trial-trainer-0-0.trial",
    "MASTER_PORT": "29500",
    "JOB_COMPLETION_INDEX": "1",  # the JobSet pod's index is there too; torchrun's ranks win
}


def test_torchrun_ranks() -> None:
    r = ranks_from_env(TORCHRUN)
    assert (r.rank, r.world_size, r.local_rank, r.node_rank, r.nodes, r.launcher) == (3, 4, 1, 1, 2, "torchrun")
    assert not r.global_zero and not r.local_zero and r.distributed
    assert launch_problem(r, gpus=2, nodes=2, strict=True) is None


def test_an_engine_without_a_launcher_ranks_one_process_per_pod() -> None:
    r = ranks_from_env({"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "m", "MASTER_PORT": "23456"})
    assert (r.rank, r.world_size, r.node_rank, r.launcher) == (1, 2, 1, "engine")
    assert launch_problem(r, gpus=1, nodes=2, strict=True) is None


def test_a_jobset_pod_without_a_launcher_is_refused_naming_its_node() -> None:
    r = ranks_from_env({"JOB_COMPLETION_INDEX": "1"})
    assert not r.global_zero
    problem = launch_problem(r, gpus=8, nodes=2, strict=False)
    assert problem is not None and "node 1 of a 2-node trial" in problem and "torchrun" in problem


def test_a_single_process_is_rank_zero_of_one() -> None:
    assert ranks_from_env({}) == Ranks()
    assert launch_problem(Ranks(), gpus=1, nodes=1, strict=True) is None


def test_nemo_needs_exactly_gpus_times_nodes_processes_hf_only_all_nodes() -> None:
    one = Ranks()
    problem = launch_problem(one, gpus=8, nodes=1, strict=True)
    assert problem is not None and "8 GPU(s) x 1 node(s) = 8 trainer processes" in problem
    assert launch_problem(one, gpus=8, nodes=1, strict=False) is None  # hf: data parallel over what it has
    half = ranks_from_env({**TORCHRUN, "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "1", "RANK": "1", "LOCAL_RANK": "0"})
    assert launch_problem(half, gpus=1, nodes=3, strict=False) is not None  # a node left out


def test_a_bad_variable_is_named() -> None:
    with pytest.raises(ValueError, match="LOCAL_RANK='x'"):
        ranks_from_env({**TORCHRUN, "LOCAL_RANK": "x"})


CONFIG = Config(
    gpu_classes={
        "H100": GpuClass.model_validate({"nodeSelector": {"gpu": "h100"}, "pricePerHour": 4.5, "memoryGiB": 80})
    }
)


def ftj(name: str, backend: str = "nemo", method: str = "sft") -> dict[str, Any]:
    fmt = "preference" if method == "dpo" else "chat"
    return {
        "baseModel": {"name": name, "uri": "/m"},
        "backend": backend,
        "method": method,
        "dataset": {"train": "/d", "format": fmt},
        "training": {"maxSteps": 1},
        "objective": {"metric": "validationLoss", "goal": "minimize"},
        "output": {"uri": "s3://b/o"},
        "resources": {"gpuType": "H100"},
    }


def test_a_base_model_without_a_nemo_recipe_is_refused_with_the_supported_list() -> None:
    with pytest.raises(Refusal) as caught:
        accept("sweep", ftj("mistralai/Mistral-7B-v0.3"), CONFIG)
    assert caught.value.reason == "UnsupportedBaseModel"
    message = caught.value.message
    assert message.startswith("spec.baseModel.name: 'mistralai/Mistral-7B-v0.3'")
    assert all(name in message for name in NEMO_BASE_MODELS) and "backend: hf" in message


@pytest.mark.parametrize(
    ("name", "backend", "method"),
    [
        ("nvidia/Llama-3.1-Nemotron-Nano-8B-v1", "nemo", "sft"),
        ("meta-llama/llama-3.1-8b-instruct", "nemo", "sft"),  # ids compare case-insensitively
        ("mistralai/Mistral-7B-v0.3", "hf", "sft"),
        ("mistralai/Mistral-7B-v0.3", "nemo", "dpo"),  # DPO runs on hf whatever the backend
    ],
)
def test_what_the_backend_can_train_is_accepted(name: str, backend: str, method: str) -> None:
    assert accept("sweep", ftj(name, backend, method), CONFIG).trials
