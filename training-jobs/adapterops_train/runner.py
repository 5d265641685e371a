"""One trial, end to end: data -> training -> adapter export -> evaluation -> outputs -> result.

`run_trial` never raises for trial failures: every failure becomes a `TrialResult` with a CamelCase
reason, and the CLI writes it to the termination log and exits non-zero. On several GPUs or nodes every
process runs this under the pod's launcher (`adapterops_train.distributed`): each node's local rank 0
fetches the inputs once into a folder the node's processes share, all ranks train, and global rank 0
alone exports, evaluates, uploads and reports (the CLI writes no result for the other ranks). What is
written:

  <outputUri>/adapter/adapter_config.json, adapter_model.safetensors   (PEFT, vLLM, NIM layout)
  <outputUri>/metrics.json   loss curve, validation loss, judge scores, timings, observed trainer
                             settings, data fingerprints, library versions
  <outputUri>/trial.json     the exact spec this trial ran (`run --spec trial.json` re-runs it)
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from adapterops_common import __version__ as common_version
from adapterops_common import judge, storage
from adapterops_common.contract import BUILTIN_RUBRICS, JudgeSummary, TrialResult, TrialSpec
from adapterops_train import __version__
from adapterops_train.dataset import (
    ChallengeItem,
    DatasetError,
    SplitData,
    check_method,
    lines_digest,
    load_challenge_set,
    load_examples,
    sha256_file,
    split,
)
from adapterops_train.dataset import Fingerprint as DataFingerprint
from adapterops_train.distributed import NodeReports, Ranks, fetch_timeout_seconds, launch_problem, ranks_from_env
from adapterops_train.hyper import HyperparameterError, expected_learning_rate

log = logging.getLogger(__name__)

METRICS_VERSION = 1
BASE_MODEL_KEY = "baseModel"  # where fetch_inputs records the base model's folder
GENERATION_MAX_NEW_TOKENS = 128
DPO_ON_NEMO_REASON = (
    "method dpo runs on the hf backend: NeMo 2.x (nemo.collections.llm, last in 2.7) has no DPO, and "
    "NeMo RL's DPO is a separate Ray-based stack with its own container and checkpoint format"
)


class TrialFailure(Exception):
    """A failure with the CamelCase reason the operator shows in the trial row."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Backend(Protocol):
    name: str

    def prepare_node(self, data: SplitData) -> None: ...
    def train(self, data: SplitData) -> Any: ...
    def save_adapter(self, dest: Path) -> Path: ...
    def generate(self, items: list[ChallengeItem], max_new_tokens: int, batch_size: int = 8) -> list[str]: ...


@dataclass
class Timer:
    seconds: dict[str, float] = field(default_factory=dict)

    def measure(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.monotonic()
        try:
            return fn()
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.monotonic() - start, 3)


def workdir_root() -> Path:
    return Path(os.environ.get("ADAPTEROPS_WORKDIR", tempfile.gettempdir()))


# --------------------------------------------------------------------------- steps


def prepare_data(spec: TrialSpec, scratch: Path, fetched: dict[str, str] | None = None) -> SplitData:
    """Fetch (or take from `fetched`, what this node's local rank 0 already fetched) and check the data."""
    ds = spec.dataset
    check_method(spec.method, ds.format, ds.train)

    def local(uri: str, dest: Path) -> Path:
        return Path(fetched[uri]) if fetched is not None and uri in fetched else storage.fetch_file(uri, dest)

    try:
        train_path = local(ds.train, scratch / "train")
        examples = load_examples(train_path, ds.format, source=ds.train)
        fingerprints = {"train": DataFingerprint(ds.train, sha256_file(train_path), len(examples))}
        if ds.validation:
            val_path = local(ds.validation, scratch / "validation")
            val = load_examples(val_path, ds.format, source=ds.validation)
            train = examples
            fingerprints["validation"] = DataFingerprint(ds.validation, sha256_file(val_path), len(val))
            how: dict[str, Any] = {"mode": "given"}
        else:
            train, val = split(examples, ds.validation_fraction, ds.seed, ds.train)
            how = {"mode": "heldOut", "fraction": ds.validation_fraction, "seed": ds.seed}
    except storage.UriNotFound as exc:
        raise TrialFailure("DatasetNotFound", str(exc)) from exc
    how |= {
        "trainRows": len(train),
        "validationRows": len(val),
        "trainLinesDigest": lines_digest(train),
        "validationLinesDigest": lines_digest(val),
    }
    return SplitData(train=train, validation=val, fingerprints=fingerprints, split=how)


