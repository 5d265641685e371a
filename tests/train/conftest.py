"""Fixtures of the trial-runner tests: the tiny Llama (built once), the stand-in judge, and helpers to
run the real entrypoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the train tests need the training extra")

from testworld.judge import StandInJudge
from testworld.tiny_model import build


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("tiny-llama"), seed=0)


@pytest.fixture(scope="session")
def judge() -> Iterator[StandInJudge]:
    with StandInJudge() as server:
        yield server
