"""Budgets: maximise the outcome subject to a cap on what the policy spends, by a Lagrange multiplier.

A budget caps one expected *usage* per query: list-price dollars (``cost_per_query``) or the share
of queries sent to one model (``share``). The constrained problem

    max_pi E[outcome]   subject to   E[usage] <= target

is solved on its Lagrangian ``E[outcome] - lam * (E[usage] - target) / target`` with ``lam >= 0``: the
policy maximises the per-step reward ``outcome - lam * usage / target`` (:class:`BudgetPenalty`; the
constant ``+lam`` changes no gradient), and after each rollout ``lam`` takes a projected dual-ascent step
on the rollout's relative overspend (:func:`dual_ascent`). Dividing by the target makes both the
penalty and the step scale-free: ``lam = 1`` means "one unit of outcome is worth spending the whole
budget", whatever currency the budget is in.

The constraint is measured on the policy's *greedy* decisions (what a router deploys: ``argmax``),
not on its samples (:func:`greedy_usage`): a policy whose samples meet a budget can route greedily
far from it (on the default experiment, samples held to a GPT-4 share of 0.5 sent 31% of held-out
queries to GPT-4 greedily). The dual step follows the policy's learning-rate schedule, so ``lam``
settles as the policy does instead of chasing the last rollouts' noise. :class:`LagrangeMultiplier`
holds ``lam`` and the per-action usage means the greedy measure needs, as checkpoint data.

The greedy measure is only as smooth as the policy's per-query ranking: with PPO's default router
settings (rollouts of 32 queries, lr 3e-4, 4 epochs) the ranking stays weak, a rollout's argmax goes
nearly all one way, ``lam`` swings and the budget is missed by 20% or more; rollouts of 128 queries
with lr 1e-3 and 10 epochs (what ``scripts/sweep_cost.py`` trains with) reached GPT-4 shares of 0.222
/ 0.497 / 0.816 for 0.2 / 0.5 / 0.8 and dollar budgets of 35-80% of always-GPT-4 within 6% on held-out
rows; the tightest dollar budget (20%) overspent by 25% (measured on the default experiment, seed 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class BudgetConfig:
    """A cap on what a policy spends (Hydra: ``trainer.budget``); off unless one kind is set.

    Example: ``trainer.budget.cost_per_query=0.0017`` or ``+trainer.budget.share.gpt-4=0.5`` (Hydra adds
    a key to a dict with ``+``). A ``share`` entry left ``None`` is a placeholder, dropped here:
    ``conf/experiment/budget.yaml`` lists the default pool's models so, there,
    ``trainer.budget.share.gpt-4=0.5`` needs no ``+``.
    """

    cost_per_query: float | None = None  # mean list-price $ per query the policy may spend; None: no cap
    share: dict[str, float | None] = field(default_factory=dict)  # {model: x}: at most share x to model
    lambda_lr: float = 0.02  # dual-ascent step on lam per rollout, per unit of relative overspend

    def __post_init__(self) -> None:
        self.share = {model: x for model, x in self.share.items() if x is not None}
        if self.cost_per_query is not None and self.share:
            raise ValueError(
                f"trainer.budget sets both cost_per_query={self.cost_per_query} and "
                f"share={dict(self.share)}: a budget is one kind, keep one"
            )
        if self.cost_per_query is not None and not self.cost_per_query > 0:
            raise ValueError(f"trainer.budget.cost_per_query={self.cost_per_query}: must be positive dollars")
        if len(self.share) > 1:
            raise ValueError(
                f"trainer.budget.share names {sorted(self.share)}: a budget caps one model's share, keep one"
            )
        for model, x in self.share.items():
            if not 0.0 < x < 1.0:
                raise ValueError(f"trainer.budget.share.{model}={x}: a share lies strictly between 0 and 1")
        if not self.lambda_lr > 0:
            raise ValueError(f"trainer.budget.lambda_lr={self.lambda_lr}: must be positive, e.g. 0.02")

    @property
    def enabled(self) -> bool:
        """Whether a budget is set."""
        return self.cost_per_query is not None or bool(self.share)

    @property
    def model(self) -> str | None:
        """The model whose share is capped (None for a dollar budget)."""
        return next(iter(self.share), None)

    @property
    def target(self) -> float:
        """The cap: dollars per query, or the share of queries."""
        if not self.enabled:
            raise ValueError("no budget is set: set trainer.budget.cost_per_query or trainer.budget.share")
        return float(self.cost_per_query if self.cost_per_query is not None else self.share[self.model])


class BudgetPenalty:
    """The Lagrangian's budget term: ``-lam * usage / target`` per row (add it to the outcome).

    Args:
        target: The budget (dollars per query, or a share), positive.
        name: Metric key suffix: logged as ``train/reward/<name>``.

    Example:
        >>> penalty = BudgetPenalty(target=0.002)
        >>> penalty(["", "", ""], usage=[0.004, 0.0, None], multiplier=0.5)
        [-1.0, -0.0, None]
    """

    def __init__(self, target: float, name: str = "budget") -> None:
        if not target > 0:
            raise ValueError(f"target={target}: a budget must be positive")
        self.target = target
        self.name = name
        self.__name__ = name  # TRL names a reward function's metric after `__name__`

    def __call__(
        self, completions: Sequence[Any], usage: Sequence[float | None], multiplier: float, **kwargs: Any
    ) -> list[float | None]:
        if len(usage) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(usage)} usages: rows must align")
        return [None if u is None else -multiplier * float(u) / self.target for u in usage]

    def __repr__(self) -> str:
        return f"BudgetPenalty(target={self.target}, name={self.name!r})"


def dual_ascent(multiplier: float, measured: float, target: float, lr: float) -> float:
    """One projected dual-ascent step: ``max(0, lam + lr * (measured - target) / target)``.

    Overspending raises the multiplier, underspending lowers it, never below 0 (an inequality
    constraint that is slack costs nothing).

    >>> dual_ascent(0.2, measured=0.003, target=0.002, lr=0.1)  # 50% over: +0.05
    0.25
    >>> dual_ascent(0.02, measured=0.0, target=0.002, lr=0.1)  # spends nothing: down, clipped at 0
    0.0
    """
    return max(0.0, multiplier + lr * (measured - target) / target)


def greedy_usage(
    usage: np.ndarray, actions: np.ndarray, greedy: np.ndarray, action_means: np.ndarray
) -> float:
    """Mean usage of the greedy decisions of a rollout whose sampled decisions were observed.

    A step whose sampled action is its greedy one contributes what it used; any other step the
    mean usage of its greedy action (``action_means``; exact for a share budget, where usage is a
    function of the action alone).

    Args:
        usage: ``[T, N]`` what each sampled action used (dollars, or 1 for the capped model).
        actions: ``[T, N]`` the sampled actions.
        greedy: ``[T, N]`` the argmax actions of the same steps.
        action_means: ``[A]`` mean usage of each action.

    >>> greedy_usage(np.array([[0.4, 0.0]]), np.array([[1, 0]]), np.array([[1, 1]]), np.array([0.0, 0.5]))
    0.45
    """
    return float(np.where(actions == greedy, usage, action_means[greedy]).mean())


@dataclass
class LagrangeMultiplier:
    """``lam`` of one budget, updated after each rollout on its greedy usage (:meth:`step`).

    Example (a share budget of 0.25 on action 1; every greedy decision picks it):
        >>> lam = LagrangeMultiplier(target=0.25, lr=0.1, num_actions=2)
        >>> picks = np.ones((2, 2), dtype=int)
        >>> lam.step(usage=picks.astype(float), actions=picks, greedy=picks)["lambda"]  # 0.1 * 0.75 / 0.25
        0.30000000000000004
    """

    target: float  # the budget
    lr: float  # dual-ascent step size (at lr_scale 1)
    num_actions: int  # actions of the policy (the greedy measure keeps a usage mean per action)
    value: float = 0.0  # lam
    usage_sum: list[float] = field(default_factory=list)  # per action: usage summed over sampled steps
    usage_count: list[int] = field(default_factory=list)  # per action: sampled steps

    def __post_init__(self) -> None:
        self.usage_sum = self.usage_sum or [0.0] * self.num_actions
        self.usage_count = self.usage_count or [0] * self.num_actions

    def step(
        self, usage: np.ndarray, actions: np.ndarray, greedy: np.ndarray, lr_scale: float = 1.0
    ) -> dict[str, float]:
        """Update on one rollout (``[T, N]`` arrays, see :func:`greedy_usage`).

        Args:
            usage, actions, greedy: what each sampled action used, the sampled and the argmax actions.
            lr_scale: multiplies ``lr`` for this step (the trainer passes the policy's learning-rate
                schedule, so the dual step anneals with the primal one).

        Returns:
            ``lambda`` (after the step), ``measured`` (the greedy decisions' mean usage, what the
            step was taken on) and ``sampled`` (the samples' mean usage).
        """
        usage, actions = np.asarray(usage, dtype=np.float64), np.asarray(actions)
        sums = np.asarray(self.usage_sum) + np.bincount(actions.ravel(), usage.ravel(), self.num_actions)
        counts = np.asarray(self.usage_count) + np.bincount(actions.ravel(), minlength=self.num_actions)
        self.usage_sum, self.usage_count = sums.tolist(), counts.tolist()
        overall = sums.sum() / max(counts.sum(), 1)  # an action never sampled: the overall mean
        means = np.where(counts > 0, sums / np.maximum(counts, 1), overall)
        measured = greedy_usage(usage, actions, np.asarray(greedy), means)
        self.value = dual_ascent(self.value, measured, self.target, self.lr * lr_scale)
        return {"lambda": self.value, "measured": measured, "sampled": float(usage.mean())}

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to go on exactly: ``lam`` and the per-action usage sums."""
        return {"value": self.value, "usage_sum": list(self.usage_sum), "usage_count": list(self.usage_count)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Go on from :meth:`state_dict`'s data; ValueError for another number of actions."""
        if len(state["usage_sum"]) != self.num_actions:
            raise ValueError(
                f"budget state for {len(state['usage_sum'])} actions, this policy has {self.num_actions}"
            )
        self.value = float(state["value"])
        self.usage_sum = [float(x) for x in state["usage_sum"]]
        self.usage_count = [int(x) for x in state["usage_count"]]
