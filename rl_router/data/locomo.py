"""LoCoMo conversations and QA for ``memory_tiers`` (BudgetMem's benchmark), with its splits.

:func:`load_locomo` reads the compact copy shipped in ``rl_router/data/assets/locomo/`` (text and
QA of categories 1-4; research, non-commercial licence, see its ``NOTICE.md``), or LoCoMo's own
``locomo10.json`` from a path. :func:`locomo_splits` (``conf/data/locomo.yaml``) returns
:class:`~rl_router.data.splits.DataSplits` split as BudgetMem's code does: conversations 0-5 train,
6-7 validation, 8-9 test. Within each conversation the QA can be subsampled, stratified by category,
for runs sized to minutes.

Each QA row carries its conversation's chunks (one shared tuple per conversation), so an env needs
nothing else::

    {"id": "conv-26:q0", "question": "...", "golden_answers": ["7 May 2023"], "answer": "7 May 2023",
     "category": 2, "conversation": "conv-26", "evidence": ["D1:3"], "chunks": ("[1:56 pm on 8 May,
     2023] Caroline: Hey Mel! ...", ...)}

A chunk is consecutive turns, each written ``[<session date>] <speaker>: <text>``, up to
``chunk_tokens`` whitespace tokens (a turn longer than that is a chunk of its own).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rl_router.data.splits import DataSplits

ASSET = Path(__file__).parent / "assets" / "locomo" / "locomo10_text.json.gz"
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
SCORED_CATEGORIES = (1, 2, 3, 4)  # category 5 (adversarial) has no answer to score F1 against


def compact_conversations(raw: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """LoCoMo's ``locomo10.json`` records in the shipped layout (sessions in order, text only, QA 1-4).

    >>> raw = [{"sample_id": "c", "conversation": {"speaker_a": "A", "speaker_b": "B",
    ...         "session_1_date_time": "d1", "session_1": [{"speaker": "A", "dia_id": "D1:1", "text": "hi"}]},
    ...         "qa": [{"question": "q", "answer": 1, "evidence": [], "category": 4},
    ...                {"question": "q5", "adversarial_answer": "x", "evidence": [], "category": 5}]}]
    >>> conv = compact_conversations(raw)[0]
    >>> conv["sessions"][0]["turns"][0]["text"], len(conv["qa"])
    ('hi', 1)
    """
    out = []
    for conv in raw:
        c = conv["conversation"]
        numbers = sorted(int(k.split("_")[1]) for k in c if k.startswith("session_") and "date" not in k)
        sessions = [
            {
                "session": n,
                "date_time": c.get(f"session_{n}_date_time", ""),
                "turns": [{k: t[k] for k in ("speaker", "dia_id", "text")} for t in c[f"session_{n}"]],
            }
            for n in numbers
        ]
        qa = [
            {k: q[k] for k in ("question", "answer", "evidence", "category")}
            for q in conv["qa"]
            if q["category"] in SCORED_CATEGORIES and "answer" in q
        ]
        out.append(
            {
                "sample_id": conv["sample_id"],
                "speaker_a": c["speaker_a"],
                "speaker_b": c["speaker_b"],
                "sessions": sessions,
                "qa": qa,
            }
        )
    return out


def load_locomo(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The conversations, in file order: the shipped copy (None), LoCoMo's raw JSON, or a compact one.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message says how to use the shipped copy).
    """
    if path is None:
        return json.loads(gzip.decompress(ASSET.read_bytes()))
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"data.path={path}: no such file; leave data.path unset for the shipped copy")
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    data = json.loads(text)
    return data if data and "sessions" in data[0] else compact_conversations(data)


def whitespace_tokens(text: str) -> int:
    return len(text.split())


def chunk_conversation(
    conv: dict[str, Any], chunk_tokens: int = 256, count_tokens: Callable[[str], int] = whitespace_tokens
) -> tuple[str, ...]:
    """Consecutive turns grouped into chunks of at most ``chunk_tokens`` tokens.

    >>> conv = {"sessions": [{"date_time": "May 2023", "turns": [
    ...     {"speaker": "A", "text": "one two three"}, {"speaker": "B", "text": "four five"}]}]}
    >>> chunk_conversation(conv, chunk_tokens=6)
    ('[May 2023] A: one two three', '[May 2023] B: four five')
    """
    chunks: list[str] = []
    lines: list[str] = []
    used = 0
    for session in conv["sessions"]:
        for turn in session["turns"]:
            line = f"[{session['date_time']}] {turn['speaker']}: {turn['text']}"
            n = count_tokens(line)
            if lines and used + n > chunk_tokens:
                chunks.append("\n".join(lines))
                lines, used = [], 0
            lines.append(line)
            used += n
    if lines:
        chunks.append("\n".join(lines))
    return tuple(chunks)


