"""LoCoMo's answer scoring, as BudgetMem reports it: F1 by question category.

LoCoMo's evaluation (``task_eval/evaluation.py``), which BudgetMem reuses:

* category 1 (multi-hop): *multi-answer F1*: the prediction and the gold answer are split on commas;
  each gold part scores its best token F1 against any predicted part; the parts' scores are averaged;
* category 3 (open-domain): token F1 against the gold answer's first ``;``-separated alternative;
* categories 2 (temporal) and 4 (single-hop): token F1;
* category 5 (adversarial): not scored (``None``); BudgetMem's F1 leaves it out.

Normalisation is LoCoMo's: lowercase, drop commas and ASCII punctuation, drop ``a an the and``,
collapse whitespace. One difference: LoCoMo Porter-stems every token (nltk); this module does not
(nltk is not a dependency), so an inflected form (``painted`` vs ``painting``) scores 0 here
where LoCoMo would match it. The judge score is the env's optional second task term.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

from rewards.outcome import Completion, completion_text

_PUNCTUATION = frozenset(string.punctuation)
_STOPWORDS = re.compile(r"\b(a|an|the|and)\b")
MULTI_ANSWER = 1
UNSCORED = 5


def locomo_normalize(text: str) -> str:
    """LoCoMo's answer normalisation.

    >>> locomo_normalize("The cat, and a Dog!")
    'cat dog'
    """
    text = "".join(ch for ch in str(text).replace(",", "").lower() if ch not in _PUNCTUATION)
    return " ".join(_STOPWORDS.sub(" ", text).split())


def token_f1(prediction: str, gold: str) -> float:
    """Token F1 of the normalised texts (0 when either is empty).

    >>> round(token_f1("on 7 May 2023", "7 May 2023"), 4)
    0.8571
    """
    pred, ref = locomo_normalize(prediction).split(), locomo_normalize(gold).split()
    same = sum((Counter(pred) & Counter(ref)).values())
    if not same:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def multi_answer_f1(prediction: str, gold: str) -> float:
    """Category 1: mean over gold comma-parts of the best F1 against any predicted comma-part.

    >>> multi_answer_f1("hiking, painting", "painting, hiking")
    1.0
    >>> multi_answer_f1("painting", "painting, hiking")
    0.5
    """
    predictions = [p.strip() for p in str(prediction).split(",")]
    golds = [g.strip() for g in str(gold).split(",")]
    return sum(max(token_f1(p, g) for p in predictions) for g in golds) / len(golds)


def locomo_f1_score(prediction: str, gold: str, category: int) -> float | None:
    """One answer's score under LoCoMo's rule for its category (``None`` for category 5).

    >>> locomo_f1_score("psychology", "Psychology; counseling", 3), locomo_f1_score("x", "y", 5)
    (1.0, None)
    """
    category = int(category)
    if category == UNSCORED:
        return None
    if category == MULTI_ANSWER:
        return multi_answer_f1(prediction, gold)
    if category == 3:
        gold = str(gold).split(";")[0].strip()
    return token_f1(prediction, gold)


def locomo_f1(
    completions: Sequence[Completion],
    golden_answers: Sequence[str | Sequence[str]],
    category: Sequence[int],
    **kwargs: Any,
) -> list[float | None]:
    """LoCoMo F1 per row (TRL's reward signature); a row's best over its golden answers.

    >>> locomo_f1(["May 2023", "x"], golden_answers=[["7 May 2023"], ["y"]], category=[2, 5])
    [0.8, None]
    """
    if not (len(completions) == len(golden_answers) == len(category)):
        raise ValueError(
            f"{len(completions)} completions, {len(golden_answers)} golden answers and {len(category)} "
            "categories: rows must align"
        )
    out: list[float | None] = []
    for completion, golden, cat in zip(completions, golden_answers, category, strict=True):
        answers = [golden] if isinstance(golden, str) else list(golden)
        scores = [locomo_f1_score(completion_text(completion), g, cat) for g in answers]
        known = [s for s in scores if s is not None]
        out.append(max(known) if known else None)
    return out
