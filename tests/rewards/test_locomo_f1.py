"""LoCoMo F1 by category: the numbers LoCoMo's own evaluation gives (without stemming)."""

from __future__ import annotations

import pytest

from rewards.locomo import locomo_f1, locomo_f1_score, multi_answer_f1, token_f1


def test_token_f1_counts_shared_tokens_after_normalisation():
    assert token_f1("on 7 May, 2023", "7 May 2023") == pytest.approx(6 / 7)
    assert token_f1("", "x") == 0.0


def test_multi_answer_f1_averages_over_gold_parts():
    # gold parts: hiking (best 1.0), pottery (0.0), camping (1.0) -> 2/3
    assert multi_answer_f1("camping, hiking", "hiking, pottery, camping") == pytest.approx(2 / 3)
    # a single predicted phrase cannot cover two gold parts
    assert multi_answer_f1("hiking and camping", "hiking, camping") == pytest.approx(2 / 3)


def test_category_rules():
    assert locomo_f1_score("Psychology", "psychology; counseling certification", 3) == 1.0
    assert locomo_f1_score("Psychology", "psychology; counseling certification", 4) == pytest.approx(0.5)
    assert locomo_f1_score("anything", "whatever", 5) is None
    assert locomo_f1_score("x, y", "y, x", 1) == 1.0
    assert locomo_f1_score("x, y", "y, x", 2) == 1.0  # plain F1 ignores commas and order


def test_batch_signature_aligns_rows():
    out = locomo_f1(["sunrise", "no"], golden_answers=[["A sunrise"], "yes"], category=[4, 2])
    assert out == [1.0, 0.0]
    with pytest.raises(ValueError, match="rows must align"):
        locomo_f1(["a"], golden_answers=[["a"]], category=[1, 2])
