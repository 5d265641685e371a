"""The FineTuneJob benchmark's fake trial pods finish with a result the operator accepts: when the trial
contract changes, the benchmark's kwok stage must follow (else every benchmark trial fails as
ResultMalformed and the figures measure failures)."""

from __future__ import annotations

from pathlib import Path

import yaml

from adapterops_common.contract import TrialResult

STAGE = Path(__file__).resolve().parents[2] / "bench" / "finetune" / "pod-complete-trial.yaml"


def test_the_benchmark_trial_pods_report_a_result_of_the_current_contract() -> None:
    template = yaml.safe_load(STAGE.read_text())["spec"]["next"]["statusTemplate"]
    line = next(line for line in template.splitlines() if line.strip().startswith("message:"))
    message = yaml.safe_load(line.strip().removeprefix("message:").strip())
    result = TrialResult.model_validate_json(message.replace("{{ $root.metadata.name }}", "sweep-000-t00"))
    assert result.status == "succeeded"
    assert result.adapter_uri == "s3://bench/sweep-000-t00/adapter"
