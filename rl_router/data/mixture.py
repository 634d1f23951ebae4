"""A mixture of QA sources with a held-out split: ``(train, test)`` datasets of one schema.

Live-pool experiments need questions where the cheap candidate suffices for some and not others;
no single source gives that, so ``conf/data/local_mix.yaml`` mixes the shipped country-capital
sample (both zoo models know most capitals) with reasoning-gym arithmetic (only the larger model
adds reliably). Each part is any data option that yields a QA ``datasets.Dataset``; Hydra builds
the parts, :func:`load_qa_splits` joins and splits them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np


def load_qa_splits(
    parts: Sequence[datasets.Dataset], test_fraction: float = 0.3, split_seed: int = 0
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Join QA datasets and hold out ``test_fraction`` of every source (stratified, seeded).

    Raises:
        ValueError: no parts, or two rows share an id (ids key the response cache and reports).
    """
    if not parts:
        raise ValueError("data.parts is empty: list at least one QA data option")
    joined = datasets.concatenate_datasets(list(parts))
    ids = joined["id"]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"data.parts share row ids {dupes[:3]}...: give each part its own source")
    rng = np.random.default_rng(split_seed)
    sources = np.asarray(joined["source"])
    test_rows: list[int] = []
    for source in sorted(set(sources)):
        rows = np.flatnonzero(sources == source)
        n_test = int(round(test_fraction * len(rows)))
        test_rows += rng.permutation(rows)[:n_test].tolist()
    is_test = np.zeros(len(joined), dtype=bool)
    is_test[test_rows] = True
    return joined.select(np.flatnonzero(~is_test)), joined.select(np.flatnonzero(is_test))


@dataclass
class QAMixDataConfig:
    """A QA mixture with a held-out split (``conf/data/local_mix.yaml``)."""

    _target_: str = "rl_router.data.mixture.load_qa_splits"
    parts: list[Any] = field(default_factory=list)  # data options (each with _target_) giving QA datasets
    test_fraction: float = 0.3  # share of each source held out for evaluation
    split_seed: int = 0  # seed of the held-out split

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError("data.parts is empty: list QA data options, e.g. {_target_: ...load_qa_file}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"data.test_fraction={self.test_fraction}: use a value in (0, 1), e.g. 0.3")
