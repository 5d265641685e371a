"""The `world` fixture: the ModelDeployment reconciler over an in-memory API (see deploy_fixtures)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from deploy_fixtures import World


@pytest.fixture
async def world(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    w = World(monkeypatch)
    yield w
    await w.close()
