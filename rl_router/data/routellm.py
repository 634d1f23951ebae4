"""RouteLLM's recorded eval outcomes as routing tables: the loaders, their data config, the file readers.

The default table is RouteLLM's recorded outcomes of Mixtral-8x7B-Instruct and GPT-4-1106 on GSM8K
and MMLU, shipped in ``assets/routellm/`` (Apache-2.0, see its NOTICE.md). ``conf/data/routellm.yaml``
configures :class:`RoutingTableDataConfig`, which instantiates to a ``(train, test)`` split.

Layout of a RouteLLM-format directory ``<root>``; each benchmark's files sit in ``<root>/<name>/``,
or directly in ``<root>`` when that sub-directory does not exist (a flat directory of CSVs):

* CSV benchmarks (``gsm8k``, ``mmlu``, or any name): every ``<name>*.csv`` / ``<name>*.csv.gz``
  file. Columns: ``prompt``; one boolean (or 0/1, or [0, 1] score) column per model; optionally
  ``<model>_response`` with the model's response text. The file name gives the row source:
  ``gsm8k_responses.csv`` -> ``gsm8k``, ``mmlu_anatomy.csv`` -> ``mmlu/anatomy``; row ids are
  ``<source>/<row index in the file, 4 digits>`` (stable whether or not rows are excluded).
* ``mt_bench``: ``question.jsonl`` (``question_id``, ``category``, ``turns``) and
  ``judgements.jsonl`` (GPT-4 single-answer grading: ``question_id``, ``model``, ``turn``,
  ``score`` 1-10, ``user_prompt`` containing the graded answers). One row per question: prompt = the
  first turn, source ``mt_bench/<category>``, score = mean over both turns of ``score / 10``
  (so in [0.1, 1]), response = the first-turn answer.
* ``contaminated_prompts.jsonl`` (optional): rows whose prompt equals one of its ``eval_prompt``
  values are excluded when asked.

Token counts are not recorded; :mod:`rl_router.data.tokens` approximates them. Input tokens are the
prompt's (chat-template overhead not counted). Output tokens are the recorded response's; where none
is recorded (MMLU) they are :func:`~rl_router.data.tokens.estimate_choice_answer_tokens` of the
prompt. MT-Bench counts both turns: input = turn 1 + turn 2 + the model's first answer (re-sent as
context), output = both answers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rl_router.data.routing_table import RoutingTable, concat_tables
from rl_router.data.splits import DataSplits, HeldOutFields, check_fractions
from rl_router.data.tokens import count_tokens, estimate_choice_answer_tokens

logger = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).parent / "assets" / "routellm"
RESPONSE_SUFFIX = "_response"
MT_BENCH = "mt_bench"
# Answers as FastChat's judge prompts quote them (multi-turn grading quotes both turns).
_MULTI_TURN_ANSWER = re.compile(r"### Assistant A:\n(.*?)\n\n(?:### User:|<\|The End of Assistant A)", re.S)
_SINGLE_ANSWER = re.compile(
    r"\[The Start of Assistant's Answer\]\n(.*?)\n\[The End of Assistant's Answer\]", re.S
)


def load_routing_table(
    path: str | Path | None = None,
    benchmarks: Sequence[str] = ("gsm8k", "mmlu"),
    exclude_contaminated: bool = True,
    limit: int | None = None,
) -> RoutingTable:
    """Load recorded outcomes in RouteLLM's format as one routing table.

    Args:
        path: A directory in RouteLLM's layout: ``<path>/<benchmark>/`` per benchmark, or all files
            flat in ``<path>`` (see the module docstring). None: the shipped copy.
        benchmarks: Which benchmarks, in row order: ``gsm8k``, ``mmlu``, ``mt_bench``, or the
            name prefix of any CSV set in the same format.
        exclude_contaminated: Drop rows whose prompt is listed as an ``eval_prompt`` in the
            benchmark's ``contaminated_prompts.jsonl`` (RouteLLM's decontamination of its training
            data against these evals).
        limit: Keep a fixed random subset (seed 0) of this many rows, in table order, so small runs
            still mix benchmarks and subjects. None: all rows.

    Returns:
        The table, named ``"routellm/<benchmarks joined by +>"``.

    Raises:
        FileNotFoundError: A benchmark has no files under ``path``.
        ValueError: Files disagree on the models, or hold malformed scores.
    """
    if not benchmarks:
        raise ValueError("benchmarks is empty: name at least one, e.g. ('gsm8k', 'mmlu')")
    root = Path(path) if path is not None else SHIPPED_DIR
    tables = [read_benchmark(root, name, exclude_contaminated) for name in benchmarks]
    table = concat_tables(tables, name=f"routellm/{'+'.join(benchmarks)}")
    if limit is not None and limit < len(table):
        keep = np.sort(np.random.default_rng(0).choice(len(table), size=limit, replace=False))
        table = table.subset(keep)
    return table


def load_routing_splits(
    test_fraction: float = 0.3,
    split_seed: int = 0,
    path: str | Path | None = None,
    benchmarks: Sequence[str] = ("gsm8k", "mmlu"),
    exclude_contaminated: bool = True,
    limit: int | None = None,
    val_fraction: float = 0.1,
) -> DataSplits:
    """:func:`load_routing_table` split into train / validation / test, stratified by source.

    Test takes ``test_fraction`` of each source (:meth:`RoutingTable.split` with ``split_seed``);
    validation then takes ``val_fraction`` of the whole from what is left (seed ``split_seed + 1``).
    """
    check_fractions(test_fraction, val_fraction)
    table = load_routing_table(path, benchmarks, exclude_contaminated, limit)
    rest, test = table.split(test_fraction, split_seed)
    train, validation = rest.split(val_fraction / (1.0 - test_fraction), split_seed + 1)
    return DataSplits(train, validation, test)


@dataclass
class RoutingTableDataConfig(HeldOutFields):
    """A routing table with a held-out split (``conf/data/routellm.yaml``).

    Instantiating it returns train / validation / test routing tables (:func:`load_routing_splits`).
    """

    _target_: str = "rl_router.data.routellm.load_routing_splits"
    path: str | None = None  # RouteLLM-format directory; None: the copy shipped in the package
    benchmarks: list[str] = field(default_factory=lambda: ["gsm8k", "mmlu"])  # also: mt_bench
    exclude_contaminated: bool = True  # drop RouteLLM's contaminated eval prompts
    limit: int | None = None  # fixed random subset of this many rows (smoke runs); None: all

    def __post_init__(self) -> None:
        if not self.benchmarks:
            raise ValueError("data.benchmarks is empty: use e.g. [gsm8k, mmlu]")
        super().__post_init__()
        if self.limit is not None and self.limit <= 1:
            raise ValueError(f"data.limit={self.limit}: use at least 2 rows (or null for all)")
        if self.path is not None and not Path(self.path).is_dir():
            raise ValueError(f"data.path={self.path!r} is not a directory: point it at RouteLLM-format data")


def read_benchmark(root: Path, benchmark: str, exclude_contaminated: bool) -> RoutingTable:
    """One benchmark of a RouteLLM-format directory as a routing table (see the module docstring)."""
    directory = root / benchmark if (root / benchmark).is_dir() else root
    table = _read_mt_bench(directory) if benchmark == MT_BENCH else _read_csv_benchmark(directory, benchmark)
    if not exclude_contaminated:
        return table
    contaminated = read_contaminated_prompts(directory)
    if contaminated is None:
        logger.warning("%s: no contaminated_prompts.jsonl in %s; nothing excluded", benchmark, directory)
        return table
    keep = [i for i, prompt in enumerate(table.prompts) if prompt not in contaminated]
    logger.info(
        "%s: excluded %d contaminated rows (%d listed), %d of %d rows left",
        benchmark,
        len(table) - len(keep),
        len(contaminated),
        len(keep),
        len(table),
    )
    return table.subset(keep)


def read_contaminated_prompts(directory: Path) -> set[str] | None:
    """The ``eval_prompt`` values of ``contaminated_prompts.jsonl[.gz]``; None if there is no list."""
    for name in ("contaminated_prompts.jsonl", "contaminated_prompts.jsonl.gz"):
        if (directory / name).is_file():
            frame = pd.read_json(directory / name, lines=True)
            return set(frame["eval_prompt"].astype(str))
    return None


def _read_csv_benchmark(directory: Path, benchmark: str) -> RoutingTable:
    files = sorted([*directory.glob(f"{benchmark}*.csv"), *directory.glob(f"{benchmark}*.csv.gz")])
    if not files:
        raise FileNotFoundError(f"no {benchmark}*.csv or {benchmark}*.csv.gz file in {directory}")
    parts = [_read_csv_file(file, benchmark) for file in files]
    return concat_tables(parts, name=f"routellm/{benchmark}")


def _read_csv_file(file: Path, benchmark: str) -> RoutingTable:
    # keep_default_na=False: a prompt or response that reads "NA" or "None" is text, not missing.
    frame = pd.read_csv(file, keep_default_na=False, dtype=str)
    if "prompt" not in frame.columns:
        raise ValueError(f"{file}: no 'prompt' column (columns: {list(frame.columns)})")
    models = [c for c in frame.columns if c != "prompt" and not c.endswith(RESPONSE_SUFFIX)]
    if not models:
        raise ValueError(f"{file}: no model columns besides 'prompt' and '*{RESPONSE_SUFFIX}'")
    source = _source_of(file, benchmark)
    scores = np.stack([_parse_scores(frame[m], file, m) for m in models], axis=1)
    recorded = ~np.isnan(scores).any(axis=1)
    if not recorded.all():
        logger.warning("%s: skipped %d rows without a score for every model", file, int((~recorded).sum()))
    prompts = frame["prompt"].tolist()
    responses = [[_response_cell(frame, m, i) for m in models] for i in range(len(frame))]
    input_tokens = np.array([[count_tokens(p)] * len(models) for p in prompts], dtype=np.int64).reshape(
        len(prompts), len(models)
    )
    output_tokens = np.array(
        [
            [count_tokens(r) if r is not None else estimate_choice_answer_tokens(p) for r in row]
            for p, row in zip(prompts, responses, strict=True)
        ],
        dtype=np.int64,
    ).reshape(len(prompts), len(models))
    table = RoutingTable(
        name=f"routellm/{source}",
        models=models,
        ids=[f"{source}/{i:04d}" for i in range(len(frame))],
        prompts=prompts,
        sources=[source] * len(frame),
        scores=np.nan_to_num(scores),
        responses=responses,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )
    return table.subset(np.flatnonzero(recorded))


def _source_of(file: Path, benchmark: str) -> str:
    """``gsm8k_responses.csv.gz`` -> ``gsm8k``; ``mmlu_anatomy.csv`` -> ``mmlu/anatomy``."""
    stem = file.name.removesuffix(".gz").removesuffix(".csv")
    if stem in (benchmark, f"{benchmark}_responses"):
        return benchmark
    rest = stem.removeprefix(benchmark).lstrip("_-")
    return f"{benchmark}/{rest}" if rest else benchmark


def _parse_scores(column: pd.Series, file: Path, model: str) -> np.ndarray:
    """True/False (any case), 0/1 or a [0, 1] number per cell; NaN for an empty cell."""
    text = column.str.strip().str.lower()
    mapped = text.map({"true": "1", "false": "0", "": "nan"}).fillna(text)
    values = pd.to_numeric(mapped, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(np.isnan(values) & (text != "").to_numpy())
    if len(bad):
        raise ValueError(f"{file}: column {model!r} row {bad[0]} holds {column.iloc[bad[0]]!r}, not a score")
    outside = np.flatnonzero((values < 0) | (values > 1))
    if len(outside):
        raise ValueError(f"{file}: column {model!r} row {outside[0]} is {values[outside[0]]}, not in [0, 1]")
    return values


def _response_cell(frame: pd.DataFrame, model: str, i: int) -> str | None:
    column = f"{model}{RESPONSE_SUFFIX}"
    if column not in frame.columns:
        return None
    text = frame[column].iat[i]
    return text if text.strip() else None


def _read_mt_bench(directory: Path) -> RoutingTable:
    questions = _read_jsonl(directory, "question.jsonl")
    judgements = _read_jsonl(directory, "judgements.jsonl")
    models = list(dict.fromkeys(judgements["model"]))
    turn_scores: dict[tuple[int, str], list[float]] = {}
    answers: dict[tuple[int, str], list[str]] = {}
    for record in judgements.itertuples():
        key = (int(record.question_id), record.model)
        turn_scores.setdefault(key, []).append(float(record.score) / 10.0)
        quoted = _MULTI_TURN_ANSWER.findall(record.user_prompt) or _SINGLE_ANSWER.findall(record.user_prompt)
        if len(quoted) > len(answers.get(key, [])):
            answers[key] = [answer.strip() for answer in quoted]
    rows = []
    for question in questions.itertuples():
        qid = int(question.question_id)
        if any((qid, m) not in turn_scores for m in models):
            logger.warning("%s: question %d lacks a judgement for some model; skipped", directory, qid)
            continue
        rows.append(question)
    scores = [[float(np.mean(turn_scores[(int(q.question_id), m)])) for m in models] for q in rows]
    responses, input_tokens, output_tokens = [], [], []
    for q in rows:
        user_tokens = sum(count_tokens(turn) for turn in q.turns)
        model_answers = [answers.get((int(q.question_id), m), []) for m in models]
        responses.append([a[0] if a else None for a in model_answers])
        # Turn 2 re-sends turn 1 and the model's first answer as context.
        input_tokens.append([user_tokens + (count_tokens(a[0]) if len(a) > 1 else 0) for a in model_answers])
        output_tokens.append([sum(count_tokens(text) for text in a) for a in model_answers])
    return RoutingTable(
        name=f"routellm/{MT_BENCH}",
        models=models,
        ids=[f"{MT_BENCH}/{int(q.question_id):04d}" for q in rows],
        prompts=[q.turns[0] for q in rows],
        sources=[f"{MT_BENCH}/{q.category}" for q in rows],
        scores=np.array(scores, dtype=np.float32).reshape(len(rows), len(models)),
        responses=responses,
        input_tokens=np.array(input_tokens, dtype=np.int64).reshape(len(rows), len(models)),
        output_tokens=np.array(output_tokens, dtype=np.int64).reshape(len(rows), len(models)),
    )


def _read_jsonl(directory: Path, name: str) -> pd.DataFrame:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return pd.read_json(candidate, lines=True)
    raise FileNotFoundError(f"no {name} or {name}.gz in {directory}")
