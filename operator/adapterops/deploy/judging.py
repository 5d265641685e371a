"""The canary's paired judge per ModelDeployment, and its evidence recorded across operator restarts.

One judge per canary test (revision and start: a new canary or a retried step is a new test). Its scores
are recorded in a ConfigMap the ModelDeployment owns, at most every EVIDENCE_SAVE_SECONDS, and restored
only for that very test, so a restarted operator carries the sequential test on instead of starting it
over (pairs are appended in judging order and the test only bets on earlier pairs, so restored pairs
keep its guarantee).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lightkube.resources.core_v1 import ConfigMap

from adapterops.analysis.providers.judge import PairedJudge, parse_prompts
from adapterops.analysis.providers.pairwise import PairwiseJudge
from adapterops.api.modeldeployment import ModelDeploymentSpec
from adapterops.config import Config
from adapterops.deploy import builders
from adapterops.deploy.dataset import DatasetError, read_dataset, secret_value
from adapterops.runtime.acceptance import REFUSED_RETRY_SECONDS
from adapterops.runtime.client import Client
from adapterops.runtime.clock import now
from adapterops.runtime.events import EventRecorder
from adapterops.runtime.workqueue import Key

log = logging.getLogger(__name__)

EVIDENCE_SAVE_SECONDS = 10.0
Pair = tuple[float | None, float | None]


@dataclass(frozen=True)
class Comparison:
    """What the paired judge asks each side: the served model name on the stable and on the canary
    revision. Like with like: never a name the stable revision does not serve (that request must 404)."""

    stable_model: str
    canary_model: str
    problem: str | None = None  # the spec's declared baseline is not served by the stable revision

    @property
    def said(self) -> str:
        if self.stable_model == self.canary_model:
            return f"{self.canary_model} on both revisions"
        return f"{self.canary_model} on the canary vs {self.stable_model} on stable"


def comparison(spec: ModelDeploymentSpec, stable: dict[str, str], canary: dict[str, str]) -> Comparison:
    """The first changed adapter (by name) against what it is compared with on stable: the same name when
    stable serves it; else the adapter it `replaces`, or the base model when the spec declares none."""
    base = spec.base_model.name
    changed = sorted(n for n, u in canary.items() if stable.get(n) != u)
    if not changed:  # only removals, or nothing changed in the adapters: the first adapter both serve
        both = sorted(set(canary) & set(stable))
        return Comparison(both[0], both[0]) if both else Comparison(base, base)
    name = changed[0]
    if name in stable:
        return Comparison(name, name)
    declared = next((a.replaces for a in spec.adapters if a.name == name), None)
    if declared is None:
        return Comparison(base, name)
    if declared not in stable:
        serves = ", ".join(sorted(stable)) or "no adapter, only the base model"
        return Comparison(
            base,
            name,
            problem=f"spec.adapters[{name}].replaces: the stable revision serves no adapter {declared!r} (it serves: "
            f"{serves}); name one it serves, or remove the field to compare {name} with the base model {base}",
        )
    return Comparison(declared, name)


class CanaryJudges:
    def __init__(
        self,
        client: Client,
        config: Config,
        events: EventRecorder,
        apply: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        self.client, self.config, self.events, self.apply = client, config, events, apply
        self.by_key: dict[Key, tuple[str, PairedJudge]] = {}  # (test, judge)
        self.saved: dict[Key, tuple[int, datetime]] = {}  # pairs recorded, and when
        # Why judging could not start, per ModelDeployment: (test, problem, when). The dataset is read again
        # after REFUSED_RETRY_SECONDS, and a Warning Event posted when the problem changes.
        self.failures: dict[Key, tuple[str, str, datetime]] = {}

    def __contains__(self, key: Key) -> bool:
        return key in self.by_key

    def close(self) -> None:
        for _, judge in self.by_key.values():
            judge.stop()

    def forget(self, key: Key) -> None:
        """The ModelDeployment is gone: nothing of it stays."""
        self.drop(key)
        self.failures.pop(key, None)

    def drop(self, key: Key) -> None:
        found = self.by_key.pop(key, None)
        self.saved.pop(key, None)
        if found is not None:
            found[1].stop()

    async def judge(
        self,
        body: dict[str, Any],
        spec: ModelDeploymentSpec,
        test: str,
        stable_url: str | None,
        canary_url: str | None,
        compared: Comparison,
    ) -> PairedJudge | None:
        """This canary test's judge, judging once both sides have a ready pod; None without a judge metric.
        A comparison of other models is another test (its evidence is not this one's)."""
        j = spec.canary.analysis.judge
        if j is None:
            return None
        if compared.stable_model != compared.canary_model:
            test = f"{test} {compared.stable_model}->{compared.canary_model}"
        if compared.problem:  # a spec that fixes it (e.g. by dropping `replaces`) is tried at once
            test = f"{test} (no baseline)"
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        current = self.by_key.get(key)
        if current is None or current[0] != test:
            self.drop(key)
            failed = self.failures.get(key)
            if failed is not None and failed[0] != test:
                failed = None
            if failed is not None and (now() - failed[2]).total_seconds() < REFUSED_RETRY_SECONDS:
                return PairedJudge([], j, None, 0, problem=failed[1])
            try:
                if compared.problem:
                    raise ValueError(compared.problem)
                text = await read_dataset(self.client, self.config, key[0], j.dataset, spec.storage_secret_ref)
                prompts = parse_prompts(text)
                del text  # up to judge_dataset_max_bytes: not kept beside the parsed prompts
                ref = j.judge.api_key_secret_ref
                where = "spec.canary.analysis.judge.judge.apiKeySecretRef"
                api_key = await secret_value(self.client, key[0], ref, where) if ref else None
            except (DatasetError, ValueError) as exc:  # the judge metric is inconclusive and says why
                problem = f"cannot start paired judging: {exc}"
                if failed is None or failed[1] != problem:
                    await self.events.emit(body, "PairedJudgingNotStarted", problem, "Warning")
                self.failures[key] = (test, problem, now())
                return PairedJudge([], j, None, 0, problem=problem)
            self.failures.pop(key, None)
            pairs = await self._recorded(key, test)
            # Rubric scores or pairwise comparisons: the same evidence (pairs), recorded and restored alike.
            judge_class = PairwiseJudge if j.mode == "pairwise" else PairedJudge
            current = self.by_key[key] = (
                test,
                judge_class(prompts, j, api_key, j.samples, pairs=pairs, compared=compared.said),
            )
            self.saved[key] = (len(pairs), now())
        judge = current[1]
        if stable_url and canary_url:
            judge.start(stable_url, canary_url, compared.stable_model, compared.canary_model)
        return judge

    async def save(self, body: dict[str, Any], key: Key, judge: PairedJudge) -> None:
        """Record new pairs, at most every EVIDENCE_SAVE_SECONDS (a restart loses at most that much)."""
        saved, at = self.saved.get(key, (0, datetime.min.replace(tzinfo=UTC)))
        pairs = list(judge.pairs)
        if len(pairs) <= saved or (now() - at).total_seconds() < EVIDENCE_SAVE_SECONDS:
            return
        await self.apply(builders.judge_evidence(body, self.by_key[key][0], pairs))
        self.saved[key] = (len(pairs), now())

    async def _recorded(self, key: Key, test: str) -> list[Pair]:
        """Pairs judged for this very test before a restart (a new canary or a retried step starts afresh)."""
        namespace, name = key
        cm = await self.client.get(ConfigMap, namespace, builders.judge_evidence_name(name))
        data = (cm or {}).get("data") or {}
        if data.get("test") != test:
            return []
        try:
            return [(a, b) for a, b in json.loads(data.get("pairs.json") or "[]")]
        except (ValueError, TypeError):
            log.warning("%s/%s: unreadable judge evidence; judging from the start", namespace, name)
            return []
