"""Each image's entrypoint runs in its own root filesystem, as its non-root user, read-only: the fetcher copies
an adapter, the hf trainer runs a tiny LoRA trial on CPU (the operator, against the local cluster:
tests/cluster/test_operator_image.py, and every cluster test runs that image)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from testworld import rootfs
from testworld.judge import StandInJudge
from testworld.trials import COMMERCE, trial_spec

pytestmark = [pytest.mark.images, pytest.mark.timeout(3600)]


def _adapter(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 4096)
    return folder


def test_the_fetcher_image_copies_an_adapter(built: dict[str, rootfs.BuiltImage], shared_tmp: Path) -> None:
    image = built["adapter-fetcher"]
    source = _adapter(shared_tmp / "pvc" / "work" / "adapters" / "t03" / "adapter")
    dest = shared_tmp / "engine"
    dest.mkdir()
    shutil.chown(dest, 65532, 65532)  # the pod's emptyDir, writable by the pod's fsGroup
    args = [*image.process["args"][:3], "fetch", "--root", str(dest), "--adapter", "commerce=pvc://work/adapters/t03/adapter"]
    env = {"ADAPTEROPS_PVC_ROOT": str(shared_tmp / "pvc")}
    run = rootfs.RootfsRun(image, binds=(shared_tmp,)).run(args, env)
    assert run.returncode == 0, run.stderr
    copied = dest / "commerce"
    assert sorted(p.name for p in copied.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert (copied / "adapter_model.safetensors").read_bytes() == (source / "adapter_model.safetensors").read_bytes()
    assert copied.stat().st_uid == 65532  # written by the image's user


def test_the_fetcher_image_names_a_missing_adapter(built: dict[str, rootfs.BuiltImage], shared_tmp: Path) -> None:
    image = built["adapter-fetcher"]
    args = [*image.process["args"][:3], "fetch", "--uri", str(shared_tmp / "nothing"), "--dest", "/tmp/out"]
    run = rootfs.RootfsRun(image, binds=(shared_tmp,)).run(args)
    assert run.returncode != 0 and str(shared_tmp / "nothing") in run.stderr + run.stdout


def test_the_trainer_image_runs_a_tiny_trial_on_cpu(built: dict[str, rootfs.BuiltImage], shared_tmp: Path) -> None:
    pytest.importorskip("torch", reason="the tiny model is built with the training extra")
    from testworld.tiny_model import build

    image = built["trainer-hf"]
    model = build(shared_tmp / "tiny-llama", seed=0)
    for f in model.iterdir():  # safetensors writes 0600; a volume the pod reads is readable by its user
        f.chmod(0o644)
    data = shared_tmp / "data"
    shutil.copytree(COMMERCE, data)
    out = shared_tmp / "out"
    out.mkdir()
    shutil.chown(out, 65532, 65532)
    with StandInJudge() as judge:
        spec = trial_spec(
            str(model),
            str(out),
            dataset={"train": str(data / "train.jsonl")},
            training={"maxSteps": 4},
            evaluation={
                "dataset": str(data / "challenge.jsonl"),
                "samples": 2,
                "rubric": {"builtin": "query-formulation"},
                "judge": {"endpoint": judge.url, "model": "judge"},
            },
        )
        (shared_tmp / "trial.json").write_text(json.dumps(spec))
        # As the operator's pod spec runs it: the entrypoint's module with `run --spec`, HOME and the workdir in /tmp.
        args = [*image.process["args"][:3], "run", "--spec", str(shared_tmp / "trial.json"), "--termination-log",
                str(out / "termination-log")]  # fmt: skip
        run = rootfs.RootfsRun(image, binds=(shared_tmp,)).run(args, {"HOME": "/tmp"}, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    result = json.loads((out / "termination-log").read_text())
    assert result["status"] == "succeeded" and result["steps"] == 4 and result["backend"] == "hf"
    assert (out / "adapter" / "adapter_model.safetensors").stat().st_uid == 65532
    assert result["judge"]["status"] == "ok"
