"""The token-count approximation, and the doctest examples of the data modules."""

from __future__ import annotations

import doctest

import pytest

from rl_router.data import fanout_qa, schema, tokens
from rl_router.data.tokens import count_tokens, estimate_choice_answer_tokens


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", 0),
        (None, 0),
        ("Paris", 1),
        ("internationalisation", 3),  # 20 letters: one token per started 7
        ("1234567", 3),  # digits in groups of three
        ("a, b.", 4),
        ("one\n\ntwo", 3),  # a run of line breaks is one token
    ],
)
def test_count_tokens(text, expected):
    assert count_tokens(text) == expected


def test_choice_estimate_uses_the_option_lines():
    prompt = "Which?\nA. a long option with many words in it\nB. short\nAnswer:"
    # options count 10 and 3 tokens -> mean 6.5 -> 6 (round half to even), plus the 4-token frame
    assert estimate_choice_answer_tokens(prompt) == 10
    assert estimate_choice_answer_tokens("No options here") == 4


@pytest.mark.parametrize("module", [tokens, schema, fanout_qa])
def test_doctests(module):
    failed, attempted = doctest.testmod(module)
    assert attempted > 0 and failed == 0
