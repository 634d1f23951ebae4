"""Operating points for LLM routers: the candidate the router names, chosen with offsets.

An LLM router routes by writing ``<search>name: sub-query</search>``. Its choice of candidate is the
first candidate name it writes in the turn: in its ``<think>`` when it names one there (the warm
start teaches ``<think>NAME is likely to know this, so I will ask it.</think>``; by ``<search>``
such a router only copies that name), else right after ``<search>``. This module makes that choice
explicit so that a :class:`~rl_router.routers.calibration.Calibration` can move it, as it moves a
policy router's argmax:

    choice = argmax_j (log p(name_j | context, turn so far) + offset_j)

with ``log p`` the router's own log-probability of each candidate's name (all of its tokens; after
``<search>`` also the colon), renormalised over the candidates. :class:`CalibratedTurns` is a
:class:`~rl_router.generation.TurnGenerator`: it lets the router write until ``<search>`` (or the
end of its turn), finds where the turn first names a candidate, scores the names there, writes the
chosen one (in the think and again after ``<search>``) and lets the router write the rest. With
zero offsets it picks the router's most likely name: a greedy router routes as before up to
tokenisation at the name boundary.

Only the choice *between candidates* is calibrated: a turn that answers without searching stays as
the router wrote it, so a share target is the share of routed calls (first turns, in
``rl-router calibrate``) that go to the target model. Fitting uses the same
:func:`~rl_router.routers.calibration.fit_share_offsets` as policy routers, on the name
log-probabilities at each calibration query's first routing decision (:func:`first_choice_log_probs`).

A think that names a candidate it then decides against (``NAME is too weak, so…``) is read as
choosing it; the routers this project trains name their choice first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from rl_router.generation import STOP_STRINGS, HFTurnGenerator, Segment

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

OPEN = "<search>"


def name_ids(tokenizer: PreTrainedTokenizerBase, names: Sequence[str]) -> list[list[int]]:
    """The tokens each candidate's ``name:`` continues ``<search>`` with.

    Raises:
        ValueError: two names tokenise the same (the router could not tell them apart).
    """
    ids = [list(tokenizer(f"{n}:", add_special_tokens=False)["input_ids"]) for n in names]
    if len({tuple(i) for i in ids}) < len(ids):
        raise ValueError(f"candidate names {list(names)} tokenise alike: the router cannot tell them apart")
    return ids


@torch.no_grad()
def score_names(model: PreTrainedModel, contexts: list[list[int]], names: list[list[int]]) -> np.ndarray:
    """``float64 [n, m]``: log p of each name's tokens after each context, log-softmaxed over names.

    One forward pass per (context, name) pair, batched per context.
    """
    device = model.device
    out = np.zeros((len(contexts), len(names)))
    for i, context in enumerate(contexts):
        width = max(len(n) for n in names)
        rows = [context + n + [0] * (width - len(n)) for n in names]
        mask = [[1] * (len(context) + len(n)) + [0] * (width - len(n)) for n in names]
        logits = model(
            input_ids=torch.tensor(rows, device=device), attention_mask=torch.tensor(mask, device=device)
        ).logits.float()
        logp = torch.log_softmax(logits, dim=-1)
        for j, n in enumerate(names):
            positions = torch.arange(len(context) - 1, len(context) - 1 + len(n), device=device)
            out[i, j] = float(logp[j, positions, torch.tensor(n, device=device)].sum())
    return out - np.logaddexp.reduce(out, axis=1, keepdims=True)


def first_mention(
    tokenizer: PreTrainedTokenizerBase, ids: Sequence[int], names: Sequence[str]
) -> tuple[int, str] | None:
    """Where a turn's text first names a candidate before its ``<search>``: ``(k, gap)``.

    ``k`` is the number of the turn's tokens before the name (the longest token prefix whose text
    ends at or before it) and ``gap`` the text between those tokens and the name (``""`` or, with
    BPE vocabularies that attach spaces to the next word, ``" "``), so that ``gap + name`` is what
    the router writes after ``ids[:k]``. ``None`` when no name is written before ``<search>``, or
    when one name is a prefix of another (an unterminated mention cannot tell them apart).
    """
    if any(a != b and b.startswith(a) for a in names for b in names):
        return None
    text = tokenizer.decode(list(ids), skip_special_tokens=True)
    end = text.rfind(OPEN)
    head = text[:end] if end >= 0 else text
    found = [(head.find(n), n) for n in names if head.find(n) >= 0]
    if not found:
        return None
    start = min(found)[0]
    k = 0
    for j in range(1, len(ids) + 1):
        prefix = tokenizer.decode(list(ids[:j]), skip_special_tokens=True)
        if len(prefix) > start or not text.startswith(prefix):
            break
        k = j
    gap = text[len(tokenizer.decode(list(ids[:k]), skip_special_tokens=True)) : start]
    return (k, gap) if gap.strip() == "" else None


class CalibratedTurns:
    """Router turns whose candidate is chosen by ``argmax(log p(name) + offsets)``.

    The choice is made where the turn first writes a candidate's name: in its ``<think>`` when it
    names one there (``<think>NAME is likely to know this…``, as the warm start teaches; by
    ``<search>`` such a router only copies the name, at near-certain probability), else right after
    ``<search>``. The chosen name is written at that point, and again after ``<search>``.

    Args:
        model, tokenizer: The LLM router.
        names: The candidates, in the order ``offsets`` follow.
        offsets: ``[m]`` added to the names' log-probabilities (zeros: the router's own choice).
        chunk: Rows per ``generate`` call.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        names: Sequence[str],
        offsets: Sequence[float],
        chunk: int = 16,
    ) -> None:
        if len(offsets) != len(names):
            raise ValueError(f"{len(offsets)} offsets for {len(names)} candidates")
        self.model, self.tokenizer = model, tokenizer
        self.names = list(names)
        self.name_ids = name_ids(tokenizer, names)
        self.offsets = np.asarray(offsets, dtype=np.float64)
        self.until_open = HFTurnGenerator(
            model, tokenizer, sample=False, chunk=chunk, stops=(*STOP_STRINGS, OPEN)
        )
        self.rest = HFTurnGenerator(model, tokenizer, sample=False, chunk=chunk)
        self.last_log_probs: dict[int, np.ndarray] = {}  # row -> its name log p, for the last call
        self.last_points: dict[int, str] = {}  # row -> "think" or "search": where it was chosen

    def __call__(self, contexts: list[list[int]], limits: list[int]) -> list[Segment]:
        heads = self.until_open(contexts, limits)
        out = list(heads)
        self.last_log_probs, self.last_points = {}, {}
        opened = [i for i, s in enumerate(heads) if self._opened(s.ids, limits[i])]
        at_search: dict[int, tuple[list[int], int]] = {}  # row -> (ids up to <search>, choice)
        in_think = {}
        for i in opened:
            point = first_mention(self.tokenizer, heads[i].ids, self.names)
            if point is None:
                continue
            k, gap = point
            variants = [
                list(self.tokenizer(gap + n, add_special_tokens=False)["input_ids"]) for n in self.names
            ]
            log_probs = score_names(self.model, [contexts[i] + heads[i].ids[:k]], variants)[0]
            choice = int(np.argmax(log_probs + self.offsets))
            self.last_log_probs[i], self.last_points[i] = log_probs, "think"
            forced = heads[i].ids[:k] + variants[choice]
            if heads[i].ids[: len(forced)] == forced:  # the router's own name: its head stands
                at_search[i] = (heads[i].ids, choice)
            else:
                in_think[i] = (forced, choice)
        if in_think:
            rows = list(in_think)
            again = self.until_open(
                [contexts[i] + in_think[i][0] for i in rows],
                [max(limits[i] - len(in_think[i][0]), 1) for i in rows],
            )
            for i, seg in zip(rows, again, strict=True):
                ids = in_think[i][0] + seg.ids
                if self._opened(ids, limits[i]):
                    at_search[i] = (ids, in_think[i][1])
                else:  # the forced name led to a turn that does not route: it stands as written
                    out[i] = Segment(ids, None, seg.reason)
        plain = [i for i in opened if i not in self.last_log_probs]
        if plain:
            log_probs = score_names(self.model, [contexts[i] + heads[i].ids for i in plain], self.name_ids)
            for row, i in enumerate(plain):
                self.last_log_probs[i], self.last_points[i] = log_probs[row], "search"
                at_search[i] = (heads[i].ids, int(np.argmax(log_probs[row] + self.offsets)))
        if not at_search:
            return out
        rows = sorted(at_search)
        named = {i: at_search[i][0] + self.name_ids[at_search[i][1]] for i in rows}
        tails = self.rest(
            [contexts[i] + named[i] for i in rows], [max(limits[i] - len(named[i]), 1) for i in rows]
        )
        for i, tail in zip(rows, tails, strict=True):
            out[i] = Segment(named[i] + tail.ids, None, tail.reason)
        return out

    def _opened(self, ids: Sequence[int], limit: int) -> bool:
        return self._text(ids).endswith(OPEN) and len(ids) < limit

    def _text(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


def first_choice_log_probs(
    generate: CalibratedTurns, contexts: list[list[int]], limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """The name log-probabilities at each context's first ``<search>``, for fitting offsets.

    Returns:
        ``(log_probs [k, m], routed [n] bool)``: one row per context whose first turn searched
        (``routed``); contexts whose first turn answered or broke the protocol have none.
    """
    routed = np.zeros(len(contexts), dtype=bool)
    rows = []
    for start in range(0, len(contexts), 16):
        chunk = contexts[start : start + 16]
        generate(chunk, [limit] * len(chunk))
        for i in range(len(chunk)):
            if i in generate.last_log_probs:
                routed[start + i] = True
                rows.append(generate.last_log_probs[i])
    return (np.stack(rows) if rows else np.zeros((0, len(generate.names)))), routed
