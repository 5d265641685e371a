"""Which process of a trial this is, and how the processes of one trial agree on what each node fetched.

A trial on several GPUs or nodes has one launcher per pod (`torchrun`, in the pod's command: see the
operator's builders) and one trainer process per GPU under it. Every process runs the same runner; what
they do differently depends only on their ranks:

- local rank 0 of each node fetches the inputs (data, base model) into a folder shared by the node's
  processes and prepares what its backend needs there (NeMo: the imported checkpoint); the other local
  ranks wait for it, and every process waits until every node has reported (ok, or the failure);
- all ranks train together (the backend's own data parallelism: Trainer/accelerate DDP for hf, Megatron
  for nemo, both in this process, under the pod's launcher);
- global rank 0 alone exports the adapter, evaluates it, uploads the outputs and writes the result; the
  other ranks exit 0 when training is done and write nothing.

Ranks come from the launcher's environment (torchrun: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
GROUP_RANK, MASTER_ADDR/PORT), else from an engine that starts one process per pod without a launcher
(Kubeflow's PyTorchJob sets RANK, WORLD_SIZE, MASTER_ADDR/PORT per pod), else from an Indexed Job's
JOB_COMPLETION_INDEX (a JobSet pod: only its node index, so it can only tell that it is not rank 0), else
a single process. The node reports travel through the launcher's own c10d store (TCPStore at
MASTER_ADDR:MASTER_PORT), so the runner never initialises a process group the training libraries would
then find already set up.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

# How long a process waits for the nodes to fetch and prepare the inputs (an 8B model from S3).
DEFAULT_FETCH_TIMEOUT_SECONDS = 3600
STORE_PREFIX = "adapterops/"


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    node_rank: int = 0
    nodes: int = 1
    launcher: str = "none"  # torchrun | engine | indexed-job | none
    master_addr: str | None = None
    master_port: int | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def global_zero(self) -> bool:
        return self.rank == 0

    @property
    def local_zero(self) -> bool:
        return self.local_rank == 0

    def describe(self) -> dict[str, Any]:
        return {
            "launcher": self.launcher,
            "worldSize": self.world_size,
            "nodes": self.nodes,
            "processesPerNode": self.local_world_size,
        }


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from exc


def ranks_from_env(env: Mapping[str, str] | None = None) -> Ranks:
    env = os.environ if env is None else env
    addr = env.get("MASTER_ADDR") or None
    port = _int(env, "MASTER_PORT", 0) or None
    if "LOCAL_RANK" in env and "RANK" in env:  # torchrun (torch.distributed.run) sets all of these per process
        world, local_world = _int(env, "WORLD_SIZE", 1), _int(env, "LOCAL_WORLD_SIZE", 1)
        rank = _int(env, "RANK", 0)
        return Ranks(
            rank=rank,
            world_size=world,
            local_rank=_int(env, "LOCAL_RANK", 0),
            local_world_size=local_world,
            node_rank=_int(env, "GROUP_RANK", rank // max(1, local_world)),
            nodes=max(1, world // max(1, local_world)),
            launcher="torchrun",
            master_addr=addr,
            master_port=port,
        )
    if "RANK" in env and "WORLD_SIZE" in env:  # one process per pod, ranked by the engine (PyTorchJob)
        rank, world = _int(env, "RANK", 0), _int(env, "WORLD_SIZE", 1)
        return Ranks(rank, world, 0, 1, rank, world, "engine", addr, port)
    if "JOB_COMPLETION_INDEX" in env:  # an Indexed Job's pod (JobSet) without a launcher: its index only
        index = _int(env, "JOB_COMPLETION_INDEX", 0)
        return Ranks(rank=index, node_rank=index, launcher="indexed-job")
    return Ranks()


def launch_problem(ranks: Ranks, gpus: int, nodes: int, strict: bool) -> str | None:
    """Why this process cannot run its part of a trial of `gpus` x `nodes`, if it cannot.

    `strict`: the world must be exactly gpus x nodes processes (NeMo: Lightning checks it against its
    devices x num_nodes). Otherwise (hf, which trains data-parallel over whatever it is launched as) the
    processes must at least span the trial's nodes, so that no node's share is silently left out."""
    wanted = gpus * nodes
    if ranks.launcher == "indexed-job":
        return (
            f"this pod is node {ranks.node_rank} of a {nodes}-node trial but was started without a launcher "
            "(no RANK/WORLD_SIZE/LOCAL_RANK): run the trainer under torchrun, as the operator's pod command does"
        )
    if strict and ranks.world_size != wanted:
        return (
            f"the trial asks for {gpus} GPU(s) x {nodes} node(s) = {wanted} trainer processes, but this process "
            f"was started as one of {ranks.world_size} ({ranks.launcher}); start {gpus} per node under torchrun"
        )
    if ranks.nodes != nodes and nodes > 1:
        return (
            f"the trial asks for {nodes} nodes, but this process was started as one of {ranks.nodes} node(s) "
            f"({ranks.launcher}); start the trainer under torchrun --nnodes={nodes}"
        )
    if ranks.distributed and (ranks.master_addr is None or ranks.master_port is None):
        return f"launched as one of {ranks.world_size} processes ({ranks.launcher}) without MASTER_ADDR/MASTER_PORT"
    return None


class NodeReports:
    """Each node's local rank 0 reports once (ok, or a failure's reason and message); every process waits
    for all nodes' reports. Backed by the launcher's c10d store, as torch.distributed's own env://
    rendezvous reaches it (a client of the agent's store under torchrun; otherwise rank 0 hosts a
    multi-tenant store that init_process_group later shares)."""

    def __init__(self, ranks: Ranks, timeout_seconds: float) -> None:
        from torch.distributed import PrefixStore, TCPStore  # type: ignore[attr-defined]

        assert ranks.master_addr is not None and ranks.master_port is not None
        self.ranks = ranks
        self.timeout = timedelta(seconds=timeout_seconds)
        agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
        store = TCPStore(
            host_name=ranks.master_addr,
            port=ranks.master_port,
            world_size=None if agent_store else ranks.world_size,
            is_master=not agent_store and ranks.global_zero,
            timeout=self.timeout,
            multi_tenant=not agent_store,
            wait_for_workers=False,
        )
        restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")  # a restarted group starts afresh
        self.store = PrefixStore(f"{STORE_PREFIX}{restart}/", store)

    def report(self, failure: tuple[str, str] | None) -> None:
        doc = {"ok": failure is None} | ({"reason": failure[0], "message": failure[1]} if failure else {})
        self.store.set(f"node/{self.ranks.node_rank}", json.dumps(doc))

    def wait_all(self) -> tuple[str, str] | None:
        """The first failing node's (reason, message), or None when every node is ready."""
        keys = [f"node/{n}" for n in range(self.ranks.nodes)]
        self.store.wait(keys, self.timeout)
        for node, key in enumerate(keys):
            doc = json.loads(self.store.get(key))
            if not doc["ok"]:
                return doc["reason"], f"node {node}: {doc['message']}"
        return None


def fetch_timeout_seconds() -> float:
    return float(os.environ.get("ADAPTEROPS_FETCH_TIMEOUT_SECONDS", DEFAULT_FETCH_TIMEOUT_SECONDS))
