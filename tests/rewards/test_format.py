"""Router-R1's format rules: each rule on its own, their conjunction, and a fuzzed reference check."""

from __future__ import annotations

import itertools
import pickle
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards import (
    FormatKnownModels,
    FormatMaxRoutes,
    RouterR1Format,
    format_answer_last,
    format_information_follows_search,
    format_search_query,
    format_tags_balanced,
    format_think_content,
    format_think_first,
)
from rewards.format import find_blocks, parse_search

NAMES = ["fake-small", "fake-large"]
GOOD = (
    "<think>Need the capital.</think> Let me ask.<search>fake-large: capital of France?</search>\n\n"
    "<information>Paris</information>\n\n<think>It says Paris.</think><think>Sure.</think>"
    "<answer>Paris</answer>\n"
)


@pytest.mark.parametrize(
    ("rule", "good", "bad"),
    [
        (format_tags_balanced, GOOD, "<think>a</think></search><answer>b</answer>"),  # stray close
        (format_tags_balanced, GOOD, "<think>a<answer>b</answer></think>"),  # nested
        (format_tags_balanced, GOOD, "<think>a<search>b</think></search>"),  # interleaved
        (format_tags_balanced, GOOD, "<think>a</think><answer>b"),  # unclosed
        (format_think_first, GOOD, "ok <think>a</think><answer>b</answer>"),
        (format_think_first, GOOD, GOOD.replace("\n\n<think>It says", "\n\nSo <think>It says")),
        (format_think_content, GOOD, "<think>...</think><answer>b</answer>"),
        (format_think_content, GOOD, "<think>a</think><think> \n</think><answer>b</answer>"),
        (format_answer_last, GOOD, "<think>a</think><answer>b</answer> done"),
        (format_answer_last, GOOD, "<think>a</think><answer>b</answer><answer>c</answer>"),
        (format_answer_last, GOOD, "<think>a</think><answer>  </answer>"),
        (format_answer_last, GOOD, "<think>a</think>"),
        (format_search_query, GOOD, "<search>fake-large capital?</search>"),  # no colon
        (format_search_query, GOOD, "<search>fake-large:   </search>"),  # no sub-query
        (format_search_query, GOOD, "<search> : capital?</search>"),  # no model
        (format_search_query, GOOD, "<search>MODEL-NAME: SUB-QUERY</search>"),  # template copied
        (format_search_query, GOOD, "<search>fake-small: SUB-QUERY</search>"),
        (format_information_follows_search, GOOD, "<search>m: q</search><answer>a</answer>"),
        (format_information_follows_search, GOOD, "<think>a</think><information>forged</information>"),
        (format_information_follows_search, GOOD, "<search>m: q</search>x<information>r</information>"),
        (FormatKnownModels(NAMES), GOOD, "<search>gpt-9: capital?</search>"),
        (FormatMaxRoutes(0), "<think>a</think><answer>b</answer>", GOOD),
    ],
)
def test_each_rule_scores_zero_or_minus_one(rule, good, bad):
    assert rule([good, bad]) == [0.0, -1.0]


def test_rules_read_conversational_completions():
    completion = [{"role": "assistant", "content": "<think>a</think><answer>b</answer>"}]
    assert format_think_first([completion]) == [0.0]


def test_known_models_ignores_case_and_spaces_and_maps_to_pool_spelling():
    rule = FormatKnownModels(NAMES)
    assert rule(["<search>  FAKE-Small : q</search>"]) == [0.0]
    assert rule.canonical(" FAKE-Small ") == "fake-small"
    with pytest.raises(KeyError):
        rule.canonical("gpt-9")


def test_a_sub_query_may_contain_colons():
    assert parse_search("fake-large: time zone: Paris?") == ("fake-large", "time zone: Paris?")


def test_router_r1_format_names_every_broken_rule():
    fmt = RouterR1Format(NAMES, max_routes=4)
    assert fmt([GOOD]) == [0.0]
    assert fmt.violations(GOOD) == []
    assert fmt.violations("<search>gpt-9 q</search>") == [
        "format_think_first",
        "format_answer_last",
        "format_search_query",
        "format_information_follows_search",
        "format_known_models",
    ]
    assert fmt.violations("<answer>x</answer>", rules=["format_answer_last"]) == []


def test_parametrised_rules_are_named_and_picklable():
    for rule, name in [
        (RouterR1Format(NAMES), "format"),
        (FormatKnownModels(NAMES), "format_known_models"),
        (FormatMaxRoutes(2), "format_max_routes"),
    ]:
        assert rule.__name__ == name
        assert pickle.loads(pickle.dumps(rule))([GOOD]) == rule([GOOD])
    with pytest.raises(ValueError, match="max_routes=-1"):
        FormatMaxRoutes(-1)


# -- fuzzing against an independent reference -------------------------------------------------------
# The reference tokenises the text at protocol tags, checks the tags pair up, and then matches the
# sequence of blocks (T think, S search, I information, A answer; w whitespace, x other text between
# them) against the trajectory grammar with one regex. Block contents are then checked one by one.
_TAG_SPLIT = re.compile(r"(</?(?:think|search|answer|information)>)")
_SYMBOL = {"think": "T", "search": "S", "answer": "A", "information": "I"}
_TURN = r"T(?:[wx]?T)*[wx]?"
_TRAJECTORY = re.compile(rf"w?(?:{_TURN}Sw?Iw?)*{_TURN}Aw?")


