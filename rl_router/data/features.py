"""Query features: what a small policy router observes of a query, computed from its text alone.

A query's feature vector is the concatenation of named *blocks*, in the order a config lists them
(``env.features``, :class:`envs.multi_llm_qa.MultiLLMQAConfig`). The env (training) and
:class:`~rl_router.routers.policy.PolicyRouter` (inference, eval, export) both call
:func:`query_features`, so a router computes at inference exactly what it was trained on, from the
raw query text and nothing else: no dataset label, no subject name, nothing a user's traffic lacks.

Blocks (:data:`BLOCKS`):

* ``embedding`` (384): all-MiniLM-L6-v2 (:mod:`rl_router.embeddings`): what the query is about.
* ``length`` (2): ``log1p(characters) / 8`` and ``log1p(tokens) / 8``
  (:func:`~rl_router.data.tokens.count_tokens`).
* ``format`` (2): the form of the prompt, the source indicator a router can see: lettered answer
  options (``A. ...`` lines, at least two: MMLU's form), and an answer cue at the end (``Answer:``).
* ``text_stats`` (8): cheap difficulty proxies: ``log1p`` counts of digits, numbers and arithmetic
  operators, the largest number's magnitude, LaTeX / ``$`` maths, the number of sentences, the number
  of answer options, and the log ratio of the stem's length to the options' length.

Every block but ``embedding`` is a fixed, deterministic function of the text with hand-set scales
(values of order 1 on the RouteLLM prompts), so nothing is fitted and nothing needs storing::

    >>> [round(float(v), 3) for v in text_features(["What is 12 * 7?"], ["length", "format"])[0]]
    [0.347, 0.243, 0.0, 0.0]
    >>> feature_dim(ALL_FEATURES)
    396
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from rl_router.data.tokens import count_tokens
from rl_router.embeddings import EMBED_DIM, EMBEDDING_MODEL, EMBEDDING_RECIPE, embed_queries

# block -> the names of its columns, in order (the embedding's 384 columns are one unnamed vector)
BLOCKS: dict[str, tuple[str, ...]] = {
    "embedding": (),
    "length": ("log1p(chars)/8", "log1p(tokens)/8"),
    "format": ("lettered options (>= 2)", "ends with an answer cue"),
    "text_stats": (
        "log1p(digits)/4",
        "log1p(numbers)/3",
        "log1p(arithmetic operators)/3",
        "log10(1 + largest number)/6",
        "latex or $ maths",
        "log1p(sentences)/3",
        "answer options/4",
        "log((1 + stem chars) / (1 + option chars))/4",
    ),
}
# What env.features defaults to: chosen on validation APGR per benchmark, where the PPO router with
# every block scored 0.602 (MMLU) / 0.499 (GSM8K) against the embedding's 0.653 / 0.633 (README).
DEFAULT_FEATURES = ("embedding",)
ALL_FEATURES = ("embedding", "length", "format", "text_stats")
LEGACY_FEATURES = ("embedding",)  # what routers recorded before env.features existed observe
EMBEDDING_PART = "query_embedding"  # the embedding block's name in an observation layout

_OPTION = re.compile(r"^\s*\(?([A-J])[.)]\s+(.*)$", re.MULTILINE)
_ANSWER_CUE = re.compile(r"(answer|solution)\s*:?\s*$", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_OPERATOR = re.compile(r"(?<=[\d\s)])[-+*/×÷=^<>%](?=[\s\d(.$])")
_LATEX = re.compile(r"\$|\\frac|\\sqrt|\\cdot|\\times|\\\(|\\\[")
_SENTENCE_END = re.compile(r"[.?!](?:\s|$)")


def check_features(blocks: Sequence[str], key: str = "env.features") -> tuple[str, ...]:
    """``blocks`` as a tuple, checked: known names, no repeats, at least one.

    >>> check_features(["length", "embeding"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: env.features=['length', 'embeding']: unknown block(s) ['embeding']; choose from [...]
    """
    blocks = tuple(blocks)
    unknown = [b for b in blocks if b not in BLOCKS]
    if unknown:
        raise ValueError(f"{key}={list(blocks)}: unknown block(s) {unknown}; choose from {list(BLOCKS)}")
    if not blocks or len(set(blocks)) != len(blocks):
        raise ValueError(
            f"{key}={list(blocks)}: list each block once, at least one, e.g. {list(ALL_FEATURES)}"
        )
    return blocks


def block_size(block: str) -> int:
    return EMBED_DIM if block == "embedding" else len(BLOCKS[block])


def feature_dim(blocks: Sequence[str]) -> int:
    """Width of :func:`query_features` for ``blocks``."""
    return sum(block_size(b) for b in check_features(blocks))


@functools.lru_cache(maxsize=1 << 16)  # the vectorised env's copies read the same rows
def _stats(text: str) -> dict[str, tuple[float, ...]]:
    options = _OPTION.findall(text)
    if len(options) < 2:
        options = []
    first = _OPTION.search(text) if options else None
    stem = text[: first.start()] if first else text
    option_chars = sum(len(body) for _, body in options)
    numbers = [float(n.replace(",", "")) for n in _NUMBER.findall(text) if n.replace(",", "").count(".") <= 1]
    return {
        "length": (math.log1p(len(text)) / 8, math.log1p(count_tokens(text)) / 8),
        "format": (float(bool(options)), float(bool(_ANSWER_CUE.search(text.strip())))),
        "text_stats": (
            math.log1p(sum(c.isdigit() for c in text)) / 4,
            math.log1p(len(numbers)) / 3,
            math.log1p(len(_OPERATOR.findall(text))) / 3,
            math.log10(1 + min(max(numbers, default=0.0), 1e12)) / 6,
            float(bool(_LATEX.search(text))),
            math.log1p(len(_SENTENCE_END.findall(stem))) / 3,
            len(options) / 4,
            math.log((1 + len(stem)) / (1 + option_chars)) / 4 if options else 0.0,
        ),
    }


def text_features(texts: Sequence[str], blocks: Sequence[str]) -> np.ndarray:
    """``float32 [n, F]``: the text blocks of ``blocks`` (``embedding`` skipped), in their order."""
    blocks = [b for b in check_features(blocks) if b != "embedding"]
    rows = []
    for text in texts:
        stats = _stats(str(text))
        rows.append([v for b in blocks for v in stats[b]])
    return np.asarray(rows, dtype=np.float32).reshape(len(texts), sum(len(BLOCKS[b]) for b in blocks))


def query_features(
    texts: Sequence[str],
    blocks: Sequence[str],
    embeddings: np.ndarray | None = None,
    progress: bool = False,
) -> np.ndarray:
    """``float32 [n, Q]``: every block of ``blocks`` for each text, in order (``Q = feature_dim(blocks)``
    with the shipped encoder).

    Args:
        texts: The raw queries.
        blocks: Block names (:data:`BLOCKS`).
        embeddings: ``float32 [n, E]`` encoder vectors of ``texts`` when already at hand (the
            trainer's; E is 384 for the shipped encoder, any width for an env's own vectors); None
            embeds them (:func:`~rl_router.embeddings.embed_queries`, cached).
        progress: Show the encoder's progress bar.

    Raises:
        ValueError: an unknown block, or ``embeddings`` without one row per text.
    """
    blocks = check_features(blocks)
    parts = []
    for block in blocks:
        if block == "embedding":
            if embeddings is None:
                embeddings = embed_queries(list(texts), progress=progress)
            emb = np.asarray(embeddings, dtype=np.float32)
            if emb.ndim != 2 or len(emb) != len(texts):
                raise ValueError(f"embeddings of shape {emb.shape} for {len(texts)} texts: need one row each")
            parts.append(emb)
        else:
            parts.append(text_features(texts, [block]))
    return np.concatenate(parts, axis=1) if parts else np.zeros((len(texts), 0), np.float32)


def feature_layout(blocks: Sequence[str]) -> list[dict[str, Any]]:
    """The query part of an observation layout (``router_config.json``): one entry per block."""
    parts: list[dict[str, Any]] = []
    for block in check_features(blocks):
        if block == "embedding":
            parts.append(
                {
                    "name": EMBEDDING_PART,
                    "size": EMBED_DIM,
                    "encoder": EMBEDDING_MODEL,
                    "recipe": EMBEDDING_RECIPE,
                }
            )
        else:
            parts.append({"name": block, "size": len(BLOCKS[block]), "columns": list(BLOCKS[block])})
    return parts


def features_of_layout(parts: Sequence[dict[str, Any]], where: str) -> tuple[str, ...]:
    """The blocks a recorded layout's query parts name (the inverse of :func:`feature_layout`).

    Raises:
        ValueError: a part this version does not compute (naming it and ``where``).
    """
    blocks = tuple("embedding" if p.get("name") == EMBEDDING_PART else str(p.get("name")) for p in parts)
    unknown = [b for b in blocks if b not in BLOCKS]
    if unknown:
        raise ValueError(
            f"{where}: observation part(s) {unknown} are not query features this rl-router computes "
            f"({[EMBEDDING_PART, *list(BLOCKS)[1:]]}); install the rl-router version that wrote it"
        )
    return check_features(blocks, key=f"{where}: observation parts")
