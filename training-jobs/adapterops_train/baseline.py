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

from adapterops_common import judge, storage
from adapterops_common.contract import JudgeSummary, PairwiseSummary, TrialResult, TrialSpec
from adapterops_common.pairwise import Row, Tally, compare_all_sync
from adapterops_train.dataset import DatasetError, load_challenge_set
from adapterops_train.hyper import HyperparameterError
from adapterops_train.runner import (
    GENERATION_MAX_NEW_TOKENS,
    METRICS_VERSION,
    Timer,
    TrialFailure,
    _failed,
    _item_rubric,
    _round,
    evaluate,
    fetch_base_model,
    prepare_data,
    versions,
    workdir_root,
)

log = logging.getLogger(__name__)


def run_baseline(spec: TrialSpec, champion_adapter: str | None = None) -> TrialResult:
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix=f"baseline-{spec.name}-", dir=workdir_root()))
    try:
        return _run(spec, scratch, started, champion_adapter)
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


def _run(spec: TrialSpec, scratch: Path, started: float, champion_adapter: str | None) -> TrialResult:
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
    pairwise: PairwiseSummary | None = None
    if spec.evaluation is not None and champion_adapter:
        pairwise, compared = timer.measure(
            "pairwise", lambda: compare_champion(spec, base_dir, champion_adapter, samples, scratch)
        )
        eval_info["pairwise"] = {"champion": champion_adapter, "comparisons": compared}
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
        pairwise=pairwise,
        metrics_uri=storage.join(spec.output_uri, "metrics.json"),
        duration_seconds=round(time.monotonic() - started, 3),
    )


def compare_champion(
    spec: TrialSpec, base_dir: Path, adapter_uri: str, base_samples: list[dict[str, Any]], scratch: Path
) -> tuple[PairwiseSummary, list[dict[str, Any]]]:
    """The champion's answers to the challenge prompts (its adapter on the base model, the trials' generation
    path), each compared with the base model's answer by the judge in both orders."""
    from adapterops_train.backends.hf import generate_answers, load_for_generation

    ev = spec.evaluation
    assert ev is not None
    try:
        adapter = storage.fetch_tree(adapter_uri, scratch / "champion")
        challenge = storage.fetch_file(ev.dataset, scratch / "challenge-pairwise")
    except storage.UriNotFound as exc:
        raise TrialFailure("AdapterNotFound", str(exc)) from exc
    items = load_challenge_set(challenge, source=ev.dataset)[: ev.samples]
    model, tokenizer = load_for_generation(base_dir, adapter, spec.training.precision)
    answers = generate_answers(model, tokenizer, items, GENERATION_MAX_NEW_TOKENS)
    base_answers = {s["id"]: s["answer"] for s in base_samples}
    config = judge.JudgeConfig(endpoint=ev.judge.endpoint, model=ev.judge.model, api_key=judge.read_api_key())
    fallback = judge.rubric_text(ev.rubric.builtin, ev.rubric.text)
    rows: list[Row] = [
        (i.prompt, a, base_answers[i.id], i.reference, _item_rubric(spec, i, fallback))  # as evaluate() scores
        for i, a in zip(items, answers, strict=True)
    ]
    comparisons = compare_all_sync(config, fallback, rows)
    tally = Tally.of(comparisons)
    failed = next((c for c in comparisons if c.status != "ok"), None)
    status = "ok" if tally.pairs else (failed.status if failed else "invalid")
    summary = PairwiseSummary(
        status=status,
        pairs=tally.pairs,
        wins=tally.wins,
        ties=tally.ties,
        losses=tally.losses,
        win_rate=tally.win_rate,
        agreement=tally.agreement,
        message=f"{tally.failed} comparisons failed: {failed.message}" if failed else None,
    )
    compared = [
        {"id": i.id, "champion": a, "base": base_answers[i.id], "outcome": c.outcome, "agree": c.agree}
        for i, a, c in zip(items, answers, comparisons, strict=True)
    ]
    return summary, compared