def fetch_inputs(spec: TrialSpec, dest: Path) -> dict[str, str]:
    """Fetch the data files and the base model once (a node's local rank 0): URI -> local path, which the
    node's other processes read instead of fetching again."""
    ds = spec.dataset
    out: dict[str, str] = {}
    try:
        out[ds.train] = str(storage.fetch_file(ds.train, dest / "train"))
        if ds.validation:
            out[ds.validation] = str(storage.fetch_file(ds.validation, dest / "validation"))
    except storage.UriNotFound as exc:
        raise TrialFailure("DatasetNotFound", str(exc)) from exc
    out[BASE_MODEL_KEY] = str(fetch_base_model(spec, dest))
    return out


def fetch_base_model(spec: TrialSpec, scratch: Path) -> Path:
    if not spec.base_model.uri:
        raise TrialFailure("BaseModelNotFound", "baseModel.uri is not set: nothing is downloaded from a hub")
    try:
        base = storage.fetch_tree(spec.base_model.uri, scratch / "base-model")
    except storage.UriNotFound as exc:
        raise TrialFailure("BaseModelNotFound", str(exc)) from exc
    if not (base / "config.json").is_file():
        raise TrialFailure("BaseModelNotFound", f"{spec.base_model.uri}: no config.json (not a Hugging Face model)")
    return base


def choose_backend(spec: TrialSpec) -> tuple[str, str | None]:
    """(backend to run, why it differs from the spec's, if it does)."""
    if spec.backend == "nemo" and spec.method == "dpo":
        return "hf", DPO_ON_NEMO_REASON
    return spec.backend, None


def make_backend(
    name: str,
    spec: TrialSpec,
    base_dir: Path,
    workdir: Path,
    ranks: Ranks | None = None,
    shared: Path | None = None,
) -> Backend:
    """`workdir`: this process's scratch; `shared`: the folder the node's processes share."""
    ranks = ranks or Ranks()
    shared = shared or workdir
    # Imported here: torch/NeMo load only in the trial pod, never in the operator.
    if name == "nemo":
        from adapterops_common.nemo_models import nemo_recipe, unsupported_message
        from adapterops_train.backends.nemo import NemoBackend, nemo_available

        problem = nemo_available()
        if problem:
            raise TrialFailure("BackendUnavailable", problem)
        recipe = nemo_recipe(spec.base_model.name)
        if recipe is None:
            raise TrialFailure("BackendUnavailable", unsupported_message("baseModel.name", spec.base_model.name))
        return NemoBackend(spec, base_dir, workdir, recipe, ranks, shared)
    from adapterops_train.backends.hf import HfBackend

    return HfBackend(spec, base_dir, workdir, ranks)


def evaluate(
    spec: TrialSpec, backend: Backend, scratch: Path
) -> tuple[JudgeSummary, list[dict[str, Any]], dict[str, Any]]:
    """Answer the challenge prompts with the trained adapter, then have the judge score them."""
    ev = spec.evaluation
    assert ev is not None
    try:
        path = storage.fetch_file(ev.dataset, scratch / "challenge")
    except storage.UriNotFound as exc:
        raise TrialFailure("DatasetNotFound", str(exc)) from exc
    items = load_challenge_set(path, source=ev.dataset)[: ev.samples]
    answers = backend.generate(items, GENERATION_MAX_NEW_TOKENS)
    config = judge.JudgeConfig(endpoint=ev.judge.endpoint, model=ev.judge.model, api_key=judge.read_api_key())
    fallback = judge.rubric_text(ev.rubric.builtin, ev.rubric.text)
    judged = [
        judge.JudgeItem(
            prompt=i.prompt, answer=a, reference=i.reference, id=i.id, rubric=_item_rubric(spec, i, fallback)
        )
        for i, a in zip(items, answers, strict=True)
    ]
    verdicts, summary = judge.judge_sync(config, fallback, judged)
    samples = [
        {"id": i.id, "answer": a, "reference": i.reference, **v.to_dict()}
        for i, a, v in zip(items, answers, verdicts, strict=True)
    ]
    info = {
        "challenge": DataFingerprint(ev.dataset, sha256_file(path), len(items)).to_dict(),
        "judge": {"endpoint": ev.judge.endpoint, "model": ev.judge.model, "authenticated": config.api_key is not None},
        "rubric": ev.rubric.model_dump(by_alias=True, exclude_none=True),
    }
    return summary, samples, info


