"""Outcome rewards: did the answer come out right?

Every function here has TRL's reward signature ``(completions, **kwargs) -> list[float | None]``: one
value per completion, ``None`` where the term does not apply to that row (TRL skips ``None`` when it
sums reward functions). The answer scored is the completion itself; envs pass the already extracted
``<answer>`` text, so nothing here parses tags.

Answer normalisation is the SQuAD recipe that Router-R1 and Search-R1 reuse: lowercase, drop ASCII
punctuation, drop the articles ``a``/``an``/``the``, collapse whitespace.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Message = Mapping[str, Any]  # {"role": "assistant", "content": "..."}
Completion = str | Sequence[Message]  # plain text, or a TRL conversational completion
GoldenAnswers = str | Sequence[str]  # one row's acceptable answers
Verifier = Callable[[str, Mapping[str, Any]], float]  # (answer, row metadata) -> score in [0, 1]

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# HotpotQA's official F1 (which Router-R1 copies) gives no partial credit on these answers.
_CLOSED_ANSWERS = frozenset({"yes", "no", "noanswer"})


def completion_text(completion: Completion) -> str:
    """The text to score: the string itself, or the content of the last assistant message.

    >>> completion_text("Paris")
    'Paris'
    >>> completion_text([{"role": "assistant", "content": "Paris"}])
    'Paris'
    """
    if isinstance(completion, str):
        return completion
    for message in reversed(completion):
        if message.get("role", "assistant") == "assistant":
            return str(message.get("content") or "")
    return ""


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, no punctuation, no articles, single spaces.

    >>> normalize_answer("  The Eiffel-Tower, in PARIS! ")
    'eiffeltower in paris'
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _as_list(golden: GoldenAnswers) -> list[str]:
    # A bare string is one answer, not a sequence of one-character answers.
    return [golden] if isinstance(golden, str) else [str(g) for g in golden]


def _check_lengths(completions: Sequence[Any], column: Sequence[Any], name: str) -> None:
    if len(column) != len(completions):
        raise ValueError(
            f"{len(completions)} completions but {len(column)} values of `{name}`: rows must align"
        )


def em_score(prediction: str, golden: GoldenAnswers) -> float:
    """1.0 when the normalised prediction equals any normalised golden answer.

    >>> em_score("the Beatles", ["Beatles", "The Fab Four"])
    1.0
    """
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in _as_list(golden)))


def f1_score(prediction: str, golden: GoldenAnswers) -> float:
    """Token F1 between the normalised texts, best over the golden answers.

    Follows the HotpotQA/Router-R1 variant of SQuAD F1: a yes/no/noanswer on either side scores only
    on an exact match. Two empty normalised texts score 1.0 (SQuAD v2).

    >>> round(f1_score("Barack Obama Jr", ["Obama"]), 4)  # precision 1/3, recall 1
    0.5
    """
    pred = normalize_answer(prediction)
    best = 0.0
    for answer in _as_list(golden):
        gold = normalize_answer(answer)
        if (pred in _CLOSED_ANSWERS or gold in _CLOSED_ANSWERS) and pred != gold:
            continue
        pred_tokens, gold_tokens = pred.split(), gold.split()
        if not pred_tokens or not gold_tokens:
            best = max(best, float(pred_tokens == gold_tokens))
            continue
        same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
        if same:
            precision, recall = same / len(pred_tokens), same / len(gold_tokens)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def exact_match(
    completions: Sequence[Completion], golden_answers: Sequence[GoldenAnswers | None], **kwargs: Any
) -> list[float | None]:
    """Normalised exact match, max over each row's golden answers (``None`` where a row has none).

    >>> exact_match(["The Beatles", "Queen"], golden_answers=[["beatles"], "ABBA"])
    [1.0, 0.0]
    """
    _check_lengths(completions, golden_answers, "golden_answers")
    return [
        None if golden is None else em_score(completion_text(c), golden)
        for c, golden in zip(completions, golden_answers, strict=True)
    ]


def f1(
    completions: Sequence[Completion], golden_answers: Sequence[GoldenAnswers | None], **kwargs: Any
) -> list[float | None]:
    """Token F1, max over each row's golden answers (``None`` where a row has none).

    >>> f1([[{"role": "assistant", "content": "Paris, France"}]], golden_answers=[["Paris"]])
    [0.6666666666666666]
    """
    _check_lengths(completions, golden_answers, "golden_answers")
    return [
        None if golden is None else f1_score(completion_text(c), golden)
        for c, golden in zip(completions, golden_answers, strict=True)
    ]


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def reply_score(reply: str, golden: GoldenAnswers) -> float:
    """Whether a candidate's free-text reply states a golden answer (candidate replies are not bare answers).

    A numeric golden answer must equal the reply's last number (``"5 - 3 = 2"`` states 2, not 5); any
    other must occur as a whole normalised phrase in the reply (``"It is Paris."`` states Paris).

    Lenient on purpose, for text that a fixed candidate wrote: a reply that lists many answers
    passes. Never score a trained policy's own answer with it (the policy would learn to list):
    that is :func:`short_answer_score`'s job.

    >>> reply_score("5 - 3 = 2", "2"), reply_score("5 - 3 = 2", "5"), reply_score("-30", ["-30"])
    (1.0, 0.0, 1.0)
    >>> reply_score("The capital of France is Paris.", ["Paris"]), reply_score("Parisian food", "Paris")
    (1.0, 0.0)
    """
    numbers = _NUMBER.findall(reply.replace(",", ""))
    padded = f" {normalize_answer(reply)} "
    for answer in _as_list(golden):
        if _NUMBER.fullmatch(answer.strip().replace(",", "")):
            if numbers and float(numbers[-1]) == float(answer.strip().replace(",", "")):
                return 1.0
        elif normalize_answer(answer) and f" {normalize_answer(answer)} " in padded:
            return 1.0
    return 0.0


def reply_match(
    completions: Sequence[Completion], golden_answers: Sequence[GoldenAnswers | None], **kwargs: Any
) -> list[float | None]:
    """:func:`reply_score` per row (``None`` where a row has no golden answer).

    >>> reply_match(["3 + 4 = 7", "Rome is the capital."], golden_answers=[["7"], ["Paris"]])
    [1.0, 0.0]
    """
    _check_lengths(completions, golden_answers, "golden_answers")
    return [
        None if golden is None else reply_score(completion_text(c), golden)
        for c, golden in zip(completions, golden_answers, strict=True)
    ]


# Words that may frame a short answer ("It is Paris.", "The answer is 42", "I think it's in Lima"):
# pronouns, copulas, answer-announcing words and place/time prepositions. No content word, no "or"
# or "and", no negation: whatever else an answer holds could be a second candidate answer.
FRAMING_WORDS = frozenset(
    {"answer", "final", "i", "think", "my", "it", "its", "this", "that", "is", "was", "are", "were"}
    | {"in", "at", "on", "by", "from"}
)
MAX_FRAMING_WORDS = 4  # framing words an answer may add to the golden one ("i think it is")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")  # "1,000" is one number; "1,2,3" are three


def _numeric(text: str) -> float | None:
    """The value of a text that is one number (thousands separators allowed), else None."""
    text = _THOUSANDS.sub("", text.strip())
    return float(text) if _NUMBER.fullmatch(text) else None


def _framing_only(tokens: Sequence[str]) -> bool:
    return len(tokens) <= MAX_FRAMING_WORDS and all(t in FRAMING_WORDS for t in tokens)


def short_answer_score(answer: str, golden: GoldenAnswers) -> float:
    """Whether a router's own answer is a golden answer, stated briefly: one answer, nothing else.

    The rule, after SQuAD normalisation: the answer's tokens are a golden answer's tokens, in one
    contiguous span, plus at most :data:`MAX_FRAMING_WORDS` of :data:`FRAMING_WORDS` around it. A
    numeric golden answer must be the answer's only number, equal in value (``"-30"`` is not 30,
    ``"1,000"`` is 1000), with framing words only around it. Anything else an answer adds could be a
    second candidate answer, so listing, hedging or padding cannot collect the reward: this is the
    scorer for a trained policy's text, where :func:`reply_score` would be gamed.

    >>> [short_answer_score(a, ["Paris"]) for a in ("Paris", "It is Paris.", "The answer is Paris")]
    [1.0, 1.0, 1.0]
    >>> [short_answer_score(a, ["Paris"]) for a in ("Paris, London, Berlin", "Paris or Lyon")]
    [0.0, 0.0]
    >>> [short_answer_score(a, "42") for a in ("42", "It is 42.", "1, 2, 3, 42", "-42")]
    [1.0, 1.0, 0.0, 0.0]
    """
    tokens = normalize_answer(answer).split()
    numbers = _NUMBER.findall(_THOUSANDS.sub("", answer))
    for gold in _as_list(golden):
        value = _numeric(gold)
        if value is not None:
            rest = normalize_answer(_NUMBER.sub(" ", _THOUSANDS.sub("", answer))).split()
            if len(numbers) == 1 and float(numbers[0]) == value and _framing_only(rest):
                return 1.0
            continue
        span = normalize_answer(gold).split()
        if not span:
            continue
        for start in range(len(tokens) - len(span) + 1):
            if tokens[start : start + len(span)] == span and _framing_only(
                tokens[:start] + tokens[start + len(span) :]
            ):
                return 1.0
    return 0.0


def short_answer_match(
    completions: Sequence[Completion], golden_answers: Sequence[GoldenAnswers | None], **kwargs: Any
) -> list[float | None]:
    """:func:`short_answer_score` per row (``None`` where a row has no golden answer).

    >>> short_answer_match(["It is 42.", "Rome, or maybe Paris"], golden_answers=[["42"], ["Paris"]])
    [1.0, 0.0]
    """
    _check_lengths(completions, golden_answers, "golden_answers")
    return [
        None if golden is None else short_answer_score(completion_text(c), golden)
        for c, golden in zip(completions, golden_answers, strict=True)
    ]


# Scorers against golden answers, by env.outcome name: of a candidate's reply (a free-text reply
# under "reply"), and of a router's own <answer> (a short answer under "reply", so it cannot list).
OUTCOME_SCORERS = {"em": exact_match, "f1": f1, "reply": reply_match}
ANSWER_SCORERS = {"em": exact_match, "f1": f1, "reply": short_answer_match}


def recorded_correctness(
    completions: Sequence[Completion], score: Sequence[float | None], **kwargs: Any
) -> list[float | None]:
    """The correctness a replay pool recorded for the chosen candidate (passed as kwarg ``score``).

    The completion text is ignored: a replay table already judged it, and re-scoring it here could
    disagree with the benchmark's own grader.

    >>> recorded_correctness(["A", "B", "C"], score=[1, 0.0, None])
    [1.0, 0.0, None]
    """
    _check_lengths(completions, score, "score")
    return [None if s is None else float(s) for s in score]


class VerifierOutcome:
    """Outcome from a programmatic verifier ``(answer, metadata) -> float`` (reasoning-gym style).

    The verifier must be a module-level function (or another picklable callable) so the reward can
    cross Ray process boundaries. Rows whose ``metadata`` is ``None`` score ``None``.

    Args:
        verifier: Scores one answer against its row's metadata.
        name: Metric key suffix: logged as ``train/reward/<name>``.

    Example:
        >>> def parity(answer, metadata):
        ...     return float(int(answer) % 2 == metadata["parity"])
        >>> reward = VerifierOutcome(parity, name="parity")
        >>> reward(["3", "4", "5"], metadata=[{"parity": 1}, {"parity": 1}, None])
        [1.0, 0.0, None]
        >>> reward.__name__
        'parity'
    """

    def __init__(self, verifier: Verifier, name: str = "verifier") -> None:
        self.verifier = verifier
        self.name = name
        self.__name__ = name  # TRL names a reward function's metric after `__name__`

    def __call__(
        self, completions: Sequence[Completion], metadata: Sequence[Mapping[str, Any] | None], **kwargs: Any
    ) -> list[float | None]:
        _check_lengths(completions, metadata, "metadata")
        return [
            None if meta is None else float(self.verifier(completion_text(c), meta))
            for c, meta in zip(completions, metadata, strict=True)
        ]

    def __repr__(self) -> str:
        return f"VerifierOutcome({self.verifier!r}, name={self.name!r})"
