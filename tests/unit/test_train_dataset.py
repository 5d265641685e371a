"""Dataset validation (file:line errors), the seeded split, and the shipped commerce dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import generate
from adapterops_train.dataset import DatasetError, check_method, load_challenge_set, load_examples, split

REPO = Path(__file__).resolve().parents[2]
COMMERCE = REPO / "training-jobs" / "datasets" / "commerce"
GOOD_CHAT = {"messages": [{"role": "user", "content": "red mug"}, {"role": "assistant", "content": "red mug"}]}


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_every_bad_row_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "train.jsonl",
        [
            json.dumps(GOOD_CHAT),
            "",  # blank lines are skipped but still counted
            '{"messages": [ {"role": "user", "content": "x"}',  # line 3: truncated JSON
            json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),  # line 4
            json.dumps({"messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "y"}]}),
            json.dumps({"text": "wrong shape"}),  # line 6
            json.dumps(GOOD_CHAT),
        ],
    )
    with pytest.raises(DatasetError) as err:
        load_examples(path, "chat", source="s3://data/train.jsonl")
    lines = str(err.value).splitlines()
    assert lines[0].startswith("s3://data/train.jsonl:3: invalid JSON")
    assert lines[1] == "s3://data/train.jsonl:4: the last message must be the assistant's answer"
    assert lines[2].startswith("s3://data/train.jsonl:5: messages[0].role must be one of system, user, assistant")
    assert lines[3] == "s3://data/train.jsonl:6: missing field 'messages' (format chat)"
    assert [e.line for e in err.value.errors] == [3, 4, 5, 6]


@pytest.mark.parametrize(
    ("fmt", "row", "problem"),
    [
        ("prompt-response", {"prompt": "q"}, "missing field 'response'"),
        ("prompt-response", {"prompt": 3, "response": "a"}, "field 'prompt' must be a string, got int"),
        ("prompt-response", {"prompt": "  ", "response": "a"}, "field 'prompt' is empty"),
        ("preference", {"prompt": "q", "chosen": "a", "rejected": "a"}, "'chosen' and 'rejected' are identical"),
        ("preference", {"prompt": "q", "chosen": "a"}, "missing field 'rejected'"),
        ("chat", [1, 2], "expected a JSON object, got list"),
    ],
)
def test_row_problems(tmp_path: Path, fmt: str, row: object, problem: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [json.dumps(row)])
    with pytest.raises(DatasetError, match=f"d.jsonl:1: {problem}"):
        load_examples(path, fmt, source=str(path.name))  # type: ignore[arg-type]


def test_empty_file_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no rows"):
        load_examples(write_jsonl(tmp_path / "e.jsonl", [""]), "chat")


def test_split_is_seeded_and_deterministic() -> None:
    examples = load_examples(COMMERCE / "train.jsonl", "chat")
    train, val = split(examples, 0.3, 42, "train")
    again_train, again_val = split(examples, 0.3, 42, "train")
    other_train, _ = split(examples, 0.3, 7, "train")
    assert (len(train), len(val)) == (168, 72)
    assert [e.line for e in train] == [e.line for e in again_train]
    assert [e.line for e in val] == [e.line for e in again_val]
    assert [e.line for e in other_train] != [e.line for e in train]
    assert not {e.line for e in train} & {e.line for e in val}


def test_split_needs_two_rows(tmp_path: Path) -> None:
    examples = load_examples(write_jsonl(tmp_path / "one.jsonl", [json.dumps(GOOD_CHAT)]), "chat")
    with pytest.raises(DatasetError, match="at least 2"):
        split(examples, 0.3, 1, "one.jsonl")


def test_method_needs_matching_format() -> None:
    with pytest.raises(DatasetError, match=r"dpo needs dataset\.format preference"):
        check_method("dpo", "chat", "x")
    with pytest.raises(DatasetError, match=r"sft needs dataset\.format chat or prompt-response"):
        check_method("sft", "preference", "x")


def test_shipped_dataset_is_valid_and_regenerates_identically() -> None:
    assert generate.main(["--check", "commerce-dataset"]) == 0, "run `python hack/generate.py commerce-dataset`"
    train = load_examples(COMMERCE / "train.jsonl", "chat")
    prefs = load_examples(COMMERCE / "preference.jsonl", "preference")
    challenge = load_challenge_set(COMMERCE / "challenge.jsonl")
    assert 150 <= len(train) <= 300 and 30 <= len(challenge) <= 60 and len(prefs) >= 100
    assert all(item.reference for item in challenge)
    assert {item.task for item in challenge} == {"query-formulation", "hypothetical-product"}
    # Challenge prompts are held out of everything the model trains on.
    seen = {m.content for ex in train + prefs for m in ex.prompt if m.role == "user"}
    assert not seen & {item.prompt for item in challenge}
