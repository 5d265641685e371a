"""What this process last applied, per owner: re-applying an unchanged manifest to a child the informers
still show would be a no-op request, so it is skipped, and then re-sent at least every `ttl` seconds in
case the child drifted in a way no informer reports (level-based, at a bounded cost at rest)."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from adapterops.runtime.workqueue import Key

Child = tuple[str, str]  # (kind, name)


def _digest(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class AppliedCache:
    ttl: float = 600.0
    _by_owner: dict[Key, dict[Child, tuple[str, float]]] = field(default_factory=dict)

    def unchanged(self, owner: Key, manifest: dict[str, Any]) -> bool:
        """True when exactly this manifest was applied for `owner` less than `ttl` seconds ago."""
        found = self._by_owner.get(owner, {}).get((manifest["kind"], manifest["metadata"]["name"]))
        return found is not None and found[0] == _digest(manifest) and time.monotonic() - found[1] < self.ttl

    def remember(self, owner: Key, manifest: dict[str, Any]) -> None:
        child = (manifest["kind"], manifest["metadata"]["name"])
        self._by_owner.setdefault(owner, {})[child] = (_digest(manifest), time.monotonic())

    def forget(self, owner: Key) -> None:
        self._by_owner.pop(owner, None)
