"""A mixture of QA sources with held-out splits: train / validation / test datasets of one schema.

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

from rl_router.data.splits import DataSplits, HeldOutFields, check_fractions


def load_qa_splits(
    parts: Sequence[datasets.Dataset],
    test_fraction: float = 0.3,
    split_seed: int = 0,
    val_fraction: float = 0.1,
) -> DataSplits:
    """Join QA datasets; hold out ``test_fraction``, then ``val_fraction``, of every source (seeded).

    Raises:
        ValueError: no parts, or two rows share an id (ids key the response cache and reports).
    """
    if not parts:
        raise ValueError("data.parts is empty: list at least one QA data option")
    check_fractions(test_fraction, val_fraction)
    joined = datasets.concatenate_datasets(list(parts))
    ids = joined["id"]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"data.parts share row ids {dupes[:3]}...: give each part its own source")
    rng = np.random.default_rng(split_seed)
    val_rng = np.random.default_rng([split_seed, 1])  # validation: its own stream, test rows unchanged
    sources = np.asarray(joined["source"])
    part = np.zeros(len(joined), dtype=np.int8)  # 0 train, 1 validation, 2 test
    for source in sorted(set(sources)):
        rows = np.flatnonzero(sources == source)
        n_test = int(round(test_fraction * len(rows)))
        shuffled = rng.permutation(rows)
        part[shuffled[:n_test]] = 2
        rest = np.sort(shuffled[n_test:])
        part[val_rng.permutation(rest)[: int(round(val_fraction * len(rows)))]] = 1
    return DataSplits(*(joined.select(np.flatnonzero(part == k)) for k in range(3)))


@dataclass
class QAMixDataConfig(HeldOutFields):
    """A QA mixture with a held-out split (``conf/data/local_mix.yaml``)."""

    _target_: str = "rl_router.data.mixture.load_qa_splits"
    parts: list[Any] = field(default_factory=list)  # data options (each with _target_) giving QA datasets

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError("data.parts is empty: list QA data options, e.g. {_target_: ...load_qa_file}")
        super().__post_init__()
