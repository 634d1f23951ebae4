"""QAExample schema: row round trip, answer normalisation, skipping and the mostly-bad-file error."""

from __future__ import annotations

import logging

import pytest

from rl_router.data.schema import (
    QA_FEATURES,
    QAExample,
    normalize_answers,
    to_dataset,
    validate_examples,
)


def _example(i: int, question: str = "q?", answers: list[str] | None = None) -> QAExample:
    return QAExample(
        id=f"t/{i}", question=question, golden_answers=["a"] if answers is None else answers, source="t"
    )


def test_round_trip_through_dataset_keeps_nested_metadata():
    example = QAExample("t/0", "Who?", ["Ann", "Anne"], "t", {"tree": [{"q": "x", "deps": []}], "n": 3})
    dataset = to_dataset([example])
    assert dataset.features == QA_FEATURES
    assert QAExample.from_row(dataset[0]) == example


def test_normalize_answers_drops_blanks_and_stringifies():
    assert normalize_answers(["Paris", " ", None, 3, 2.5]) == ["Paris", "3", "2.5"]
    assert normalize_answers(None) == []
    assert normalize_answers(42) == ["42"]


def test_validate_skips_and_counts_bad_rows(caplog):
    rows = [_example(0), _example(1, question="  "), _example(2), _example(3, answers=[]), _example(4)]
    with caplog.at_level(logging.WARNING):
        kept = validate_examples(rows, "file.jsonl")
    assert [e.id for e in kept] == ["t/0", "t/2", "t/4"]
    assert "skipped 2 of 5 rows" in caplog.text and "file.jsonl" in caplog.text


def test_validate_keeps_unanswered_rows_when_answers_are_not_required():
    kept = validate_examples([_example(0, answers=[])], "test split", require_answer=False)
    assert len(kept) == 1


def test_mostly_bad_file_raises_naming_file_and_first_bad_row():
    rows = [_example(0), _example(1, answers=[]), _example(2, question=""), _example(3, answers=[])]
    with pytest.raises(ValueError, match=r"bad\.jsonl: 3 of 4 rows .* row 1 \(0-based, id='t/1'"):
        validate_examples(rows, "bad.jsonl")


def test_exactly_half_bad_is_tolerated():
    rows = [_example(0), _example(1, answers=[])]
    assert len(validate_examples(rows, "half.jsonl")) == 1