def stratified_sample(qa: Sequence[dict[str, Any]], n: int | None, seed: int) -> list[int]:
    """Indices of ``n`` QA rows drawn in proportion to their categories (largest remainders), in order.

    >>> qa = [{"category": 1}] * 6 + [{"category": 2}] * 3 + [{"category": 4}]
    >>> chosen = stratified_sample(qa, 4, seed=0)
    >>> sorted({qa[i]["category"] for i in chosen}), len(chosen)
    ([1, 2, 4], 4)
    """
    if n is None or n >= len(qa):
        return list(range(len(qa)))
    rng = np.random.default_rng(seed)
    by_cat: dict[int, list[int]] = {}
    for i, q in enumerate(qa):
        by_cat.setdefault(int(q["category"]), []).append(i)
    cats = sorted(by_cat)
    quota = {c: n * len(by_cat[c]) / len(qa) for c in cats}
    take = {c: min(len(by_cat[c]), max(1, int(quota[c]))) for c in cats}  # every category kept
    for c in sorted(cats, key=lambda c: quota[c] - int(quota[c]), reverse=True):
        if sum(take.values()) >= n:
            break
        take[c] = min(len(by_cat[c]), take[c] + 1)
    while sum(take.values()) > n:  # more categories than n: drop from the largest
        biggest = max(cats, key=lambda c: take[c])
        take[biggest] -= 1
    chosen = [i for c in cats for i in rng.permutation(by_cat[c])[: take[c]].tolist()]
    return sorted(chosen)


def qa_rows(
    conversations: Sequence[dict[str, Any]],
    indices: Sequence[int],
    per_conversation: int | None = None,
    categories: Sequence[int] = SCORED_CATEGORIES,
    chunk_tokens: int = 256,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """QA rows of the conversations at ``indices``, each with its conversation's chunks."""
    rows = []
    for index in indices:
        if not 0 <= index < len(conversations):
            raise ValueError(f"conversation index {index}: the data has {len(conversations)} conversations")
        conv = conversations[index]
        chunks = chunk_conversation(conv, chunk_tokens)
        qa = [(i, q) for i, q in enumerate(conv["qa"]) if q["category"] in categories]
        keep = stratified_sample([q for _, q in qa], per_conversation, seed + index)
        for j in keep:
            i, q = qa[j]
            answer = str(q["answer"])
            rows.append(
                {
                    "id": f"{conv['sample_id']}:q{i}",
                    "question": q["question"],
                    "golden_answers": [answer],
                    "answer": answer,
                    "category": int(q["category"]),
                    "conversation": conv["sample_id"],
                    "evidence": list(q.get("evidence", [])),
                    "chunks": chunks,
                }
            )
    return rows


@dataclass
class LocomoDataConfig:
    """LoCoMo QA split by conversation (Hydra schema ``data/locomo_schema``)."""

    _target_: str = "rl_router.data.locomo.locomo_splits"
    path: str | None = None  # locomo10.json (LoCoMo's) or a compact .json.gz; None: the shipped copy
    train: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4, 5])  # conversations (BudgetMem: 0-5)
    validation: list[int] = field(default_factory=lambda: [6, 7])  # conversations chosen on (6-7)
    test: list[int] = field(default_factory=lambda: [8, 9])  # conversations reported (8-9)
    per_conversation: int | None = None  # QA kept per conversation, stratified by category; None: all
    categories: list[int] = field(default_factory=lambda: list(SCORED_CATEGORIES))  # 5 has no F1 answer
    chunk_tokens: int = 256  # whitespace tokens per memory chunk (BudgetMem: 256 for LoCoMo)
    seed: int = 0  # seed of the stratified subsample

    def __post_init__(self) -> None:
        parts = {"train": self.train, "validation": self.validation, "test": self.test}
        seen: dict[int, str] = {}
        for name, indices in parts.items():
            if not indices:
                raise ValueError(f"data.{name} is empty: list conversation indices, e.g. [8, 9]")
            for i in indices:
                if i in seen:
                    raise ValueError(f"conversation {i} is in both data.{seen[i]} and data.{name}")
                seen[i] = name
        bad = sorted(set(self.categories) - set(SCORED_CATEGORIES))
        if bad or not self.categories:
            raise ValueError(f"data.categories={self.categories}: choose from {list(SCORED_CATEGORIES)}")
        if self.per_conversation is not None and self.per_conversation < 1:
            raise ValueError(f"data.per_conversation={self.per_conversation}: use >= 1, or null for all")
        if self.chunk_tokens < 8:
            raise ValueError(f"data.chunk_tokens={self.chunk_tokens}: use at least 8 (BudgetMem: 256)")


def locomo_splits(**fields: Any) -> DataSplits:
    """Train / validation / test QA rows (see :class:`LocomoDataConfig` for the fields)."""
    cfg = LocomoDataConfig(**fields)
    conversations = load_locomo(cfg.path)
    part = {
        name: qa_rows(
            conversations,
            getattr(cfg, name),
            cfg.per_conversation,
            cfg.categories,
            cfg.chunk_tokens,
            cfg.seed,
        )
        for name in ("train", "validation", "test")
    }
    return DataSplits(part["train"], part["validation"], part["test"])
