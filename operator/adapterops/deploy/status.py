"""A ModelDeployment's status, typed (`ModelDeploymentStatus`): what one reconcile decided, turned into
revisions, analysis, a bounded history, conditions and the cost estimate."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from typing import Literal

from adapterops.analysis.verdict import MetricVerdict
from adapterops.api.common import get_condition, is_true
from adapterops.api.modeldeployment import (
    AnalysisStatus,
    Cost,
    HistoryEntry,
    MetricResult,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    MonthlyCost,
    ReplicaStatus,
    RevisionStatus,
)
from adapterops.config import Config
from adapterops.deploy import builders, engine
from adapterops.runtime.acceptance import Refusal
from adapterops.runtime.clock import now
from adapterops.runtime.conditions import set_condition
from adapterops.runtime.events import EventType

HISTORY_LIMIT = 10
# Hours in an average month, for status.estimatedMonthlyCost.
HOURS_PER_MONTH = 730
Outcome = Literal["Promoted", "RolledBack", "Superseded", "Initial"]


def revision_status(
    spec: ModelDeploymentSpec,
    revision: str,
    adapters: dict[str, str],
    replicas: int,
    ready: int,
    weight: int,
    config: Config,
) -> RevisionStatus:
    r = spec.runtime
    version, profile = engine.version_or_none(spec, config), engine.profile_or_none(spec, config)
    return RevisionStatus(
        revision=revision,
        adapters=adapters,
        engine=r.engine,
        image=engine.image_of(spec, config),
        engine_version=version.version if version else None,
        profile=profile.describe() if profile else None,
        tensor_parallel_size=r.tensor_parallel_size,
        gpu_type=r.gpu_type,
        replicas=replicas,
        ready_replicas=ready,
        weight=weight,
    )


def history_entry(revision: str, adapters: dict[str, str], outcome: Outcome, reason: str) -> HistoryEntry:
    return HistoryEntry(revision=revision, outcome=outcome, reason=reason, adapters=adapters, time=now())


def metric_result(verdict: MetricVerdict) -> MetricResult:
    return MetricResult(**dataclasses.asdict(verdict))


def monthly_cost(
    stable: RevisionStatus | None,
    canary: RevisionStatus | None,
    config: Config,
    throughput: dict[tuple[str, str], float | None] | None = None,
    old: ModelDeploymentStatus | None = None,
) -> MonthlyCost:
    """GPUs held x price per GPU hour x 730 hours, per role (desired replicas: what is reserved); with the
    output throughput measured this look (`throughput`, per role and revision: a revision promoted in this
    reconcile was measured at its canary share), the cost per million output tokens. A reconcile that did not
    look keeps the figures of the same role's same revision from `old`."""
    out = MonthlyCost()
    throughput = throughput or {}
    for role, rev in (("stable", stable), ("canary", canary)):
        gpu_class = config.gpu_classes.get(rev.gpu_type) if rev else None
        if rev is None or gpu_class is None:
            continue
        gpus = rev.replicas * rev.tensor_parallel_size
        cost = Cost(gpus=gpus, usd=round(gpus * gpu_class.price_per_hour * HOURS_PER_MONTH, 2))
        if (role, rev.revision) in throughput:
            tokens = throughput[role, rev.revision]
            cost.output_tokens_per_second = None if tokens is None else round(tokens, 3)
            if tokens and rev.weight > 0:  # a side without a traffic share serves only the judge: no price
                cost.cost_per_million_tokens = round(gpus * gpu_class.price_per_hour / (tokens * 3600) * 1e6, 4)
        elif not throughput and old is not None and (before := _role_cost(old, role, rev.revision)) is not None:
            cost.output_tokens_per_second = before.output_tokens_per_second
            cost.cost_per_million_tokens = before.cost_per_million_tokens
        setattr(out, role, cost)
        out.total_usd = round(out.total_usd + cost.usd, 2)
    return out


def _role_cost(status: ModelDeploymentStatus, role: str, revision: str) -> Cost | None:
    rev: RevisionStatus | None = getattr(status, role)
    if rev is None or rev.revision != revision or status.estimated_monthly_cost is None:
        return None
    cost: Cost | None = getattr(status.estimated_monthly_cost, role)
    return cost


def rolled_back(history: list[HistoryEntry], revision: str) -> HistoryEntry | None:
    """The rollback of `revision`, if that is the last thing that happened to it."""
    for entry in history:
        if entry.revision == revision:
            return entry if entry.outcome == "RolledBack" else None
    return None


