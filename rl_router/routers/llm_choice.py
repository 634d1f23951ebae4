"""Operating points for LLM routers: the candidate named after ``<search>``, chosen with offsets.

An LLM router routes by writing ``<search>name: sub-query</search>``. Its choice of candidate is the
name it writes right after ``<search>``; this module makes that choice explicit so that a
:class:`~rl_router.routers.calibration.Calibration` can move it, as it moves a policy router's
argmax:

    choice = argmax_j (log p(name_j ":" | context, "<search>") + offset_j)

with ``log p`` the router's own log-probability of each candidate's name (all of its tokens, then
the colon), renormalised over the candidates. :class:`CalibratedTurns` is a
:class:`~rl_router.generation.TurnGenerator`: it lets the router write until ``<search>`` (or the end of
its turn), scores the names there, appends the chosen one and lets the router write the rest. With
zero offsets it picks the router's most likely name: a greedy router routes as before up to
tokenisation at the name boundary.

Only the choice *between candidates* is calibrated: a turn that answers without searching stays as
the router wrote it, so a share target is the share of routed calls (first turns, in
``rl-router calibrate``) that go to the target model. Fitting uses the same
:func:`~rl_router.routers.calibration.fit_share_offsets` as policy routers, on the name
log-probabilities of each calibration query's first ``<search>`` (:func:`first_choice_log_probs`).
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


class CalibratedTurns:
    """Router turns whose candidate name is chosen by ``argmax(log p(name) + offsets)``.

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

    def __call__(self, contexts: list[list[int]], limits: list[int]) -> list[Segment]:
        heads = self.until_open(contexts, limits)
        opened = [
            i for i, s in enumerate(heads) if self._text(s.ids).endswith(OPEN) and len(s.ids) < limits[i]
        ]
        self.last_log_probs = {}
        if not opened:
            return heads
        stems = [contexts[i] + heads[i].ids for i in opened]
        log_probs = score_names(self.model, stems, self.name_ids)
        choices = np.argmax(log_probs + self.offsets, axis=1)
        heads_with_name = {}
        for row, i, choice in zip(range(len(opened)), opened, choices, strict=True):
            self.last_log_probs[i] = log_probs[row]
            heads_with_name[i] = heads[i].ids + self.name_ids[int(choice)]
        left = [max(limits[i] - len(heads_with_name[i]), 1) for i in opened]
        tails = self.rest([contexts[i] + heads_with_name[i] for i in opened], left)
        out = list(heads)
        for i, tail in zip(opened, tails, strict=True):
            out[i] = Segment(heads_with_name[i] + tail.ids, None, tail.reason)
        return out

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
