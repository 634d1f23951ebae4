"""The one QA example schema every QA loader returns, and the row validation they share.

A loaded QA dataset is a ``datasets.Dataset`` with :data:`QA_FEATURES`. ``metadata`` is stored as a
JSON string: sources keep very different things there (FanOutQA decomposition trees, reasoning-gym
task configs), and one string column lets datasets of different sources share one Arrow schema and
be concatenated. :meth:`QAExample.from_row` (or :func:`decode_metadata`) gives the dict back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np

logger = logging.getLogger(__name__)

QA_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "question": datasets.Value("string"),
        "golden_answers": datasets.List(datasets.Value("string")),
        "source": datasets.Value("string"),
        "metadata": datasets.Value("string"),  # JSON object
    }
)

# Above this share of unusable rows a file is not "a few bad rows" but a wrong file or mapping.
MAX_BAD_FRACTION = 0.5


@dataclass
class QAExample:
    """One question with its reference answers.

    Attributes:
        id: Stable id, unique within a loaded dataset (``"<source>/<original id>"``).
        question: The query text shown to the router.
        golden_answers: Accepted answers (any one counts as correct); empty only for unlabeled
            splits that a loader was explicitly asked to return.
        source: Benchmark or task name, e.g. ``"nq"``, ``"fanoutqa"``, ``"reasoning_gym/chain_sum"``.
        metadata: Source-specific extras (JSON-serialisable).
    """

    id: str
    question: str
    golden_answers: list[str]
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """The Arrow row of this example (metadata JSON-encoded)."""
        return {
            "id": self.id,
            "question": self.question,
            "golden_answers": list(self.golden_answers),
            "source": self.source,
            "metadata": json.dumps(self.metadata, ensure_ascii=False, default=_json_default),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> QAExample:
        """Inverse of :meth:`to_row`."""
        return cls(
            id=row["id"],
            question=row["question"],
            golden_answers=list(row["golden_answers"]),
            source=row["source"],
            metadata=decode_metadata(row),
        )


def decode_metadata(row: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata dict of a dataset row."""
    raw = row.get("metadata")
    return json.loads(raw) if raw else {}


def normalize_answers(value: Any) -> list[str]:
    """Reference answers as a list of non-empty strings.

    Accepts a string, a number, or a list of them (None and blank entries are dropped).

    >>> normalize_answers(["Paris", "", None, 3])
    ['Paris', '3']
    >>> normalize_answers("  ")
    []
    """
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    answers = []
    for item in items:
        if item is None:
            continue
        text = str(item).strip()
        if text:
            answers.append(text)
    return answers


def validate_examples(
    examples: Iterable[QAExample], file: str, *, require_answer: bool = True
) -> list[QAExample]:
    """Drop unusable examples, log how many, and refuse a file that is mostly unusable.

    An example is unusable when its question is blank or (with ``require_answer``) it has no
    answer. A few such rows are normal in public QA dumps; most rows failing means the file or the
    column mapping is wrong, and training on the remainder would silently use a sliver of the data.

    Args:
        examples: Candidate examples, in file order.
        file: Name of the file (or hub dataset) they came from, for messages.
        require_answer: Whether an example without any answer is unusable.

    Returns:
        The usable examples, in order.

    Raises:
        ValueError: More than half of the rows are unusable (names ``file`` and the first bad row).
    """
    rows = list(examples)
    kept: list[QAExample] = []
    bad_rows: list[int] = []
    for index, example in enumerate(rows):
        if not example.question.strip() or (require_answer and not example.golden_answers):
            bad_rows.append(index)
        else:
            kept.append(example)
    if not bad_rows:
        return kept
    n_bad, n_total = len(bad_rows), len(rows)
    index, example = bad_rows[0], rows[bad_rows[0]]
    if n_bad > MAX_BAD_FRACTION * n_total:
        raise ValueError(
            f"{file}: {n_bad} of {n_total} rows have an empty question or no answer; first bad row "
            f"is row {index} (0-based, id={example.id!r}, question={example.question[:80]!r}, "
            f"golden_answers={example.golden_answers!r}). Check the file and the question/answer "
            "column names given to the loader."
        )
    logger.warning(
        "%s: skipped %d of %d rows with an empty question or no answer (first: row %d, id=%r)",
        file,
        n_bad,
        n_total,
        index,
        example.id,
    )
    return kept


def to_dataset(examples: Iterable[QAExample]) -> datasets.Dataset:
    """A ``datasets.Dataset`` with :data:`QA_FEATURES` from examples."""
    rows = [example.to_row() for example in examples]
    columns = {name: [row[name] for row in rows] for name in QA_FEATURES}
    return datasets.Dataset.from_dict(columns, features=QA_FEATURES)


def _json_default(value: Any) -> Any:
    """JSON fallback for values sources put in metadata (tuples are lists already; sets, numpy)."""
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    return str(value)
