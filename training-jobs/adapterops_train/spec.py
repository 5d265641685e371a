"""The trial spec: what one trial pod is asked to do, and the result it hands back.

The operator writes a `TrialSpec` (the FineTuneJob's spec with this trial's sweep values applied) into
a ConfigMap mounted at `/etc/adapterops/trial.json`; the trial runner reads it. The runner's answer is
a `TrialResult`, written as compact JSON to `/dev/termination-log`, where the kubelet picks it up as
the container's termination message (at most 4096 bytes) and the operator reads it from the pod status.

Both sides import this module, so it depends on pydantic and the API models only (no torch).
"""

from __future__ import annotations

import json
from typing import Any, Final, Literal

from pydantic import Field

from adapterops.api.common import ApiModel, BaseModelRef
from adapterops.api.finetunejob import Dataset, Evaluation, Lora, Training

TRIAL_SPEC_VERSION: Final = "adapterops.io/trial-spec/v1"
RESULT_VERSION: Final = 1
TERMINATION_MESSAGE_LIMIT = 4096
# Exit codes of `python -m adapterops_train run`: the operator's podFailurePolicy fails a trial's Job at
# once on EXIT_PERMANENT (retrying cannot fix a bad spec, dataset or base model) and retries EXIT_FAILED.
EXIT_FAILED = 1
EXIT_PERMANENT = 2
PERMANENT_REASONS = frozenset(
    {"SpecInvalid", "DatasetInvalid", "DatasetNotFound", "BaseModelNotFound", "BackendUnavailable"}
)
# Where the operator mounts things in a trial pod.
TRIAL_SPEC_PATH = "/etc/adapterops/trial.json"
JUDGE_API_KEY_PATH = "/var/run/secrets/adapterops/judge/api-key"
PVC_ROOT = "/mnt/pvc"


class TrialSpec(ApiModel):
    """Everything a trial needs, resolved: no defaults are left to the runner."""

    api_version: Literal["adapterops.io/trial-spec/v1"] = TRIAL_SPEC_VERSION
    name: str = Field(description="Trial name, also the adapter's directory name.")
    finetune_job: str = Field(description="Owning FineTuneJob (namespace/name).")
    method: Literal["sft", "dpo"]
    backend: Literal["nemo", "hf"]
    base_model: BaseModelRef
    dataset: Dataset
    lora: Lora
    training: Training
    evaluation: Evaluation | None = None
    output_uri: str = Field(description="Folder this trial writes: <spec.output.uri>/<job>/<trial>.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="This trial's swept values.")
    gpus: int = Field(default=1, description="GPUs per node given to the trial.")
    nodes: int = Field(default=1, description="Nodes given to the trial.")


class JudgeSummary(ApiModel):
    status: Literal["ok", "unavailable", "invalid"] = Field(
        description="ok: scores below are real; unavailable: judge unreachable; invalid: judge answered garbage."
    )
    mean: float | None = None
    std: float | None = None
    samples: int = Field(default=0, description="Answers that got a real score (the mean is over these).")
    requested: int = Field(default=0, description="Answers sent to the judge.")
    message: str | None = None


class TrialResult(ApiModel):
    """The termination-message document (versioned; keep it well under 4096 bytes)."""

    v: Literal[1] = RESULT_VERSION
    status: Literal["succeeded", "failed"]
    reason: str | None = Field(default=None, description="CamelCase failure reason, e.g. DatasetInvalid.")
    message: str | None = Field(default=None, description="Human-readable detail (truncated to fit).")
    backend: str | None = None
    validation_loss: float | None = None
    train_loss: float | None = None
    steps: int | None = None
    judge: JudgeSummary | None = None
    adapter_uri: str | None = None
    metrics_uri: str | None = None
    duration_seconds: float | None = None

    def to_termination_message(self) -> str:
        """Compact JSON within the kubelet's limit; an over-long message is cut, never the numbers."""
        doc = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        text = _compact(doc)
        if len(text.encode()) > TERMINATION_MESSAGE_LIMIT and doc.get("message"):
            overflow = len(text.encode()) - TERMINATION_MESSAGE_LIMIT
            doc["message"] = doc["message"][: max(0, len(doc["message"]) - overflow - 16)] + "..."
            text = _compact(doc)
        return text


def _compact(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=True)
