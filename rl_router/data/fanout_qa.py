"""FanOutQA (multi-hop, multi-document questions) from the installed ``fanoutqa`` package.

The package ships both splits (CC BY-SA 4.0). The dev split has reference answers and a
human-written decomposition into sub-questions; the test split has neither: its answers are held
back for the FanOutQA leaderboard. So ``split="test"`` is refused unless the caller asks for
unlabeled rows explicitly (for producing leaderboard submissions), and such rows carry
``golden_answers=[]`` and ``metadata["labeled"] = False`` so nothing can score them by accident.

FanOutQA answers are structured (a dict such as ``{"Pat Burrell": "Right", ...}``, a list, or a
primitive). ``golden_answers`` holds one string rendering of it (``fanoutqa``'s own ``str_answer``
format), which exact match will rarely hit. FanOutQA's metric is "loose accuracy": the share of the
answer's strings (keys and values of a dict, items of a list) found in the prediction. Those strings
are kept in ``metadata["answer_strings"]`` and the structured answer in ``metadata["answer"]``, so a
reward can compute it. (The package's own scorer, ``fanoutqa.eval``, needs ``rouge_score``,
``bleurt`` and spaCy's ``en_core_web_sm``, which this project does not install.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import datasets
import fanoutqa

from rl_router.data.schema import QAExample, to_dataset, validate_examples

SOURCE = "fanoutqa"


def load_fanoutqa(
    split: str = "dev", *, limit: int | None = None, allow_unlabeled: bool = False
) -> datasets.Dataset:
    """Load FanOutQA questions.

    Metadata of a dev row: ``answer`` (structured), ``answer_strings``, ``decomposition`` (list of
    sub-question dicts, each with ``id``, ``question``, ``answer``, ``depends_on``, ``evidence`` and
    its own nested ``decomposition``), ``categories``, ``labeled=True``. Test rows: ``necessary_evidence``,
    ``categories``, ``labeled=False``.

    Args:
        split: ``"dev"`` (310 labeled questions) or ``"test"`` (725, unlabeled).
        limit: Keep the first ``limit`` questions.
        allow_unlabeled: Required to load ``"test"``; acknowledges its rows cannot be scored.

    Returns:
        The examples, ids ``"fanoutqa/<FanOutQA id>"``.

    Raises:
        ValueError: Unknown split, or ``"test"`` without ``allow_unlabeled``.
    """
    if split == "dev":
        examples = [_dev_example(question) for question in fanoutqa.load_dev()]
        kept = validate_examples(examples, "fanoutqa dev (bundled fanout-final-dev.json)")
    elif split == "test":
        if not allow_unlabeled:
            raise ValueError(
                "FanOutQA's test answers are not public (scored by its leaderboard): use split='dev' "
                "to train or evaluate, or allow_unlabeled=True to get unanswerable rows for a submission"
            )
        examples = [_test_example(question) for question in fanoutqa.load_test()]
        kept = validate_examples(examples, "fanoutqa test", require_answer=False)
    else:
        raise ValueError(f"split={split!r}: FanOutQA has 'dev' and 'test'")
    return to_dataset(kept[:limit] if limit is not None else kept)


def answer_to_text(answer: Any) -> str:
    """One string rendering of a structured FanOutQA answer (``fanoutqa``'s ``str_answer`` format).

    >>> answer_to_text({"Pat Burrell": "Right", "JD Drew": "Left"})
    'Pat Burrell - Right\\nJD Drew - Left'
    >>> answer_to_text([2006, True])
    '2006\\nyes'
    """
    if isinstance(answer, list):
        return "\n".join(answer_to_text(item) for item in answer)
    if isinstance(answer, dict):
        return "\n".join(f"{key} - {answer_to_text(value)}" for key, value in answer.items())
    if isinstance(answer, bool):
        return "yes" if answer else "no"
    return "" if answer is None else str(answer)


def answer_strings(answer: Any) -> list[str]:
    """The strings FanOutQA's loose accuracy looks for in a prediction (dict: keys and values).

    >>> answer_strings({"Pat Burrell": "Right", "JD Drew": ["Left", False]})
    ['Pat Burrell', 'JD Drew', 'Right', 'Left', 'no']
    """
    if isinstance(answer, dict):
        return answer_strings(list(answer.keys()) + list(answer.values()))
    if isinstance(answer, list):
        return [text for item in answer for text in answer_strings(item)]
    text = answer_to_text(answer).strip()
    return [text] if text else []


def _dev_example(question: fanoutqa.models.DevQuestion) -> QAExample:
    text = answer_to_text(question.answer).strip()
    return QAExample(
        id=f"{SOURCE}/{question.id}",
        question=question.question,
        golden_answers=[text] if text else [],
        source=SOURCE,
        metadata={
            "answer": question.answer,
            "answer_strings": answer_strings(question.answer),
            "decomposition": [dataclasses.asdict(sub) for sub in question.decomposition],
            "categories": list(question.categories),
            "labeled": True,
        },
    )


def _test_example(question: fanoutqa.models.TestQuestion) -> QAExample:
    return QAExample(
        id=f"{SOURCE}/{question.id}",
        question=question.question,
        golden_answers=[],
        source=SOURCE,
        metadata={
            "necessary_evidence": [dataclasses.asdict(e) for e in question.necessary_evidence],
            "categories": list(question.categories),
            "labeled": False,
        },
    )


@dataclass
class FanOutQADataConfig:
    """FanOutQA questions from the installed package (``conf/data/fanoutqa.yaml``)."""

    _target_: str = "rl_router.data.fanout_qa.load_fanoutqa"
    split: str = "dev"  # "dev" (labeled, with decompositions) or "test" (unlabeled)
    limit: int | None = None  # keep the first `limit` questions; None: all
    allow_unlabeled: bool = False  # must be true for split=test (its answers are not public)

    def __post_init__(self) -> None:
        if self.split not in ("dev", "test"):
            raise ValueError(f"data.split={self.split!r}: use dev or test")
        if self.split == "test" and not self.allow_unlabeled:
            raise ValueError("data.split=test has no answers: set data.allow_unlabeled=true or use dev")
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"data.limit={self.limit}: use a positive count or null for all rows")
