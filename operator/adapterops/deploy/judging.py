"""The canary's paired judge per ModelDeployment, and its evidence recorded across operator restarts.

One judge per canary test (revision and start: a new canary or a retried step is a new test). Its scores
are recorded in a ConfigMap the ModelDeployment owns, at most every EVIDENCE_SAVE_SECONDS, and restored
only for that very test, so a restarted operator carries the sequential test on instead of starting it
over (pairs are appended in judging order and the test only bets on earlier pairs, so restored pairs
keep its guarantee).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lightkube.resources.core_v1 import ConfigMap, Secret

from adapterops.analysis.providers.judge import PairedJudge, parse_prompts
from adapterops.api.common import SecretKeyRef
from adapterops.api.modeldeployment import ModelDeploymentSpec
from adapterops.deploy import builders
from adapterops.runtime.client import Client
from adapterops.runtime.clock import now
from adapterops.runtime.workqueue import Key

log = logging.getLogger(__name__)

EVIDENCE_SAVE_SECONDS = 10.0
Pair = tuple[float | None, float | None]


class CanaryJudges:
    def __init__(self, client: Client, apply: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        self.client = client
        self.apply = apply
        self.by_key: dict[Key, tuple[str, PairedJudge]] = {}  # (test, judge)
        self.saved: dict[Key, tuple[int, datetime]] = {}  # pairs recorded, and when

    def __contains__(self, key: Key) -> bool:
        return key in self.by_key

    def close(self) -> None:
        for _, judge in self.by_key.values():
            judge.stop()

    def drop(self, key: Key) -> None:
        found = self.by_key.pop(key, None)
        self.saved.pop(key, None)
        if found is not None:
            found[1].stop()

    async def judge(
        self,
        key: Key,
        spec: ModelDeploymentSpec,
        test: str,
        stable_url: str | None,
        canary_url: str | None,
        model: str | None,
    ) -> PairedJudge | None:
        """This canary test's judge, judging once both sides have a ready pod; None without a judge metric."""
        j = spec.canary.analysis.judge
        if j is None:
            return None
        current = self.by_key.get(key)
        if current is None or current[0] != test:
            self.drop(key)
            namespace = key[0]
            try:
                prompts = parse_prompts(await self._read_dataset(namespace, j.dataset))
                api_key = (
                    await self._secret(namespace, j.judge.api_key_secret_ref) if j.judge.api_key_secret_ref else None
                )
            except (LookupError, OSError, ValueError) as exc:  # the judge metric is inconclusive and says why
                return PairedJudge([], j, None, 0, problem=f"cannot start paired judging: {exc}")
            pairs = await self._recorded(key, test)
            current = self.by_key[key] = (test, PairedJudge(prompts, j, api_key, j.samples, pairs=pairs))
            self.saved[key] = (len(pairs), now())
        judge = current[1]
        if stable_url and canary_url and model:
            judge.start(stable_url, canary_url, model)
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

    async def _read_dataset(self, namespace: str, uri: str) -> str:
        if uri.startswith("configmap://"):
            name, _, item = uri.removeprefix("configmap://").partition("/")
            cm = await self.client.get(ConfigMap, namespace, name)
            if cm is None or item not in (cm.get("data") or {}):
                raise LookupError(f"ConfigMap {namespace}/{name} has no key {item!r}")
            return str(cm["data"][item])
        from adapterops_common import storage as uris

        def read() -> str:
            with tempfile.TemporaryDirectory() as tmp:
                return uris.fetch_file(uri, Path(tmp)).read_text()

        return await asyncio.to_thread(read)

    async def _secret(self, namespace: str, ref: SecretKeyRef) -> str:
        secret = await self.client.get(Secret, namespace, ref.name)
        if secret is None or ref.key not in (secret.get("data") or {}):
            raise LookupError(f"Secret {namespace}/{ref.name} has no key {ref.key!r}")
        return base64.b64decode(secret["data"][ref.key]).decode().strip()
