"""The order a dataset env visits its rows in: one seeded permutation per pass, and a cursor.

Every env family draws its next row the same way (``multi_llm_qa``'s queries, ``memory_tiers``'
questions, ``agent_steps``' game tasks), so they share this one small object. Each pass over the rows
is a fresh permutation drawn from the env's own ``np_random`` (or the dataset order with
``shuffle=False``); an env reset with a seed starts a new pass, so equal seeds visit equal orders (what
grouped rollouts and exact resumes rely on)::

    >>> rng = np.random.default_rng(0)
    >>> rows = RowOrder(3, shuffle=False)
    >>> [rows.next(rng) for _ in range(4)]
    [0, 1, 2, 0]
    >>> rows.state_dict()
    {'order': [0, 1, 2], 'cursor': 1}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


class RowOrder:
    """Which row comes next, over ``rows`` rows.

    Args:
        rows: How many rows the env has.
        shuffle: Visit each pass in a random order drawn from the env's generator (False: 0, 1, ...).
        start_exhausted: Begin at the end of a pass, so the first :meth:`next` draws a permutation
            (False: the first pass is the dataset order until a seeded reset calls :meth:`new_pass`).
    """

    def __init__(self, rows: int, shuffle: bool, start_exhausted: bool = False) -> None:
        if rows < 1:
            raise ValueError(f"an env needs at least one row, got {rows}")
        self.rows, self.shuffle = rows, shuffle
        self.order = np.arange(rows)
        self.cursor = 0
        if start_exhausted:
            self.end_pass()

    def new_pass(self, rng: np.random.Generator) -> None:
        """Start a pass: a fresh permutation from ``rng`` (or the dataset order), cursor at its start."""
        self.order = rng.permutation(self.rows) if self.shuffle else np.arange(self.rows)
        self.cursor = 0

    def end_pass(self) -> None:
        """Use up this pass: the next :meth:`next` draws a fresh permutation (from the generator it is
        given then, so a seeded reset that picks its row by index leaves the generator untouched)."""
        self.cursor = len(self.order)

    def next(self, rng: np.random.Generator) -> int:
        """The next row's index, starting a new pass when this one is used up."""
        if self.cursor >= len(self.order):
            self.new_pass(rng)
        index = int(self.order[self.cursor])
        self.cursor += 1
        return index

    def state_dict(self) -> dict[str, Any]:
        """JSON data: the pass's order and the cursor (the env saves its generator itself)."""
        return {"order": self.order.tolist(), "cursor": self.cursor}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Go on from :meth:`state_dict`'s data; ValueError when it is over another number of rows."""
        order = np.asarray(state["order"], dtype=np.int64)
        if len(order) != self.rows or not 0 <= int(state["cursor"]) <= self.rows:
            raise ValueError(
                f"a row order over {len(order)} rows at cursor {state['cursor']}, not over this env's "
                f"{self.rows}"
            )
        self.order, self.cursor = order, int(state["cursor"])
