"""A fast, dependency-free text embedding for compact policies: signed feature hashing of words and bigrams.

Agent steps produce a new observation text at every move, too many to run a sentence encoder on
two CPU cores; hashing costs microseconds and is stable across processes (CRC32, not Python's salted
``hash``). A sentence encoder can replace it (``AgentStepsEnv(embed=...)``).

>>> v = hash_embed("You are in the kitchen.", dim=16)
>>> v.shape, round(float((v * v).sum()), 6)
((16,), 1.0)
>>> bool((hash_embed("the kitchen", 16) == hash_embed("the kitchen", 16)).all())
True
"""

from __future__ import annotations

import re
import zlib

import numpy as np

WORD = re.compile(r"[a-z0-9]+")


def hash_embed(text: str, dim: int = 64) -> np.ndarray:
    """``float32 [dim]``: L2-normalised signed counts of hashed words and word bigrams (zeros if none)."""
    words = WORD.findall(str(text).lower())
    grams = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    vec = np.zeros(dim, dtype=np.float32)
    for gram in grams:
        h = zlib.crc32(gram.encode())
        vec[h % dim] += 1.0 if (h >> 16) & 1 else -1.0
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec
