"""Outcome rewards: SQuAD normalisation, EM/F1 by hand, candidate replies vs a router's short answer
(and the hacks the latter refuses), replay correctness, verifiers."""

import pickle

import pytest

from rewards.outcome import (
    VerifierOutcome,
    completion_text,
    exact_match,
    f1,
    normalize_answer,
    recorded_correctness,
    reply_match,
    short_answer_match,
    short_answer_score,
)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Paris", "paris"),
        ("The Beatles", "beatles"),
        ("a cat and an apple", "cat and apple"),
        ("theory of the atom", "theory of atom"),  # "the" inside "theory" is not an article
        ("U.S.A.", "usa"),
        ("  many   spaces\n\there ", "many spaces here"),
        ("rock-'n'-roll!", "rocknroll"),
        ("The", ""),
        ("", ""),
    ],
)
def test_normalize_answer(raw, normalised):
    assert normalize_answer(raw) == normalised


def test_completion_text_handles_strings_and_conversations():
    assert completion_text("42") == "42"
    convo = [{"role": "assistant", "content": "first"}, {"role": "user", "content": "x"}]
    assert completion_text(convo) == "first"  # the last *assistant* message
    assert completion_text([{"role": "user", "content": "q"}]) == ""
    assert completion_text([{"role": "assistant", "content": None}]) == ""


def test_exact_match_takes_the_best_golden_answer():
    got = exact_match(
        ["The Eiffel Tower", "eiffel", "Tour Eiffel", "x"],
        golden_answers=[["Eiffel Tower"], ["Eiffel Tower", "Eiffel"], "eiffel tower", None],
    )
    assert got == [1.0, 1.0, 0.0, None]


def test_exact_match_scores_conversational_completions():
    completions = [[{"role": "assistant", "content": "the beatles."}]]
    assert exact_match(completions, golden_answers=[["Beatles"]]) == [1.0]


def test_f1_hand_computed():
    # pred tokens [new, york, city], gold [new, york]: P = 2/3, R = 1, F1 = 0.8
    assert f1(["New York City"], golden_answers=[["New York"]]) == [pytest.approx(0.8)]
    # best of two golden answers: vs "york" P = 1/3, R = 1 -> 0.5; vs "new york city" -> 1.0
    assert f1(["new york city"], golden_answers=[["York", "New York City"]]) == [pytest.approx(1.0)]
    # repeated tokens count with multiplicity
    # pred [red, red, blue], gold [red, blue, blue]: common = red x1 + blue x1 = 2, P = R = 2/3
    assert f1(["red red blue"], golden_answers=[["red blue blue"]]) == [pytest.approx(2 / 3)]
    assert f1(["zebra"], golden_answers=[["horse"]]) == [0.0]


def test_f1_gives_no_partial_credit_on_yes_no():
    assert f1(["yes it is"], golden_answers=[["yes"]]) == [0.0]
    assert f1(["no"], golden_answers=[["no"]]) == [1.0]


def test_f1_of_two_empty_answers_is_one():
    assert f1(["the"], golden_answers=[["an"]]) == [1.0]
    assert f1([""], golden_answers=[["Paris"]]) == [0.0]


def test_misaligned_columns_raise():
    with pytest.raises(ValueError, match="rows must align"):
        exact_match(["a", "b"], golden_answers=[["a"]])


def test_recorded_correctness_returns_the_recorded_score():
    assert recorded_correctness(["ignored", "text"], score=[True, 0.25]) == [1.0, 0.25]


def parity(answer, metadata):
    return float(int(answer) % 2 == metadata["parity"])


def test_verifier_outcome_scores_pickles_and_names_itself():
    reward = VerifierOutcome(parity, name="parity")
    restored = pickle.loads(pickle.dumps(reward))
    assert restored(["1", "2"], metadata=[{"parity": 1}, {"parity": 1}]) == [1.0, 0.0]
    assert restored.__name__ == restored.name == "parity"


# -- a router's own answer vs a candidate's reply ----------------------------------------------------
CAPITAL, SUM = ["Paris"], ["42"]
PARAGRAPH = (
    "Many cities are famous: London has the Thames, Berlin has its wall, Rome has the Colosseum, "
    "and Paris has the Eiffel Tower, while Madrid and Lisbon are sunny."
)
HACKS = [
    ("Paris, London, Berlin", CAPITAL),  # a list of capitals
    ("Paris or Lyon", CAPITAL),  # a hedge
    (PARAGRAPH, CAPITAL),  # a paragraph that mentions it among others
    ("Paris, Paris, London, Paris", CAPITAL),  # the golden answer repeated with others
    ("London Paris", CAPITAL),  # two names and no separator
    ("It is not Paris", CAPITAL),  # a negation
    (", ".join(str(i) for i in range(1, 101)), SUM),  # "1, 2, 3, ..., 100": 42 is in the list
    ("40 41 42 43", SUM),
    ("6 x 7 = 42", SUM),  # a working, not an answer
    ("-42", SUM),  # normalisation would drop the sign; the number's value does not
]
HONEST = [
    ("Paris", CAPITAL),
    ("It is Paris.", CAPITAL),
    ("The answer is Paris", CAPITAL),
    ("I think it's Paris!", CAPITAL),
    ("paris", ["Paris", "City of Light"]),
    ("42", SUM),
    ("It is 42.", SUM),
    ("42.0", SUM),
    ("1,000", ["1000"]),
    ("Simon and Garfunkel", ["Simon & Garfunkel", "Simon and Garfunkel"]),  # "and" inside the answer
    ("Yes, it is.", ["yes"]),
]


@pytest.mark.parametrize(("answer", "golden"), HACKS)
def test_a_router_cannot_game_the_short_answer_rule(answer, golden):
    assert short_answer_score(answer, golden) == 0.0


@pytest.mark.parametrize(("answer", "golden"), HONEST)
def test_an_honest_short_answer_scores(answer, golden):
    assert short_answer_score(answer, golden) == 1.0


def test_candidate_replies_stay_lenient_where_router_answers_are_not():
    sentence = "The capital of France is Paris."
    assert reply_match([sentence], golden_answers=[CAPITAL]) == [1.0]  # a candidate's sentence states it
    assert short_answer_match([sentence], golden_answers=[CAPITAL]) == [0.0]  # not a short answer
    # the reply rule is what a listing router would game: the short-answer rule exists for this
    hacks = [answer for answer, _ in HACKS[:4]]
    assert reply_match(hacks, golden_answers=[CAPITAL] * 4) == [1.0] * 4
    assert short_answer_match(hacks, golden_answers=[CAPITAL] * 4) == [0.0] * 4
    assert short_answer_match(["Paris", "x"], golden_answers=[CAPITAL, None]) == [1.0, None]
