"""Query features from text alone (`rl_router.data.features`): values, shapes, layouts and refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rl_router.data.features import (
    ALL_FEATURES,
    BLOCKS,
    DEFAULT_FEATURES,
    check_features,
    feature_dim,
    feature_layout,
    features_of_layout,
    query_features,
    text_features,
)

MMLU = "Which gas do plants absorb?\nA. Oxygen\nB. Carbon dioxide\nC. Helium\nD. Neon\nAnswer:"
GSM8K = "Tom has 12 apples and buys 30 more. He eats 2. How many are left? 12 + 30 - 2 = ?"


def test_multiple_choice_prompt_reads_as_such():
    fmt, stats = text_features([MMLU], ["format"])[0], text_features([MMLU], ["text_stats"])[0]
    assert fmt.tolist() == [1.0, 1.0]  # lettered options, answer cue
    names = BLOCKS["text_stats"]
    assert stats[names.index("answer options/4")] == 1.0
    stem, options = len("Which gas do plants absorb?\n"), len("Oxygen") + len("Carbon dioxide") + 10
    expected = math.log((1 + stem) / (1 + options)) / 4
    assert stats[names.index("log((1 + stem chars) / (1 + option chars))/4")] == pytest.approx(
        expected, rel=1e-5
    )
    assert stats[names.index("log1p(digits)/4")] == 0.0


def test_word_problem_counts_its_numbers_and_operators():
    fmt, stats = text_features([GSM8K], ["format"])[0], text_features([GSM8K], ["text_stats"])[0]
    names = BLOCKS["text_stats"]
    assert fmt.tolist() == [0.0, 0.0]
    assert stats[names.index("log1p(digits)/4")] == pytest.approx(math.log1p(10) / 4)  # 12 30 2 12 30 2
    assert stats[names.index("log1p(numbers)/3")] == pytest.approx(math.log1p(6) / 3)
    assert stats[names.index("log1p(arithmetic operators)/3")] == pytest.approx(math.log1p(3) / 3)  # + - =
    assert stats[names.index("log10(1 + largest number)/6")] == pytest.approx(math.log10(31) / 6)
    assert stats[names.index("answer options/4")] == 0.0


def test_query_features_concatenate_blocks_in_the_listed_order():
    emb = np.arange(10, dtype=np.float32).reshape(2, 5)
    x = query_features([MMLU, GSM8K], ["length", "embedding", "format"], embeddings=emb)
    assert x.shape == (2, 2 + 5 + 2) and x.dtype == np.float32
    assert np.array_equal(x[:, 2:7], emb)
    assert np.array_equal(x[:, :2], text_features([MMLU, GSM8K], ["length"]))
    assert x[:, 7].tolist() == [1.0, 0.0]
    assert feature_dim(ALL_FEATURES) == 384 + 2 + 2 + 8 and feature_dim(DEFAULT_FEATURES) == 384
    with pytest.raises(ValueError, match=r"embeddings of shape \(1, 5\) for 2 texts: need one row each"):
        query_features([MMLU, GSM8K], ["embedding"], embeddings=emb[:1])


def test_blocks_are_checked_with_a_message_that_says_what_to_write():
    with pytest.raises(
        ValueError, match=r"unknown block\(s\) \['lenght'\]; choose from \['embedding', 'length'"
    ):
        check_features(["embedding", "lenght"])
    with pytest.raises(ValueError, match="list each block once"):
        check_features(["length", "length"])
    with pytest.raises(ValueError, match="at least one"):
        check_features([])


def test_layout_round_trips_and_refuses_parts_it_cannot_compute():
    blocks = ("embedding", "text_stats")
    layout = feature_layout(blocks)
    assert [p["name"] for p in layout] == ["query_embedding", "text_stats"]
    assert features_of_layout(layout, "cfg.json") == blocks
    with pytest.raises(ValueError, match=r"cfg.json: observation part\(s\) \['syntax_tree'\] are not query"):
        features_of_layout([*layout, {"name": "syntax_tree", "size": 3}], "cfg.json")
