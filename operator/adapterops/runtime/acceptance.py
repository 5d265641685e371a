"""Refusals: a spec the operator will not act on, and why, naming the field and what is accepted.

CEL in the CRD refuses what one object can be checked for; what needs the operator's knowledge (GPU
classes, installed add-ons, a sweep plan) is refused here, shown as `Accepted=False` with the reason
and message, and announced once as a Warning Event.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from adapterops.api.common import Condition, get_condition
from adapterops.runtime.events import EventRecorder

M = TypeVar("M", bound=BaseModel)

# A refused object is looked at again this often (the missing piece, e.g. a Kueue queue, may appear).
REFUSED_RETRY_SECONDS = 30.0


class Refusal(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def parse_spec(model: type[M], doc: dict[str, Any]) -> M:
    """The typed spec, or a Refusal naming the first bad field as `spec.a.b: what is wrong`."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        # spelled as the API server spells it: spec.runtime.imagePullSecrets[0].name
        field = "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        raise Refusal("InvalidSpec", f"{field}: {err['msg']}") from exc


async def announce(events: EventRecorder, body: dict[str, Any], old: list[Condition], new: list[Condition]) -> None:
    """An Event when the Accepted condition changes: Normal when accepted, a Warning with the refusal."""
    before, after = get_condition(old, "Accepted"), get_condition(new, "Accepted")
    if after is None or (before and (before.status, before.message) == (after.status, after.message)):
        return
    if after.status == "True":
        await events.emit(body, "Accepted", after.message)
    else:
        await events.emit(body, after.reason, after.message, "Warning")