def reference_tags_balanced(text: str) -> bool:
    tags = _TAG_SPLIT.findall(text)
    opens, closes = tags[0::2], tags[1::2]
    return len(opens) == len(closes) and all(
        o[1] != "/" and c == f"</{o[1:]}" for o, c in zip(opens, closes, strict=True)
    )


def reference_format_ok(text: str, names: list[str], max_routes: int) -> bool:
    if not reference_tags_balanced(text):
        return False
    pieces = _TAG_SPLIT.split(text)  # free, <tag>, content, </tag>, free, ...
    symbols, blocks = [], []
    for i, piece in enumerate(pieces):
        if i % 4 == 0:  # text between blocks
            symbols.append("" if piece == "" else "w" if piece.isspace() else "x")
        elif i % 4 == 1:
            tag = piece[1:-1]
            symbols.append(_SYMBOL[tag])
            blocks.append((tag, pieces[i + 1]))
    if not _TRAJECTORY.fullmatch("".join(symbols)):
        return False
    known = {n.lower() for n in names}
    searches = 0
    for tag, content in blocks:
        if tag == "think" and content.strip() in ("", "..."):
            return False
        if tag == "answer" and not content.strip():
            return False
        if tag == "search":
            searches += 1
            if content.count(":") < 1 or "model-name" in content.lower() or "sub-query" in content.lower():
                return False
            model, query = content.split(":", 1)
            if model.strip().lower() not in known or not query.strip():
                return False
    return searches <= max_routes


_FRAGMENTS = [
    *(f"<{t}>" for t in _SYMBOL),
    *(f"</{t}>" for t in _SYMBOL),
    "<think",
    "answer>",
    "</",
    "<",
    ">",
    "< answer>",
    "<Answer>",
    "fake-small",
    "FAKE-LARGE",
    "gpt-9",
    ":",
    " : ",
    "...",
    " ",
    "\n",
    "\u00a0",
    "Paris",
    "model-name",
    "SUB-QUERY",
    "é🙂",
    "<think>a</think>",
    "<search>fake-small: q</search>",
    "<information>r</information>",
    "<answer>x</answer>",
]


# One kind of piece each; a broken trajectory swaps one drawn piece for a bad one of its kind.
_GOOD = {
    "lead": ["", " ", "\n\n"],  # before a turn's first <think>
    "thinks": [1, 2],
    "think": ["why", "é🙂", "a: b", " x "],
    "model": ["fake-small", "Fake-Large "],
    "colon": [": ", ":"],
    "query": ["why", "Paris?", "a: b", " x "],
    "gap": ["\n\n", ""],  # between </search> and <information>
    "information": ["<information>Paris</information>"],
    "answer": ["Paris", " x ", "..."],
    "tail": ["", "\n"],
}
_BAD = {
    "lead": ["So ", "<information>forged</information>"],
    "thinks": [0],
    "think": ["", " ", "...", " ... "],
    "model": ["gpt-9", "", "MODEL-NAME", "fake-small fake-large"],
    "colon": [" ", ""],
    "query": [" ", "SUB-QUERY", "sub-query?"],
    "gap": [" then ", "<think>a</think>"],
    "information": ["", "<answer>Paris</answer>"],
    "answer": ["", " "],
    "tail": [" bye", "<answer>x</answer>"],
}


@st.composite
def _trajectories(draw: st.DrawFn, broken: bool = False) -> str:
    """Trajectories shaped by the grammar; ``broken`` swaps one drawn piece for a bad one."""
    bad_at = draw(st.integers(0, 12)) if broken else -1
    drawn = itertools.count()

    def pick(kind: str) -> Any:
        return draw(st.sampled_from(_BAD[kind] if next(drawn) == bad_at else _GOOD[kind]))

    def turn(action: str) -> str:
        thinks = [f"<think>{pick('think')}</think>" for _ in range(pick("thinks"))]
        return pick("lead") + " ".join(thinks) + draw(st.sampled_from(["", " ok "])) + action

    parts = []
    for _ in range(draw(st.integers(0, 5))):
        parts.append(turn(f"<search>{pick('model')}{pick('colon')}{pick('query')}</search>"))
        parts.append(pick("gap") + pick("information") + "\n\n")
    parts.append(turn(f"<answer>{pick('answer')}</answer>") + pick("tail"))
    return "".join(parts)


_soup = st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=4)), max_size=30).map("".join)


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    """A grammar-shaped trajectory with one fragment inserted somewhere: mostly near-misses."""
    text = draw(_trajectories())
    at = draw(st.integers(0, len(text)))
    return text[:at] + draw(st.sampled_from(_FRAGMENTS)) + text[at:]


@settings(max_examples=2000, deadline=None)
@given(
    text=st.one_of(_soup, _trajectories(), _trajectories(broken=True), _mutated()),
    max_routes=st.integers(0, 4),
)
def test_format_matches_reference_on_fuzzed_outputs(text, max_routes):
    fmt = RouterR1Format(NAMES, max_routes=max_routes)
    expected = 0.0 if reference_format_ok(text, NAMES, max_routes) else -1.0
    assert fmt([text]) == [expected]
    assert format_tags_balanced([text]) == [0.0 if reference_tags_balanced(text) else -1.0]
    for block in find_blocks(text):
        assert text[block.start : block.end] == f"<{block.tag}>{block.content}</{block.tag}>"


def test_grammar_generator_yields_valid_trajectories():
    @settings(max_examples=200, deadline=None)
    @given(text=_trajectories())
    def check(text):
        assert reference_format_ok(text, NAMES, max_routes=5)
        assert RouterR1Format(NAMES, max_routes=5)([text]) == [0.0]

    check()
