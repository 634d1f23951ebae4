"""Train / validation / test: the three parts every data option with a held-out split returns.

Choices (hyperparameters, the default experiment, sweeps) are made on ``validation``; reported
numbers come from ``test``, on which nothing is chosen. The test rows are drawn first and exactly as
before validation existed, so test numbers stay comparable across versions; validation is then
carved out of the remaining rows with its own seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

SPLITS = ("train", "validation", "test")


class DataSplits(NamedTuple):
    """A data option's parts (a tuple, so ``train, validation, test = splits`` unpacks it)."""

    train: Any
    validation: Any
    test: Any


def check_fractions(test_fraction: float, val_fraction: float) -> None:
    """The two held-out shares must leave rows to train on; messages name the fields to change."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"data.test_fraction={test_fraction}: use a value in (0, 1), e.g. 0.3")
    if not 0.0 < val_fraction < 1.0 - test_fraction:
        room = 1.0 - test_fraction
        raise ValueError(f"data.val_fraction={val_fraction}: use a value in (0, 1 - test_fraction={room:g})")


@dataclass
class HeldOutFields:
    """The split fields every data config with held-out rows shares (a base of its schema)."""

    test_fraction: float = 0.3  # share of each source held out for the reported (test) numbers
    val_fraction: float = 0.1  # share of each source held out for choosing hyperparameters
    split_seed: int = 0  # seed of the held-out splits

    def __post_init__(self) -> None:
        check_fractions(self.test_fraction, self.val_fraction)


def part_of(loaded: Any, split: str) -> list[Any]:
    """The parts of a loaded data option that ``split`` names (``train``, ``validation``, ``test`` or
    ``all``); a loader without splits is one part, whatever the split."""
    if isinstance(loaded, DataSplits):
        return list(loaded) if split == "all" else [getattr(loaded, split)]
    return [loaded]