def _item_rubric(spec: TrialSpec, item: ChallengeItem, fallback: str) -> str:
    """A builtin rubric follows each row's `task` (the shipped challenge set mixes both commerce tasks);
    a user-written rubric applies to every row."""
    assert spec.evaluation is not None
    if spec.evaluation.rubric.builtin and item.task in BUILTIN_RUBRICS:
        return judge.rubric_text(item.task)
    return fallback


def versions() -> dict[str, str]:
    out = {
        "adapterops_train": __version__,
        "adapterops_common": common_version,
        "python": platform.python_version(),
    }
    for dist in ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "nemo_toolkit", "megatron-core"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def schedule_check(spec: TrialSpec, outcome: Any) -> dict[str, Any]:
    """Largest gap between the learning rates the trainer used and the schedule the spec asks for."""
    used: list[float] = outcome.observed.get("learningRates", [])
    t = spec.training
    expected = [
        expected_learning_rate(
            i, t.learning_rate, t.scheduler.min_learning_rate, t.scheduler.warmup_steps, outcome.plan.max_steps
        )
        for i in range(len(used))
    ]
    gap = max((abs(a - b) for a, b in zip(used, expected, strict=True)), default=None)
    return {"maxAbsDeviation": gap, "steps": len(used)}


# --------------------------------------------------------------------------- the trial


def run_trial(spec: TrialSpec, ranks: Ranks | None = None) -> TrialResult:
    """This process's part of the trial. For a rank other than 0 the result only says whether its part
    succeeded (the CLI writes none of it)."""
    started = time.monotonic()
    timer = Timer()
    ranks = ranks_from_env() if ranks is None else ranks
    scratch = Path(tempfile.mkdtemp(prefix=f"trial-{spec.name}-r{ranks.rank}-", dir=workdir_root()))
    # The node's processes share what its local rank 0 fetched; another attempt (a new pod) starts afresh.
    shared = workdir_root() / f"trial-{spec.name}-node" if ranks.distributed else scratch
    backend_name, routed = choose_backend(spec)
    try:
        problem = launch_problem(ranks, spec.gpus, spec.nodes, strict=backend_name == "nemo")
        if problem:
            raise TrialFailure("BackendUnavailable", problem)
        return _run(spec, backend_name, routed, ranks, scratch, shared, timer, started)
    except TrialFailure as exc:
        return _failed(exc.reason, str(exc), backend_name, started)
    except DatasetError as exc:
        return _failed("DatasetInvalid", str(exc), backend_name, started)
    except HyperparameterError as exc:
        return _failed("SpecInvalid", str(exc), backend_name, started)
    except MemoryError as exc:
        return _failed("OutOfMemory", f"host memory exhausted: {exc}", backend_name, started)
    except Exception as exc:
        if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, without importing torch
            return _failed("OutOfMemory", str(exc), backend_name, started)
        log.exception("trial failed")
        return _failed("TrainingFailed", f"{type(exc).__name__}: {exc}", backend_name, started)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if shared != scratch and ranks.local_zero:  # the node's other processes are done with it by now
            shutil.rmtree(shared, ignore_errors=True)


def _failed(reason: str, message: str, backend: str, started: float) -> TrialResult:
    return TrialResult(
        status="failed",
        reason=reason,
        message=message,
        backend=backend,
        duration_seconds=round(time.monotonic() - started, 3),
    )


def _failure_of(exc: Exception) -> tuple[str, str]:
    """(reason, message) of a failure in a node's preparation, as run_trial would report it."""
    if isinstance(exc, TrialFailure):
        return exc.reason, str(exc)
    if isinstance(exc, DatasetError):
        return "DatasetInvalid", str(exc)
    if isinstance(exc, HyperparameterError):
        return "SpecInvalid", str(exc)
    return "TrainingFailed", f"{type(exc).__name__}: {exc}"


