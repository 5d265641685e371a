"""A trial on two nodes: two torchrun launchers (one per "node", each with its own scratch folder, as two pods
have), one trainer process under each, the real runner and hf backend training data-parallel over gloo on
CPU. Only global rank 0 writes a result and the outputs; the other rank exits 0 and writes nothing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from testworld.judge import StandInJudge
from testworld.trials import COMMERCE, trial_spec

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def two_nodes(tmp: Path, spec: dict[str, Any]) -> list[tuple[int, Path, str]]:
    """Run both nodes' launchers to the end: [(exit code, termination log, output)] per node."""
    (tmp / "trial.json").write_text(json.dumps(spec))
    port = free_port()
    procs = []
    for node in (0, 1):
        work = tmp / f"node{node}"
        work.mkdir()
        cmd = [
            *TORCHRUN, "--nnodes=2", "--nproc-per-node=1", f"--node-rank={node}", "--master-addr=127.0.0.1",
            f"--master-port={port}", "-m", "adapterops_train", "run", "--spec", str(tmp / "trial.json"),
            "--termination-log", str(work / "termination-log"),
        ]  # fmt: skip
        env = {**os.environ, "ADAPTEROPS_WORKDIR": str(work), "ADAPTEROPS_FETCH_TIMEOUT_SECONDS": "120"}
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    out = []
    for node, proc in enumerate(procs):
        stdout, _ = proc.communicate(timeout=600)
        out.append((proc.returncode, tmp / f"node{node}" / "termination-log", stdout))
    return out


def test_two_nodes_train_together_and_rank_zero_alone_reports(
    tmp_path: Path, tiny_model: Path, judge: StandInJudge
) -> None:
    out = tmp_path / "out"
    spec = trial_spec(
        str(tiny_model),
        str(out),
        nodes=2,
        training={"maxSteps": 4, "precision": "fp32", "globalBatchSize": 8, "microBatchSize": 2},
        evaluation={
            "dataset": str(COMMERCE / "challenge.jsonl"),
            "samples": 2,
            "judge": {"endpoint": judge.url, "model": "judge"},
            "rubric": {"builtin": "query-formulation"},
        },
    )
    (code0, log0, stdout0), (code1, log1, stdout1) = two_nodes(tmp_path, spec)
    assert code0 == 0, stdout0[-3000:]
    assert code1 == 0, stdout1[-3000:]
    result = json.loads(log0.read_text())
    assert result["status"] == "succeeded" and result["adapterUri"] == str(out / "adapter")
    assert not log1.exists() or log1.read_text() == "", "rank 1 writes no result"
    assert '"status"' not in stdout1  # nor prints one
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["distributed"] == {"launcher": "torchrun", "worldSize": 2, "nodes": 2, "processesPerNode": 1}
    # Each process takes half of every global batch: 8 = 2 per micro batch x 2 accumulated x 2 processes.
    assert metrics["observed"]["dataParallelSize"] == 2 and metrics["observed"]["gradientAccumulationSteps"] == 2
    assert metrics["plan"]["data_parallel_size"] == 2 and metrics["steps"] == 4
    assert metrics["evaluation"]["summary"]["samples"] == 2  # rank 0 evaluated
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    # Each node's shared folder is gone once its processes are done.
    assert not list((tmp_path / "node1").glob("trial-*"))


def test_a_node_that_cannot_fetch_fails_the_trial_and_rank_zero_names_it(tmp_path: Path, tiny_model: Path) -> None:
    spec = trial_spec(str(tiny_model), str(tmp_path / "out"), nodes=2)
    spec["dataset"]["train"] = str(tmp_path / "nowhere.jsonl")
    (code0, log0, stdout0), (code1, log1, _) = two_nodes(tmp_path, spec)
    result = json.loads(log0.read_text())
    assert result["status"] == "failed" and result["reason"] == "DatasetNotFound", stdout0[-2000:]
    assert "nowhere.jsonl" in result["message"] and result["message"].startswith("node 0: ")
    assert code0 != 0 and code1 != 0  # every process stops; torchrun reports its worker's failure
    assert not log1.exists() or log1.read_text() == ""
