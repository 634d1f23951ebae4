"""FanOutQA from the installed package: dev keeps decompositions; test is unlabeled and refused by default."""

from __future__ import annotations

import pytest

from rl_router.data.fanout_qa import FanOutQADataConfig, answer_strings, load_fanoutqa
from rl_router.data.schema import QAExample


def test_dev_keeps_answers_and_decomposition():
    dataset = load_fanoutqa("dev")
    assert len(dataset) == 310
    example = QAExample.from_row(dataset[0])
    assert example.id == "fanoutqa/7dcbbbdc7f1120cd"
    assert example.metadata["answer"]["Pat Burrell"] == "Right"
    assert example.golden_answers == [
        "Pat Burrell - Right\nMark Mulder - Left\nCorey Patterson - Left\nJeff Austin - Right\nJD Drew - Left"
    ]
    subs = example.metadata["decomposition"]
    assert len(subs) == 6
    assert subs[1]["question"] == "What is the batting hand of Pat Burrell?"
    assert subs[1]["depends_on"] == [subs[0]["id"]]
    assert subs[1]["evidence"]["title"] == "Pat Burrell"
    assert example.metadata["answer_strings"][:2] == ["Pat Burrell", "Mark Mulder"]
    assert len(example.metadata["answer_strings"]) == 10  # 5 keys + 5 values


def test_every_dev_row_has_a_decomposition_and_an_answer():
    rows = [QAExample.from_row(row) for row in load_fanoutqa("dev")]
    assert all(row.metadata["decomposition"] and row.golden_answers for row in rows)


def test_test_split_is_refused_unless_unlabeled_rows_are_asked_for():
    with pytest.raises(ValueError, match="not public"):
        load_fanoutqa("test")
    test = load_fanoutqa("test", allow_unlabeled=True, limit=4)
    assert len(test) == 4
    assert all(answers == [] for answers in test["golden_answers"])
    assert QAExample.from_row(test[0]).metadata["labeled"] is False
    with pytest.raises(ValueError, match="allow_unlabeled"):
        FanOutQADataConfig(split="test")


def test_answer_strings_cover_keys_values_lists_and_bools():
    assert answer_strings({"a": [1, True], "b": "x"}) == ["a", "b", "1", "yes", "x"]
