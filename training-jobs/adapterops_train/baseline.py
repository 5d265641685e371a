"""The baseline: the base model (no adapter) evaluated exactly as a trial evaluates its adapter.

`python -m adapterops_train baseline --spec trial.json` reads a trial spec (the FineTuneJob's, with no
swept values), and instead of training computes the base model's validation loss on the trials' split
and its judge score on the same challenge set, judge and rubric. It answers with a `TrialResult` (no
adapter) and writes `metrics.json` to the spec's outputUri, as a trial does. Failures are results with a
reason, as for trials (`runner.run_trial`).

The hf backend runs it whatever the sweep's backend: an evaluation needs transformers, not Megatron. For
a NeMo sweep the base model's loss is then computed by another implementation than the trials' (same
data and template, completion-only loss): compare with care (docs/design-decisions.md).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from adapterops_common import storage
from adapterops_common.contract import JudgeSummary, TrialResult, TrialSpec
from adapterops_train.dataset import DatasetError
from adapterops_train.hyper import HyperparameterError
from adapterops_train.runner import (
    METRICS_VERSION,
    Timer,
    TrialFailure,
    _failed,
    _round,
    evaluate,
    fetch_base_model,
    prepare_data,
    versions,
    workdir_root,
)

log = logging.getLogger(__name__)


def run_baseline(spec: TrialSpec) -> TrialResult:
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix=f"baseline-{spec.name}-", dir=workdir_root()))
    try:
        return _run(spec, scratch, started)
    except TrialFailure as exc:
        return _failed(exc.reason, str(exc), "hf", started)
    except DatasetError as exc:
        return _failed("DatasetInvalid", str(exc), "hf", started)
    except HyperparameterError as exc:
        return _failed("SpecInvalid", str(exc), "hf", started)
    except MemoryError as exc:
        return _failed("OutOfMemory", f"host memory exhausted: {exc}", "hf", started)
    except Exception as exc:
        if type(exc).__name__ == "OutOfMemoryError":
            return _failed("OutOfMemory", str(exc), "hf", started)
        log.exception("baseline failed")
        return _failed("EvaluationFailed", f"{type(exc).__name__}: {exc}", "hf", started)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(spec: TrialSpec, scratch: Path, started: float) -> TrialResult:
    from adapterops_train.backends.hf import HfBackend  # torch loads only here

    timer = Timer()
    data = timer.measure("data", lambda: prepare_data(spec, scratch))
    base_dir = timer.measure("baseModel", lambda: fetch_base_model(spec, scratch))
    backend = timer.measure("setup", lambda: HfBackend(spec, base_dir, scratch))
    validation_loss = timer.measure("validation", lambda: backend.evaluate_base(data))
    judge_summary: JudgeSummary | None = None
    samples: list[dict[str, Any]] = []
    eval_info: dict[str, Any] = {}
    if spec.evaluation is not None:
        judge_summary, samples, eval_info = timer.measure("evaluate", lambda: evaluate(spec, backend, scratch))
    out = scratch / "output"
    out.mkdir(parents=True, exist_ok=True)
    metrics = {
        "version": METRICS_VERSION,
        "baseline": spec.name,
        "finetuneJob": spec.finetune_job,
        "method": spec.method,
        "backend": {"requested": spec.backend, "used": "hf"},
        "baseModel": spec.base_model.model_dump(by_alias=True),
        "validationLoss": validation_loss,
        "data": {k: v.to_dict() for k, v in data.fingerprints.items()} | {"split": data.split},
        "evaluation": eval_info
        | {
            "summary": judge_summary.model_dump(by_alias=True, mode="json") if judge_summary else None,
            "samples": samples,
        },
        "timings": {"phases": timer.seconds},
        "versions": versions(),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    try:
        timer.measure("upload", lambda: storage.put_tree(out, spec.output_uri))
    except Exception as exc:
        raise TrialFailure("UploadFailed", f"writing {spec.output_uri}: {type(exc).__name__}: {exc}") from exc
    return TrialResult(
        status="succeeded",
        backend="hf",
        validation_loss=_round(validation_loss),
        judge=judge_summary,
        metrics_uri=storage.join(spec.output_uri, "metrics.json"),
        duration_seconds=round(time.monotonic() - started, 3),
    )
