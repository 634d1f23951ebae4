"""QA datasets from local files and from the Hub (Router-R1's seven benchmarks via FlashRAG).

Every loader returns a ``datasets.Dataset`` with :data:`rl_router.data.schema.QA_FEATURES`.

The Router-R1 benchmarks come from the FlashRAG collection on the Hub, whose layout is
``<benchmark>/<split>.jsonl`` with fields ``id``, ``question``, ``golden_answers`` (and sometimes
``metadata``). :func:`load_flashrag` reads that layout with one ``datasets.load_dataset`` call whose
first argument is either the Hub id or a local directory with the same layout (a snapshot of the
repo, or files written by a test), so offline runs and tests take the production code path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from rl_router.data.schema import QAExample, normalize_answers, to_dataset, validate_examples

FLASHRAG_HUB_ID = "RUC-NLPIR/FlashRAG_datasets"
ROUTER_R1_BENCHMARKS = ("nq", "triviaqa", "popqa", "hotpotqa", "2wikimultihopqa", "musique", "bamboogle")
# Split Router-R1 (after Search-R1) evaluates on: `test` where FlashRAG has one, else `dev`.
ROUTER_R1_EVAL_SPLITS = {
    "nq": "test",
    "triviaqa": "test",
    "popqa": "test",
    "hotpotqa": "dev",
    "2wikimultihopqa": "dev",
    "musique": "dev",
    "bamboogle": "test",
}
SAMPLE_QA_FILE = Path(__file__).parent / "assets" / "qa" / "capitals.jsonl"
_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def load_qa_file(
    path: str | Path | None = None,
    *,
    question_field: str = "question",
    answer_field: str = "golden_answers",
    id_field: str = "id",
    source: str | None = None,
    limit: int | None = None,
    cache_dir: str | None = None,
) -> datasets.Dataset:
    """Load a local jsonl / json / parquet / csv file (optionally ``.gz``) as QA examples.

    Columns other than the id, question and answer ones go into ``metadata``. An answer cell may be
    a string, a number, a list, or (in CSV, which has no lists) a JSON list such as ``["a", "b"]``.

    Args:
        path: The file; None loads the small shipped sample (30 country-capital questions).
        question_field: Column holding the question.
        answer_field: Column holding the reference answer(s).
        id_field: Column holding a row id; rows without one get their 0-based row index.
        source: Value of the ``source`` column; default the file name without suffixes.
        limit: Keep only the first ``limit`` usable rows.
        cache_dir: ``datasets`` cache directory (default: the user's HF cache).

    Returns:
        The examples, ids ``"<source>/<row id>"``.

    Raises:
        ValueError: Unknown suffix, missing question/answer column, or mostly unusable rows.
    """
    path = Path(path) if path is not None else SAMPLE_QA_FILE
    builder = _builder_for(path)
    if builder is None:
        raise ValueError(f"{path}: unknown file type; use one of {sorted(_BUILDERS)} (optionally .gz)")
    raw = datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache_dir)
    for column in (question_field, answer_field):
        if column not in raw.column_names:
            raise ValueError(
                f"{path}: no column {column!r} (columns: {raw.column_names}); "
                "set question_field / answer_field to the file's column names"
            )
    examples = rows_to_examples(
        raw,
        source=source or path.name.split(".")[0],
        question_field=question_field,
        answer_field=answer_field,
        id_field=id_field,
    )
    kept = validate_examples(examples, str(path))
    return to_dataset(kept[:limit] if limit is not None else kept)


def load_flashrag(
    name: str,
    split: str | None = None,
    *,
    limit: int | None = None,
    seed: int = 0,
    local_dir: str | Path | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
) -> datasets.Dataset:
    """Load one FlashRAG benchmark (``nq``, ``hotpotqa``, ...) from the Hub or a local mirror.

    Args:
        name: FlashRAG config name; also the ``source`` of every row.
        split: ``train`` / ``dev`` / ``test``; None: Router-R1's evaluation split of ``name``.
        limit: Keep a seeded random sample of this many rows (all rows when there are fewer).
        seed: Seed of that sample.
        local_dir: A directory with the Hub repo's layout (``<name>/<split>.jsonl``); None reads
            ``RUC-NLPIR/FlashRAG_datasets`` from the Hub.
        revision: Hub revision (commit sha or branch) to pin; ignored for ``local_dir``.
        cache_dir: ``datasets`` cache directory.

    Returns:
        The examples, ids ``"<name>/<FlashRAG id>"``.

    Raises:
        ValueError: No split given for a benchmark Router-R1 did not use, or mostly unusable rows.
    """
    if split is None:
        if name not in ROUTER_R1_EVAL_SPLITS:
            raise ValueError(f"no default split for {name!r}; pass split='train', 'dev' or 'test'")
        split = ROUTER_R1_EVAL_SPLITS[name]
    location = str(local_dir) if local_dir is not None else FLASHRAG_HUB_ID
    raw = datasets.load_dataset(
        location,
        data_files={split: f"{name}/{split}.jsonl"},
        split=split,
        revision=None if local_dir is not None else revision,
        cache_dir=cache_dir,
    )
    examples = rows_to_examples(
        raw, source=name, question_field="question", answer_field="golden_answers", id_field="id"
    )
    kept = validate_examples(examples, f"{location}/{name}/{split}.jsonl")
    if limit is not None and limit < len(kept):
        order = np.random.default_rng(seed).permutation(len(kept))[:limit]
        kept = [kept[i] for i in sorted(order)]
    return to_dataset(kept)


def load_router_r1_benchmarks(
    benchmarks: Sequence[str] = ROUTER_R1_BENCHMARKS,
    split: str | None = None,
    *,
    limit: int | None = 500,
    seed: int = 0,
    local_dir: str | Path | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
) -> datasets.Dataset:
    """Several FlashRAG benchmarks concatenated (Router-R1: 500 rows each, Bamboogle's 125 all).

    Arguments are those of :func:`load_flashrag`, applied to every benchmark; ``limit`` is per
    benchmark. Router-R1's training mix is ``benchmarks=["nq", "hotpotqa"], split="train",
    limit=7000``.
    """
    parts = [
        load_flashrag(
            name,
            split,
            limit=limit,
            seed=seed,
            local_dir=local_dir,
            revision=revision,
            cache_dir=cache_dir,
        )
        for name in benchmarks
    ]
    return datasets.concatenate_datasets(parts)


def rows_to_examples(
    rows: Iterable[Mapping[str, Any]],
    *,
    source: str,
    question_field: str,
    answer_field: str,
    id_field: str,
) -> list[QAExample]:
    """Map raw rows to :class:`QAExample` (no validation; see ``validate_examples``)."""
    examples = []
    for index, row in enumerate(rows):
        metadata: dict[str, Any] = {}
        for key, value in row.items():
            if key in (question_field, answer_field, id_field):
                continue
            # A source's own `metadata` column is merged, not nested one level deeper.
            # Arrow unifies per-row dicts into one struct, filling absent keys with None: drop those.
            if key == "metadata" and isinstance(value, Mapping):
                metadata.update({k: v for k, v in value.items() if v is not None})
            elif value is not None:
                metadata[key] = value
        row_id = row.get(id_field)
        examples.append(
            QAExample(
                id=f"{source}/{row_id if row_id is not None else index}",
                question=str(row[question_field] or "").strip(),
                golden_answers=normalize_answers(_parse_answer_cell(row[answer_field])),
                source=source,
                metadata=metadata,
            )
        )
    return examples


def _builder_for(path: Path) -> str | None:
    """The ``datasets`` builder for a file name (``.gz`` is read transparently), None if unknown."""
    suffixes = [suffix for suffix in path.suffixes if suffix != ".gz"]
    return _BUILDERS.get(suffixes[-1]) if suffixes else None


def _parse_answer_cell(value: Any) -> Any:
    """CSV cells holding a JSON list become that list; anything else is returned unchanged."""
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


@dataclass
class QALocalDataConfig:
    """QA examples from one local file (``conf/data/qa_local.yaml``)."""

    _target_: str = "rl_router.data.qa.load_qa_file"
    path: str | None = None  # jsonl/json/parquet/csv file; None: the shipped 30-question sample
    question_field: str = "question"  # column holding the question
    answer_field: str = "golden_answers"  # column holding the answer(s)
    id_field: str = "id"  # column holding a row id (row index when absent)
    source: str | None = None  # `source` value of every row; None: the file name
    limit: int | None = None  # keep the first `limit` usable rows; None: all
    cache_dir: str | None = None  # datasets cache; None: the user's HF cache

    def __post_init__(self) -> None:
        if self.path is not None and _builder_for(Path(self.path)) is None:
            raise ValueError(f"data.path={self.path!r}: name it <file>.(jsonl|json|parquet|csv)[.gz]")
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"data.limit={self.limit}: use a positive count or null for all rows")


@dataclass
class RouterR1DataConfig:
    """Router-R1's FlashRAG benchmarks (``conf/data/router_r1_benchmarks.yaml``)."""

    _target_: str = "rl_router.data.qa.load_router_r1_benchmarks"
    benchmarks: list[str] = field(default_factory=lambda: list(ROUTER_R1_BENCHMARKS))  # FlashRAG names
    split: str | None = None  # train/dev/test; None: Router-R1's eval split of each benchmark
    limit: int | None = 500  # rows sampled per benchmark; None: all
    seed: int = 0  # seed of that sample
    local_dir: str | None = None  # a local mirror with <name>/<split>.jsonl; None: the Hub
    revision: str | None = None  # Hub revision to pin (ignored with local_dir)
    cache_dir: str | None = None  # datasets cache; None: the user's HF cache

    def __post_init__(self) -> None:
        if not self.benchmarks:
            raise ValueError("data.benchmarks is empty: list FlashRAG names, e.g. [nq, hotpotqa]")
        if self.split is None:
            unknown = [name for name in self.benchmarks if name not in ROUTER_R1_EVAL_SPLITS]
            if unknown:
                raise ValueError(f"data.split=null has no default for {unknown}: set data.split")
        elif self.split not in ("train", "dev", "test"):
            raise ValueError(f"data.split={self.split!r}: use train, dev, test or null")
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"data.limit={self.limit}: use a positive count or null for all rows")
