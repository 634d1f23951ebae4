"""BoPO's boundary terms (DESIGN.md §2.2): difficulty taxonomy, boundary-relative cost, reference advantage.

The boundary policies are always-small (pi_S) and always-large (pi_L), rolled out K times per
training task. Their success rates sort tasks into **Easy** (pi_S succeeds), **Hard** (only pi_L
succeeds) and **Intractable** (neither), and their costs ``C_S``, ``C_L`` anchor the cost term.

BoPO's exact formulas are not public. What follows is **our reconstruction**, named as such
wherever it is used:

* boundary-relative cost ``c_hat = clip((C - C_S) / (C_L - C_S), 0, 1)``: 0 at always-small's
  spend, 1 at always-large's;
* reward ``1[success] - lam * c_hat`` (:class:`BoPOReward`);
* a reference-guided advantage: the boundary policies' own rewards on the same task join the
  group baseline (:func:`reference_guided_advantages`), so a cheap failure scores below zero when a
  boundary policy succeeds, even in a group where every sample failed (plain group baselines give
  that group no signal at all). For PPO's per-episode form, :func:`reference_baseline` is that
  baseline for one task, subtracted from the terminal reward.

>>> boundary_cost([0.5, 2.0, 0.0], cost_small=[1.0] * 3, cost_large=[3.0] * 3)
[0.0, 0.5, 0.0]
>>> BoPOReward(lam=0.5)(["a", "b"], success=[True, False], cost_hat=[1.0, 0.0])
[0.5, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

EASY, HARD, INTRACTABLE = "easy", "hard", "intractable"
DIFFICULTIES = (EASY, HARD, INTRACTABLE)


def difficulty(small_success: Sequence[float], large_success: Sequence[float], threshold: float = 0.5) -> str:
    """A task's stratum from its K boundary rollouts (success 0/1 each).

    Easy when always-small's success rate reaches ``threshold``; else Hard when always-large's does;
    else Intractable.

    >>> difficulty([1, 1, 0], [1, 1, 1]), difficulty([0, 0], [1, 0]), difficulty([0], [0])
    ('easy', 'hard', 'intractable')
    """
    if not len(small_success) or not len(large_success):
        raise ValueError("difficulty needs at least one rollout of each boundary policy")
    if float(np.mean(small_success)) >= threshold:
        return EASY
    if float(np.mean(large_success)) >= threshold:
        return HARD
    return INTRACTABLE


def boundary_cost(
    cost: Sequence[float], cost_small: Sequence[float], cost_large: Sequence[float]
) -> list[float]:
    """``c_hat = clip((C - C_S) / (C_L - C_S), 0, 1)`` per row (our reconstruction of BoPO's cost).

    Where the boundary costs coincide (``C_L <= C_S``), any spend above ``C_S`` counts as 1.

    >>> boundary_cost([1.0, 1.5], cost_small=[1.0, 1.0], cost_large=[1.0, 1.0])
    [0.0, 1.0]
    """
    if not len(cost) == len(cost_small) == len(cost_large):
        raise ValueError(f"{len(cost)} costs, {len(cost_small)} C_S, {len(cost_large)} C_L: rows must align")
    out = []
    for c, lo, hi in zip(cost, cost_small, cost_large, strict=True):
        if hi <= lo:
            out.append(0.0 if c <= lo else 1.0)
        else:
            out.append(float(np.clip((c - lo) / (hi - lo), 0.0, 1.0)))
    return out


class BoPOReward:
    """``1[success] - lam * c_hat``: our reconstruction of BoPO's reward (``c_hat``: :func:`boundary_cost`).

    Args:
        lam: Weight of the boundary-relative cost.
        name: Metric key suffix (``train/reward/<name>``).

    Example:
        >>> BoPOReward(lam=0.3)(["x"], success=[True], cost_hat=[0.5])
        [0.85]
    """

    def __init__(self, lam: float = 0.3, name: str = "bopo") -> None:
        if lam < 0:
            raise ValueError(f"lam={lam}: the cost weight must be >= 0")
        self.lam = lam
        self.name = self.__name__ = name

    def __call__(
        self, completions: Sequence[Any], success: Sequence[bool], cost_hat: Sequence[float], **kwargs: Any
    ) -> list[float | None]:
        if not len(completions) == len(success) == len(cost_hat):
            raise ValueError("completions, success and cost_hat must align")
        return [round(float(s) - self.lam * float(c), 12) for s, c in zip(success, cost_hat, strict=True)]


def reference_returns(success_small: float, success_large: float, lam: float) -> tuple[float, float]:
    """The boundary policies' own rewards on a task: pi_S at ``c_hat = 0``, pi_L at ``c_hat = 1``.

    >>> reference_returns(0.0, 1.0, lam=0.4)
    (0.0, 0.6)
    """
    return float(success_small), round(float(success_large) - lam, 12)


def reference_guided_advantages(
    returns: Sequence[float], references: Sequence[float], normalize: bool = False
) -> list[float]:
    """Group advantages whose baseline also averages the boundary policies' returns (reconstruction).

    Args:
        returns: ``[G]`` the group's episode returns (samples of one task).
        references: ``[R]`` the boundary policies' returns on that task (:func:`reference_returns`).
        normalize: Divide by the std over group and references (GRPO-style), when it is non-zero.

    A group of cheap failures gets negative advantages when a reference succeeded (a plain group
    baseline would give all of them 0):

    >>> reference_guided_advantages([0.0, 0.0], references=[0.0, 0.6])
    [-0.15, -0.15]
    """
    pooled = np.asarray(list(returns) + list(references), dtype=np.float64)
    adv = np.asarray(returns, dtype=np.float64) - pooled.mean()
    if normalize and pooled.std() > 0:
        adv = adv / pooled.std()
    return [round(float(a), 12) for a in adv]


def reference_baseline(success_small: float, success_large: float, lam: float) -> float:
    """One task's reference baseline for per-episode (PPO) training: the mean boundary return.

    Subtracted from the terminal reward; on a Hard task (only pi_L succeeds) a cheap failure then
    scores ``-(1 - lam) / 2``, below the succeeding boundary policy.

    >>> reference_baseline(0.0, 1.0, lam=0.4)
    0.3
    """
    return round(float(np.mean(reference_returns(success_small, success_large, lam))), 12)


@dataclass
class BoPOConfig:
    """BoPO's knobs (Hydra: ``env.bopo``); the formulas are our reconstruction (module docstring)."""

    lam: float = 0.3  # weight of the boundary-relative cost: reward 1[success] - lam * c_hat
    reference_baseline: bool = True  # subtract the boundary policies' mean return (reference-guided)
    repeats: int = 1  # K: boundary rollouts per training task (greedy candidates repeat exactly)
    threshold: float = 0.5  # success rate that makes a boundary policy count as succeeding
    sft_per_stratum: int = 16  # warm start: cheapest successful trajectories kept per stratum
    warm_start_epochs: int = 50  # behaviour-cloning epochs on them before PPO (0: no warm start)

    def __post_init__(self) -> None:
        if self.lam < 0:
            raise ValueError(f"env.bopo.lam={self.lam}: use a weight >= 0")
        if self.repeats < 1:
            raise ValueError(f"env.bopo.repeats={self.repeats}: roll each boundary policy out at least once")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"env.bopo.threshold={self.threshold}: use a success rate in (0, 1]")
        if self.sft_per_stratum < 0 or self.warm_start_epochs < 0:
            raise ValueError("env.bopo.sft_per_stratum and warm_start_epochs must be >= 0")
