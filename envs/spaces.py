"""Spaces shared by the text envs."""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from gymnasium import spaces


class TextSpace(spaces.Space[str]):
    """Strings of at most ``max_length`` characters (any characters, unlike ``spaces.Text``'s default).

    ``sample`` draws printable ASCII, enough for ``check_env`` to exercise an env with garbage text.

    >>> space = TextSpace(max_length=5)
    >>> "<a b>" in space, "too long" in space, 3 in space
    (True, False, False)
    """

    def __init__(self, max_length: int, seed: int | np.random.Generator | None = None) -> None:
        if max_length < 1:
            raise ValueError(f"max_length={max_length}: admit at least one character")
        self.max_length = max_length
        super().__init__(shape=None, dtype=None, seed=seed)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        length = int(self.np_random.integers(0, self.max_length + 1))
        chars = self.np_random.choice(list(string.printable), size=length)
        return "".join(chars.tolist())

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextSpace) and other.max_length == self.max_length

    def __repr__(self) -> str:
        return f"TextSpace(max_length={self.max_length})"
