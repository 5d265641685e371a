"""metav1.Condition helpers: conditions are recomputed each reconcile, transitions keep their time."""

from __future__ import annotations

from adapterops.api.common import Condition, get_condition
from adapterops.runtime.clock import now


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    generation: int | None,
) -> list[Condition]:
    """`conditions` with `type_` set; lastTransitionTime only moves when the status changes."""
    value = "True" if status else "False"
    old = get_condition(conditions, type_)
    new = Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message,
        last_transition_time=old.last_transition_time if old is not None and old.status == value else now(),
        observed_generation=generation,
    )
    return [c for c in conditions if c.type != type_] + [new]
