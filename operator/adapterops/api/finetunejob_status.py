"""FineTuneJob status: the leaderboard, the champion and the baseline (typed; the kind is in finetunejob.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from adapterops.api.common import ApiModel, Conditions

TrialState = Literal["Pending", "Running", "Succeeded", "Failed"]


class Trial(ApiModel):
    """One row of the sweep's leaderboard, recomputed from the trial's Job and pods."""

    name: str = Field(description="Trial name (also the Job name).")
    index: int = Field(description="Position in the sweep plan.")
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Swept values of this trial.",
        json_schema_extra={"additionalProperties": {"x-kubernetes-preserve-unknown-fields": True}},
    )
    state: TrialState = Field(description="Pending, Running, Succeeded or Failed.")
    attempts: int = Field(default=0, description="Pods started for this trial (1 + retries).")
    validation_loss: float | None = Field(default=None, description="Validation loss at the end of training.")
    judge_score: float | None = Field(default=None, description="Mean judge score on the challenge set (0-5).")
    adapter_uri: str | None = Field(default=None, description="Where the trial's adapter was written.")
    message: str | None = Field(default=None, description="Why the trial failed, when it did.")
    start_time: datetime | None = Field(default=None, description="When the trial's Job started.")
    completion_time: datetime | None = Field(default=None, description="When the trial finished.")


class TrialCounts(ApiModel):
    total: int = Field(default=0, description="Trials in the plan.")
    pending: int = Field(default=0, description="Not started yet (or waiting for admission).")
    running: int = Field(default=0, description="Running now.")
    succeeded: int = Field(default=0, description="Finished with a result.")
    failed: int = Field(default=0, description="Failed after all retries.")


class PairwiseResult(ApiModel):
    """The champion's answers against the base model's, judged pairwise in both orders (champion's side)."""

    status: Literal["ok", "unavailable", "invalid"] = Field(description="ok, or why the judge could not compare.")
    pairs: int = Field(default=0, description="Prompts compared in both orders.")
    wins: int = Field(default=0, description="Prompts the champion won.")
    ties: int = Field(default=0, description="Ties, including a judge whose two orders disagreed.")
    losses: int = Field(default=0, description="Prompts the base model won.")
    win_rate: float | None = Field(default=None, description="Champion's win rate, ties counting half.")
    agreement: float | None = Field(
        default=None, description="Share of pairs whose two orders agreed (1: no position bias seen)."
    )
    message: str | None = Field(default=None, description="What failed, when something did.")


class Baseline(ApiModel):
    """The base model's row: the same numbers as a trial's, with no adapter."""

    job: str = Field(description="The evaluation Job's name.")
    state: TrialState = Field(description="Pending, Running, Succeeded or Failed.")
    validation_loss: float | None = Field(default=None, description="Base model's loss on the validation split.")
    judge_score: float | None = Field(default=None, description="Base model's mean judge score (0-5).")
    message: str | None = Field(default=None, description="Why the evaluation failed, or what it lacks.")
    pairwise: PairwiseResult | None = Field(
        default=None, description="The champion compared with the base model, pairwise (spec.baseline.pairwise)."
    )
    start_time: datetime | None = Field(default=None, description="When the Job started.")
    completion_time: datetime | None = Field(default=None, description="When it finished.")


class Improvement(ApiModel):
    """The champion against the baseline on spec.objective.metric; positive is better, whatever the goal."""

    metric: Literal["judgeScore", "validationLoss"] = Field(description="The objective's metric.")
    absolute: float = Field(description="Champion minus baseline (judgeScore) or baseline minus champion (loss).")
    relative: float | None = Field(
        default=None, description="absolute / |baseline| (0.23 is the paper's +23%); none when the baseline is 0."
    )
    min_improvement: float = Field(description="spec.baseline.minImprovement when this was computed.")
    better_than_baseline: bool = Field(description="absolute > minImprovement.")


class Champion(ApiModel):
    trial: str = Field(description="Winning trial.")
    adapter_uri: str = Field(description="URI of its adapter.")
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Its swept values.",
        json_schema_extra={"additionalProperties": {"x-kubernetes-preserve-unknown-fields": True}},
    )
    validation_loss: float | None = Field(default=None, description="Its validation loss.")
    judge_score: float | None = Field(default=None, description="Its mean judge score.")
    improvement: Improvement | None = Field(
        default=None, description="Its improvement over the baseline, once the baseline is evaluated."
    )


class FineTuneJobStatus(ApiModel):
    observed_generation: int | None = Field(default=None, description="Generation the status describes.")
    conditions: Conditions
    state: Literal["Pending", "Running", "Succeeded", "Failed", "Suspended"] | None = Field(
        default=None, description="One-word summary for kubectl get."
    )
    progress: str | None = Field(default=None, description="Finished/total trials, e.g. 7/20.")
    trial_counts: TrialCounts | None = Field(default=None, description="Trials by state.")
    trials: list[Trial] = Field(
        default_factory=list,
        description="Leaderboard rows, one per trial.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    champion: Champion | None = Field(default=None, description="Best succeeded trial by spec.objective.")
    baseline: Baseline | None = Field(
        default=None, description="The base model's evaluation (spec.baseline), once the trials have finished."
    )
    start_time: datetime | None = Field(default=None, description="When the first trial started.")
    completion_time: datetime | None = Field(default=None, description="When the sweep finished.")