def _prepare(
    spec: TrialSpec, backend_name: str, ranks: Ranks, scratch: Path, shared: Path, timer: Timer
) -> tuple[SplitData, Backend]:
    """Data and a ready backend: fetched and prepared once per node (its local rank 0) while the node's
    other processes wait; every process waits until every node is ready or one has failed."""
    if not ranks.distributed:
        data = timer.measure("data", lambda: prepare_data(spec, scratch))
        base_dir = timer.measure("baseModel", lambda: fetch_base_model(spec, scratch))
        backend = timer.measure("setup", lambda: make_backend(backend_name, spec, base_dir, scratch, ranks, shared))
        timer.measure("prepareNode", lambda: backend.prepare_node(data))
        return data, backend
    reports = NodeReports(ranks, fetch_timeout_seconds())
    manifest = shared / "inputs.json"
    if ranks.local_zero:
        failure: tuple[str, str] | None = None
        try:
            shared.mkdir(parents=True, exist_ok=True)
            fetched = timer.measure("fetch", lambda: fetch_inputs(spec, shared / "inputs"))
            data = prepare_data(spec, shared, fetched)
            base_dir = Path(fetched[BASE_MODEL_KEY])
            backend = make_backend(backend_name, spec, base_dir, scratch, ranks, shared)
            timer.measure("prepareNode", lambda: backend.prepare_node(data))
            manifest.write_text(json.dumps(fetched), encoding="utf-8")
        except Exception as exc:
            failure = _failure_of(exc)
            log.exception("preparing node %d failed", ranks.node_rank)
        reports.report(failure)
    failed = timer.measure("waitForNodes", reports.wait_all)
    if failed is not None:
        raise TrialFailure(*failed)
    if not ranks.local_zero:
        fetched = json.loads(manifest.read_text(encoding="utf-8"))
        data = prepare_data(spec, shared, fetched)
        backend = make_backend(backend_name, spec, Path(fetched[BASE_MODEL_KEY]), scratch, ranks, shared)
    return data, backend


def _run(
    spec: TrialSpec,
    backend_name: str,
    routed: str | None,
    ranks: Ranks,
    scratch: Path,
    shared: Path,
    timer: Timer,
    started: float,
) -> TrialResult:
    data, backend = _prepare(spec, backend_name, ranks, scratch, shared, timer)
    outcome = timer.measure("train", lambda: backend.train(data))
    if not ranks.global_zero:  # its share of training is done; rank 0 exports, evaluates and reports
        return TrialResult(status="succeeded", backend=backend_name, steps=outcome.steps)
    out = scratch / "output"
    timer.measure("export", lambda: backend.save_adapter(out / "adapter"))
    judge_summary: JudgeSummary | None = None
    samples: list[dict[str, Any]] = []
    eval_info: dict[str, Any] = {}
    if spec.evaluation is not None:
        judge_summary, samples, eval_info = timer.measure("evaluate", lambda: evaluate(spec, backend, scratch))
    adapter_uri = storage.join(spec.output_uri, "adapter")
    metrics_uri = storage.join(spec.output_uri, "metrics.json")
    metrics = {
        "version": METRICS_VERSION,
        "trial": spec.name,
        "finetuneJob": spec.finetune_job,
        "method": spec.method,
        "backend": {"requested": spec.backend, "used": backend_name, "routedBecause": routed},
        "spec": spec.model_dump(by_alias=True, mode="json"),
        "parameters": spec.parameters,
        "plan": outcome.plan.__dict__,
        "observed": outcome.observed,
        "scheduleCheck": schedule_check(spec, outcome),
        "lossCurve": outcome.loss_curve,
        "trainLoss": outcome.train_loss,
        "validationLossBefore": outcome.validation_loss_before,
        "validationLoss": outcome.validation_loss,
        "validationMetrics": outcome.extra_eval,
        "steps": outcome.steps,
        "data": {k: v.to_dict() for k, v in data.fingerprints.items()} | {"split": data.split},
        "evaluation": eval_info
        | {
            "summary": judge_summary.model_dump(by_alias=True, mode="json") if judge_summary else None,
            "samples": samples,
        },
        "timings": {"phases": timer.seconds, "trainer": outcome.seconds, "steps": outcome.step_seconds},
        "distributed": ranks.describe(),
        "versions": versions(),
        "adapterUri": adapter_uri,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    (out / "trial.json").write_text(spec.model_dump_json(by_alias=True, indent=2) + "\n", encoding="utf-8")
    try:
        timer.measure("upload", lambda: storage.put_tree(out, spec.output_uri))
    except Exception as exc:
        raise TrialFailure("UploadFailed", f"writing {spec.output_uri}: {type(exc).__name__}: {exc}") from exc
    return TrialResult(
        status="succeeded",
        message=routed,
        backend=backend_name,
        validation_loss=_round(outcome.validation_loss),
        train_loss=_round(outcome.train_loss),
        steps=outcome.steps,
        judge=judge_summary,
        adapter_uri=adapter_uri,
        metrics_uri=metrics_uri,
        duration_seconds=round(time.monotonic() - started, 3),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
