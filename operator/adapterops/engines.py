"""Which version of a serving engine a ModelDeployment runs, and so which metrics it exports.

Engines rename and drop metrics between versions (NIM 1.x exports `e2e_request_latency_seconds` and no
HTTP counter; NIM 2.x and vLLM export `vllm:*` and `http_requests_total`), so the operator must know the
version before it reads a canary's metrics: it is `spec.runtime.engineVersion` when given, otherwise the
image's tag (`nvcr.io/nim/...:1.8`, `vllm/vllm-openai:v0.11.0`). A tag that says no version (`latest`, a
digest) needs the field. docs/engines.md has the facts per version and why.

A *line* is a range of versions that export the same series under the same names: the canary's queries
(analysis/providers/prometheus.py) are keyed by it. Pure; no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Line = Literal["nim-1", "nim-2", "vllm"]
LINES: dict[Line, str] = {
    "nim-1": "NIM for LLMs 1.x",
    "nim-2": "NIM for LLMs 2.x",
    "vllm": "vLLM 0.11 or later (0.x)",
}
SUPPORTED = {"nim": "1.x and 2.x", "vllm": "0.11 or later 0.x"}
# `1.8`, `1.8.4`, `v0.11.0`, `2.0.6-rtx`: the version is the leading numbers of the tag.
VERSION = re.compile(
    r"^v?(?P<major>[0-9]+)(?:\.(?P<minor>[0-9]+))?(?:\.(?P<patch>[0-9]+))?(?:[-+_.][0-9A-Za-z.+_-]*)?$"
)


@dataclass(frozen=True)
class EngineVersion:
    engine: str  # nim or vllm
    version: str  # as given or as read from the tag, without a leading v: "1.8", "0.11.0"
    line: Line
    source: Literal["spec.runtime.engineVersion", "image tag"]


class EngineVersionProblem(Exception):
    """Why the version cannot be known or is not one the operator can read metrics of (reason, message)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def image_tag(image: str) -> str | None:
    """The tag of an image reference (`registry:5000/repo:tag@sha256:...` -> `tag`), or None."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def parse(text: str) -> tuple[int, int | None] | None:
    """(major, minor) of a version string, or None when it is not one."""
    m = VERSION.match(text)
    if m is None:
        return None
    return int(m["major"]), int(m["minor"]) if m["minor"] is not None else None


def line_of(engine: str, version: str) -> Line | None:
    """The line of `engine` at `version`, or None when the operator does not know that version's metrics."""
    parsed = parse(version)
    if parsed is None:
        return None
    major, minor = parsed
    if engine == "nim":
        return {1: "nim-1", 2: "nim-2"}.get(major)  # type: ignore[return-value]
    if engine == "vllm" and major == 0 and minor is not None and minor >= 11:
        return "vllm"
    return None


def resolve(engine: str, image: str, explicit: str | None) -> EngineVersion:
    """The engine version from `spec.runtime.engineVersion` or the image tag, or an EngineVersionProblem."""
    tag = image_tag(image)
    from_tag = tag.removeprefix("v") if tag and parse(tag) else None
    if explicit is not None:
        line = line_of(engine, explicit)
        if line is None:
            raise EngineVersionProblem(
                "EngineVersionUnsupported",
                f"spec.runtime.engineVersion: {engine} {explicit!r} is not a version this operator knows the metrics "
                f"of; supported: {engine} {SUPPORTED.get(engine, 'none')} (docs/engines.md)",
            )
        tag_line = line_of(engine, from_tag) if from_tag else None
        if tag_line is not None and tag_line != line:
            raise EngineVersionProblem(
                "EngineVersionConflict",
                f"spec.runtime.engineVersion: {explicit!r} ({LINES[line]}) contradicts the image tag {tag!r} of "
                f"{image} ({LINES[tag_line]}); remove the field or correct it",
            )
        return EngineVersion(engine, explicit.removeprefix("v"), line, "spec.runtime.engineVersion")
    if from_tag is None:
        raise EngineVersionProblem(
            "EngineVersionUnknown",
            f"spec.runtime.engineVersion: the image {image} has no version in its tag ({tag or 'no tag'!r}); set "
            f"spec.runtime.engineVersion to the {engine} version the image runs (supported: {engine} "
            f"{SUPPORTED.get(engine, 'none')})",
        )
    line = line_of(engine, from_tag)
    if line is None:
        raise EngineVersionProblem(
            "EngineVersionUnsupported",
            f"spec.runtime.image: {image} is {engine} {from_tag}, not a version this operator knows the metrics of; "
            f"supported: {engine} {SUPPORTED.get(engine, 'none')} (set spec.runtime.engineVersion if the tag is "
            "not the engine's version)",
        )
    return EngineVersion(engine, from_tag, line, "image tag")
