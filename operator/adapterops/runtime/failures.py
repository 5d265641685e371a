"""Failures to create, apply, update or delete a child, made visible: the reconciler records them as a
`ChildFailure` condition and a Warning Event carrying the API server's message, then backs off.

Only refusals a user can act on are reported so (the API server said no: 400, 403, 404, 422, ...);
transient trouble (409 conflicts, 429, 5xx, timeouts) is retried quietly by the manager's backoff.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2

from adapterops.api.common import Condition, get_condition
from adapterops.runtime.client import status_code
from adapterops.runtime.conditions import set_condition
from adapterops.runtime.events import EventRecorder

CONDITION = "ChildFailure"
REASONS = {"create": "CreateFailed", "apply": "ApplyFailed", "update": "UpdateFailed", "delete": "DeleteFailed"}
TRANSIENT = {408, 409, 429}


class ChildError(Exception):
    """The API server refused a write to one of the object's children."""

    def __init__(self, verb: str, kind: str, name: str, message: str) -> None:
        super().__init__(f"{verb} {kind} {name}: {message}")
        self.reason = REASONS.get(verb, "WriteFailed")


class Reported(Exception):
    """The reconcile failed and said so in status and Events: retry with backoff, no traceback."""


@contextmanager
def writing(verb: str, kind: str, name: str) -> Iterator[None]:
    """Turn a refusal of this write into a ChildError naming the child and the server's message."""
    try:
        yield
    except httpx2.HTTPStatusError as exc:
        code = status_code(exc) or 0
        if code in TRANSIENT or code >= 500:
            raise
        raise ChildError(verb, kind, name, f"{exc} (HTTP {code})") from exc


def manifest_writing(verb: str, manifest: dict[str, Any]) -> Any:
    return writing(
        verb, manifest["kind"], manifest["metadata"].get("name") or manifest["metadata"].get("generateName", "")
    )


def record(conditions: list[Condition], failure: ChildError | None, generation: int | None) -> list[Condition]:
    """ChildFailure True with the failure, or False once a reconcile wrote every child it needed."""
    if failure is not None:
        return set_condition(conditions, CONDITION, True, failure.reason, str(failure), generation)
    if get_condition(conditions, CONDITION) is None:
        return conditions  # never failed: no condition to clear
    return set_condition(conditions, CONDITION, False, "ChildrenWritten", "", generation)


async def announce(events: EventRecorder, body: dict[str, Any], old: list[Condition], new: list[Condition]) -> None:
    """A Warning Event when a new failure shows (not again for the same one)."""
    before, after = get_condition(old, CONDITION), get_condition(new, CONDITION)
    if after is None or after.status != "True":
        return
    if before is not None and (before.status, before.message) == (after.status, after.message):
        return
    await events.emit(body, after.reason, after.message, "Warning")
