"""Datasets: read JSON Lines, validate every row (errors name file and line), split train/validation.

Formats (one JSON object per line; blank lines are ignored):
- chat:            {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
                   the last message is the assistant answer that is trained on.
- prompt-response: {"prompt": "...", "response": "...", "system"?: "..."}
- preference:      {"prompt": "..." | [messages], "chosen": "...", "rejected": "...", "system"?: "..."}
- challenge set:   {"prompt": "...", "reference"?: "...", "system"?: "...", "id"?: "...", "task"?: "..."}

Every training row is normalised to an `Example`: the prompt as chat messages plus the answer (and the
rejected answer for DPO), which both backends consume. No torch here: the operator reuses
`load_challenge_set` for canary judging.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Format = Literal["chat", "prompt-response", "preference"]
ROLES = ("system", "user", "assistant")
MAX_REPORTED_ERRORS = 20


@dataclass(frozen=True)
class RowError:
    source: str
    line: int
    problem: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.problem}"


class DatasetError(Exception):
    """A dataset that cannot be used; `errors` holds the first problems, each with file and line."""

    def __init__(self, errors: list[RowError], total: int | None = None, summary: str | None = None) -> None:
        self.errors = errors
        self.total = total if total is not None else len(errors)
        lines = [str(e) for e in errors]
        if self.total > len(errors):
            lines.append(f"... and {self.total - len(errors)} more")
        super().__init__(summary or "\n".join(lines))


@dataclass(frozen=True)
class Message:
    role: str
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Example:
    """One training row, normalised: chat prompt -> answer (and the rejected answer for preference data)."""

    line: int
    prompt: tuple[Message, ...]
    completion: str
    rejected: str | None = None


@dataclass(frozen=True)
class ChallengeItem:
    line: int
    id: str
    prompt: str
    system: str | None = None
    reference: str | None = None
    task: str | None = None

    def messages(self) -> list[dict[str, str]]:
        out = [{"role": "system", "content": self.system}] if self.system else []
        return [*out, {"role": "user", "content": self.prompt}]


@dataclass
class Fingerprint:
    """Enough to tell whether a re-run saw exactly the same data."""

    uri: str
    sha256: str
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "sha256": self.sha256, "rows": self.rows}


@dataclass
class SplitData:
    train: list[Example]
    validation: list[Example]
    fingerprints: dict[str, Fingerprint] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- reading


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _json_lines(path: Path, source: str) -> Iterator[tuple[int, Any] | RowError]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        yield RowError(source, 1, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        return
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw)
        except json.JSONDecodeError as exc:
            yield RowError(source, number, f"invalid JSON: {exc.msg} (column {exc.colno})")


def _read_rows(path: Path, source: str, parse: Callable[[int, Any], Any]) -> list[Any]:
    """Parse every row; collect all problems and raise them together so one run shows them all."""
    rows: list[Any] = []
    errors: list[RowError] = []
    for item in _json_lines(path, source):
        if isinstance(item, RowError):
            errors.append(item)
            continue
        number, obj = item
        try:
            rows.append(parse(number, obj))
        except _RowProblem as problem:
            errors.append(RowError(source, number, str(problem)))
    if errors:
        raise DatasetError(errors[:MAX_REPORTED_ERRORS], total=len(errors))
    if not rows:
        raise DatasetError([RowError(source, 1, "no rows: the file is empty")])
    return rows


class _RowProblem(Exception):
    pass


def _object(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise _RowProblem(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _text(row: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = row.get(key)
    if value is None:
        if required:
            raise _RowProblem(f"missing field '{key}'")
        return None
    if not isinstance(value, str):
        raise _RowProblem(f"field '{key}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise _RowProblem(f"field '{key}' is empty")
    return value


def _messages(value: Any, key: str) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise _RowProblem(f"field '{key}' must be a non-empty list of messages")
    out: list[Message] = []
    for i, msg in enumerate(value):
        if not isinstance(msg, dict):
            raise _RowProblem(f"{key}[{i}] must be an object with role and content")
        role, content = msg.get("role"), msg.get("content")
        if role not in ROLES:
            raise _RowProblem(f"{key}[{i}].role must be one of {', '.join(ROLES)}, got {role!r}")
        if role == "system" and i != 0:
            raise _RowProblem(f"{key}[{i}]: a system message may only come first")
        if not isinstance(content, str) or not content.strip():
            raise _RowProblem(f"{key}[{i}].content must be a non-empty string")
        out.append(Message(role, content))
    return out


def _prompt_messages(row: dict[str, Any]) -> list[Message]:
    """The prompt of prompt-response / preference rows: a string (plus optional system) or messages."""
    system = _text(row, "system", required=False)
    raw = row.get("prompt")
    if isinstance(raw, list):
        msgs = _messages(raw, "prompt")
        if system:
            raise _RowProblem("use either 'system' or a system message in 'prompt', not both")
    else:
        prompt = _text(row, "prompt")
        assert prompt is not None
        msgs = ([Message("system", system)] if system else []) + [Message("user", prompt)]
    if msgs[-1].role != "user":
        raise _RowProblem("the prompt must end with a user message")
    return msgs


def _parse_chat(line: int, obj: Any) -> Example:
    row = _object(obj)
    if "messages" not in row:
        raise _RowProblem("missing field 'messages' (format chat)")
    msgs = _messages(row["messages"], "messages")
    if msgs[-1].role != "assistant":
        raise _RowProblem("the last message must be the assistant's answer")
    if not any(m.role == "user" for m in msgs[:-1]):
        raise _RowProblem("no user message before the assistant's answer")
    return Example(line=line, prompt=tuple(msgs[:-1]), completion=msgs[-1].content)


def _parse_prompt_response(line: int, obj: Any) -> Example:
    row = _object(obj)
    prompt = _prompt_messages(row)
    response = _text(row, "response")
    assert response is not None
    return Example(line=line, prompt=tuple(prompt), completion=response)


def _parse_preference(line: int, obj: Any) -> Example:
    row = _object(obj)
    prompt = _prompt_messages(row)
    chosen, rejected = _text(row, "chosen"), _text(row, "rejected")
    assert chosen is not None and rejected is not None
    if chosen.strip() == rejected.strip():
        raise _RowProblem("'chosen' and 'rejected' are identical: the pair teaches nothing")
    return Example(line=line, prompt=tuple(prompt), completion=chosen, rejected=rejected)


PARSERS: dict[str, Callable[[int, Any], Example]] = {
    "chat": _parse_chat,
    "prompt-response": _parse_prompt_response,
    "preference": _parse_preference,
}


def load_examples(path: Path, fmt: Format, source: str | None = None) -> list[Example]:
    """Every row of a training/validation file, validated; `source` is the name used in errors (the URI)."""
    rows: list[Example] = _read_rows(path, source or str(path), PARSERS[fmt])
    return rows


def _parse_challenge(line: int, obj: Any) -> ChallengeItem:
    row = _object(obj)
    prompt = _text(row, "prompt")
    assert prompt is not None
    ident = row.get("id", f"line-{line}")
    if not isinstance(ident, str | int):
        raise _RowProblem("field 'id' must be a string or an integer")
    return ChallengeItem(
        line=line,
        id=str(ident),
        prompt=prompt,
        system=_text(row, "system", required=False),
        reference=_text(row, "reference", required=False),
        task=_text(row, "task", required=False),
    )


def load_challenge_set(path: Path, source: str | None = None) -> list[ChallengeItem]:
    items: list[ChallengeItem] = _read_rows(path, source or str(path), _parse_challenge)
    return items


# --------------------------------------------------------------------------- splitting


def check_method(method: str, fmt: Format, source: str) -> None:
    """DPO needs preference pairs; SFT needs an answer per prompt (chat or prompt-response)."""
    if method == "dpo" and fmt != "preference":
        raise DatasetError([], summary=f"{source}: method dpo needs dataset.format preference, got {fmt}")
    if method == "sft" and fmt == "preference":
        raise DatasetError([], summary=f"{source}: method sft needs dataset.format chat or prompt-response")


def split(examples: list[Example], fraction: float, seed: int, source: str) -> tuple[list[Example], list[Example]]:
    """Deterministic seeded hold-out: the same rows, fraction and seed always give the same split."""
    if len(examples) < 2:
        raise DatasetError([], summary=f"{source}: {len(examples)} row(s); a train/validation split needs at least 2")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_val = min(len(examples) - 1, max(1, round(len(examples) * fraction)))
    held = set(order[:n_val])
    train = [ex for i, ex in enumerate(examples) if i not in held]
    val = [ex for i, ex in enumerate(examples) if i in held]
    return train, val


def lines_digest(examples: list[Example]) -> str:
    """Short digest of which source lines a split holds (recorded so a re-run can be checked)."""
    joined = ",".join(str(ex.line) for ex in examples)
    return hashlib.sha256(joined.encode()).hexdigest()[:16]