def parse_interval(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", text)))


def seconds_since(moment: datetime | None) -> float:
    return 0.0 if moment is None else (now() - moment).total_seconds()


def refused_status(old: ModelDeploymentStatus, refusal: Refusal, generation: int | None) -> ModelDeploymentStatus:
    """Accepted=False; a stable revision that was serving keeps serving (and Ready says why it is frozen)."""
    conditions = set_condition(old.conditions, "Accepted", False, refusal.reason, refusal.message, generation)
    serving = old.stable is not None and is_true(old.conditions, "Ready")
    conditions = set_condition(conditions, "Ready", serving, "SpecRefused", refusal.message, generation)
    return old.model_copy(update={"conditions": conditions, "observed_generation": generation})


class RolloutState:
    """What one reconcile computes; `finish` turns it into the status."""

    def __init__(self, body_name: str, namespace: str, old: ModelDeploymentStatus, generation: int | None) -> None:
        self.name, self.namespace, self.old, self.generation = body_name, namespace, old, generation
        self.conditions = list(old.conditions)
        self.history = list(old.history)
        self.stable: RevisionStatus | None = None
        self.canary: RevisionStatus | None = None
        self.analysis: AnalysisStatus | None = None
        self.rolled_back: HistoryEntry | None = None
        self.rollback_cause = "AnalysisFailed"  # the RolledBack condition's reason
        self.events: list[tuple[str, str, EventType]] = []
        self.replicas: list[ReplicaStatus] = []  # InPlace: what each pod has loaded
        self.loading = False  # InPlace: some pods are loading the adapters asked of them (not a lost replica)
        self.throughput: dict[tuple[str, str], float | None] = {}  # output tokens/s per (role, revision) looked at
        self._progress: tuple[bool, str, str] | None = None
        self._suspend: tuple[str, str] | None = None

    def record(self, entry: HistoryEntry) -> None:
        self.history = [entry, *self.history][:HISTORY_LIMIT]

    def event(self, reason: str, message: str, type_: EventType = "Normal") -> None:
        self.events.append((reason, message, type_))

    def progress(self, reason: str, message: str) -> None:
        self._progress = (True, reason, message)

    def suspend(self, reason: str, message: str) -> None:
        self._suspend = (reason, message)
        self._progress = (True, reason, message)

    def finish(self, config: Config) -> ModelDeploymentStatus:
        g, stable = self.generation, self.stable
        ready = stable is not None and stable.ready_replicas >= stable.replicas
        if stable is not None:
            message = f"revision {stable.revision}: {stable.ready_replicas}/{stable.replicas} replicas ready"
            reason = "Serving" if ready else "LoadingAdapters" if self.loading else "StableNotReady"
            self.conditions = set_condition(self.conditions, "Ready", ready, reason, message, g)
        if self._progress is None:
            steady = f"revision {stable.revision} serves all traffic" if stable else "nothing to serve yet"
            self._progress = (not ready, "Steady" if ready else "StableNotReady", steady)
        self.conditions = set_condition(self.conditions, "Progressing", *self._progress, g)
        reason, message = self._suspend or ("NotSuspended", "")
        self.conditions = set_condition(self.conditions, "Suspended", self._suspend is not None, reason, message, g)
        previous = get_condition(self.conditions, "RolledBack")
        if self.rolled_back is not None:
            message = f"revision {self.rolled_back.revision} rolled back: {self.rolled_back.reason}"
            self.conditions = set_condition(self.conditions, "RolledBack", True, self.rollback_cause, message, g)
            self.conditions = set_condition(self.conditions, "Degraded", True, "RolledBack", message, g)
        else:
            if self.canary is not None:
                rolled = (False, "NewCanary", "a new revision is being canaried")
            elif previous is not None:
                rolled = (previous.status == "True", previous.reason, previous.message)
            else:
                rolled = (False, "NoRollback", "")
            self.conditions = set_condition(self.conditions, "RolledBack", *rolled, g)
            lost_replicas = (
                stable is not None and not ready and not self.loading and is_true(self.old.conditions, "Ready")
            )
            stuck = self.analysis is not None and self.analysis.stuck
            if lost_replicas:
                degraded = (True, "StableNotReady", "the stable revision lost ready replicas")
            elif stuck:
                degraded = (True, "ProgressDeadlineExceeded", self._suspend[1] if self._suspend else "canary stuck")
            else:
                degraded = (False, "Healthy", "")
            self.conditions = set_condition(self.conditions, "Degraded", *degraded, g)
        return ModelDeploymentStatus(
            observed_generation=g,
            conditions=self.conditions,
            stable=stable,
            canary=self.canary,
            canary_weight=self.canary.weight if self.canary else 0,
            analysis=self.analysis,
            history=self.history,
            endpoint=f"http://{self.name}.{self.namespace}.svc:{builders.PORT}/v1",
            estimated_monthly_cost=monthly_cost(stable, self.canary, config, self.throughput, self.old),
            replicas=self.replicas,
        )
