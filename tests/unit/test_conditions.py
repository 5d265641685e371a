"""Conditions keep their transition time unless their status flips; status patches null what went away."""

from __future__ import annotations

from datetime import UTC, datetime

from adapterops.runtime.conditions import set_condition
from adapterops.runtime.status import merge_patch

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def test_transition_time_moves_only_when_status_changes() -> None:
    first = set_condition([], "Ready", True, "Serving", "ok", 1)
    first[0].last_transition_time = LONG_AGO
    same = set_condition(first, "Ready", True, "Serving", "still ok", 2)
    assert same[0].last_transition_time == LONG_AGO
    assert same[0].observed_generation == 2 and same[0].message == "still ok"
    flipped = set_condition(same, "Ready", False, "Degraded", "down", 2)
    assert flipped[0].last_transition_time != LONG_AGO
    assert [c.type for c in flipped] == ["Ready"]


def test_condition_times_are_written_as_the_api_server_writes_them() -> None:
    condition = set_condition([], "Ready", True, "Serving", "ok", 1)[0]
    written = condition.model_dump(by_alias=True, mode="json")["lastTransitionTime"]
    assert datetime.strptime(written, "%Y-%m-%dT%H:%M:%SZ")  # RFC 3339, whole seconds, Z


def test_merge_patch_nulls_removed_keys_at_any_depth() -> None:
    old = {"canary": {"revision": "a"}, "cost": {"stable": 1, "canary": 2}, "weight": 10, "same": [1]}
    new = {"cost": {"stable": 1}, "weight": 0, "same": [1]}
    assert merge_patch(old, new) == {"canary": None, "cost": {"canary": None}, "weight": 0}
