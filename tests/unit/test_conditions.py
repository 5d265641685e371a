from __future__ import annotations

from adapterops.runtime.conditions import set_condition


def test_transition_time_moves_only_when_status_changes() -> None:
    first = set_condition([], "Ready", True, "Serving", "ok", 1)
    first[0]["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    same = set_condition(first, "Ready", True, "Serving", "still ok", 2)
    assert same[0]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert same[0]["observedGeneration"] == 2 and same[0]["message"] == "still ok"
    flipped = set_condition(same, "Ready", False, "Degraded", "down", 2)
    assert flipped[0]["lastTransitionTime"] != "2020-01-01T00:00:00Z"
    assert [c["type"] for c in flipped] == ["Ready"]


def test_merge_patch_nulls_removed_keys_at_any_depth() -> None:
    from adapterops.runtime.manager import merge_patch

    old = {"canary": {"revision": "a"}, "cost": {"stable": 1, "canary": 2}, "weight": 10, "same": [1]}
    new = {"cost": {"stable": 1}, "weight": 0, "same": [1]}
    assert merge_patch(old, new) == {"canary": None, "cost": {"canary": None}, "weight": 0}
