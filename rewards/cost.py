"""Cost rewards, in "higher is better" form like every reward term.

* :func:`dollar_cost` is the raw signal: ``-cost_usd`` (a cheaper episode scores higher).
* :class:`PercentileCostNormalizer` is Router-R1's / BudgetMem's normalised cost term
  ``C = 1 - clip((sqrt(cost) - Q5) / (Q95 - Q5), 0, 1)`` in ``[0, 1]`` (1 = cheap), with Q5/Q95 the
  percentiles of ``sqrt(cost)`` over a rolling window of recent episodes, the scored ones included.
* :class:`ScaleMatcher` is BudgetMem's ``alpha = std(r_task) / std(r_cost)`` over a rolling window,
  so the task and cost terms share a scale before ``lambda`` weighs them.

The stateful pieces are plain picklable objects (a ``deque`` of floats): they survive Ray and
checkpoints (``state_dict`` / ``load_state_dict``). The normaliser scores a batch in one call that
first adds it to the window (:meth:`PercentileCostNormalizer.score_batch`), so no caller can score
and add in the wrong order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

BUDGETMEM_WINDOW = 2000  # episodes; BudgetMem's window for both cost percentiles and alpha
WARM_UP = 100  # ScaleMatcher: pairs of history below which the batch joins the reference (default)


def dollar_cost(
    completions: Sequence[Any], cost_usd: Sequence[float | None], **kwargs: Any
) -> list[float | None]:
    """Negative list-price dollars of each episode (``None`` where the cost is unknown).

    >>> dollar_cost(["a", "b"], cost_usd=[0.002, 0.0])
    [-0.002, -0.0]
    """
    if len(cost_usd) != len(completions):
        raise ValueError(f"{len(completions)} completions but {len(cost_usd)} costs: rows must align")
    return [None if c is None else -float(c) for c in cost_usd]


def _sqrt_costs(cost_usd: Sequence[float | None]) -> np.ndarray:
    known = np.asarray([c for c in cost_usd if c is not None], dtype=np.float64)
    if np.any(known < 0) or not np.all(np.isfinite(known)):
        raise ValueError(f"costs must be finite and non-negative dollars, got {known.tolist()}")
    return np.sqrt(known)


class PercentileCostNormalizer:
    """Router-R1 / BudgetMem cost term ``C = 1 - clip((sqrt(cost) - Q5) / (Q95 - Q5), 0, 1)``.

    :meth:`score_batch` (and ``__call__``, TRL's form of it) first adds the batch to the rolling
    window, then takes Q5/Q95 of the window and scores each episode, as Router-R1's reward does:
    the episodes being scored are part of the reference they are scored against. Callers hand it
    whatever they score at once: an env one finished episode, the GRPO bridge a whole generation
    batch (so the samples of a group share one set of percentiles). (Router-R1's code appends one
    sample at a time, so a batch's later samples see its earlier ones; scoring the batch together
    is the order-free version of that.) The first call on an empty window therefore normalises the
    batch against itself, and a first call with one episode scores it ``C = 0.5``.

    Zero spread (``Q95 == Q5``: one episode, or every episode in the window cost the same) leaves
    the cost uninformative: every episode scores ``C = 0.5``, Router-R1's value.

    A rolling window is relative to the policy's own recent spending: once a policy settles on one
    candidate, that candidate's cheaper calls score near ``C = 1`` and switching stops paying.
    :meth:`from_reference` freezes the percentiles on given costs instead (e.g. every candidate's
    recorded cost on the training rows), so ``C`` measures price against the whole pool; a frozen
    normaliser scores against its reference and never adds to it.

    Args:
        window: Episodes kept in the rolling window (BudgetMem: 2000).
        low: Lower percentile (Router-R1: 5).
        high: Upper percentile (Router-R1: 95).
        name: Metric key suffix: logged as ``train/reward/<name>``.

    Example:
        >>> norm = PercentileCostNormalizer(window=100)
        >>> norm.update([0.0, 1.0, 9.0, 16.0])  # with the batch's 4.0: sqrt costs 0..4, Q5 = 0.2, Q95 = 3.8
        >>> [round(c, 4) for c in norm.score_batch([4.0])]
        [0.5]
        >>> norm.num_episodes
        5
    """

    def __init__(
        self,
        window: int = BUDGETMEM_WINDOW,
        low: float = 5.0,
        high: float = 95.0,
        name: str = "cost",
    ) -> None:
        if window < 1:
            raise ValueError(f"window={window}: keep at least one episode")
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(f"percentiles low={low}, high={high}: need 0 <= low < high <= 100")
        self.window = window
        self.low = low
        self.high = high
        self.name = name
        self.__name__ = name  # TRL names a reward function's metric after `__name__`
        self._sqrt_costs: deque[float] = deque(maxlen=window)
        self.frozen = False  # True: the window is a fixed reference that nothing adds to

    @classmethod
    def from_reference(
        cls, cost_usd: Sequence[float], low: float = 5.0, high: float = 95.0, name: str = "cost"
    ) -> PercentileCostNormalizer:
        """A normaliser whose percentiles are fixed on ``cost_usd``; scoring never adds to them.

        >>> norm = PercentileCostNormalizer.from_reference([0.0, 1.0, 4.0, 9.0, 16.0])
        >>> [round(c, 4) for c in norm.score_batch([4.0, 25.0])], norm.num_episodes
        ([0.5, 0.0], 5)
        """
        if len(cost_usd) == 0:
            raise ValueError("from_reference needs at least one reference cost")
        norm = cls(window=len(cost_usd), low=low, high=high, name=name)
        norm._sqrt_costs.extend(_sqrt_costs(cost_usd).tolist())
        norm.frozen = True
        return norm

    @property
    def num_episodes(self) -> int:
        """Episodes in the window. (No ``__len__``: an empty normaliser must stay truthy.)"""
        return len(self._sqrt_costs)

    def update(self, cost_usd: Sequence[float | None]) -> None:
        """Add episode costs (dollars; ``None`` skipped) without scoring them, e.g. to warm a window.

        The oldest fall out; a frozen normaliser keeps its reference as it is.
        """
        if not self.frozen:
            self._sqrt_costs.extend(_sqrt_costs(cost_usd).tolist())

    def quantiles(self) -> tuple[float, float]:
        """``(Q_low, Q_high)`` of sqrt-cost over the window as it is now."""
        if not self._sqrt_costs:
            raise ValueError("no cost history: nothing to take percentiles of")
        q_low, q_high = np.percentile(np.asarray(self._sqrt_costs, dtype=np.float64), [self.low, self.high])
        return float(q_low), float(q_high)

    def score_batch(self, cost_usd: Sequence[float | None]) -> list[float | None]:
        """Add the batch's costs to the window, then score each against the window's percentiles.

        Args:
            cost_usd: One cost per episode in dollars; ``None`` (unknown) is neither added nor scored.

        Returns:
            ``C`` in ``[0, 1]`` per episode (``None`` where the cost is unknown).
        """
        known = iter(_sqrt_costs(cost_usd).tolist())  # checks every known cost before any is added
        sqrt_costs = [None if c is None else next(known) for c in cost_usd]
        if all(s is None for s in sqrt_costs):
            return [None] * len(sqrt_costs)
        self.update(cost_usd)
        q_low, q_high = self.quantiles()
        if q_high <= q_low:
            return [None if s is None else 0.5 for s in sqrt_costs]
        return [
            None if s is None else 1.0 - min(max((s - q_low) / (q_high - q_low), 0.0), 1.0)
            for s in sqrt_costs
        ]

    def __call__(
        self, completions: Sequence[Any], cost_usd: Sequence[float | None], **kwargs: Any
    ) -> list[float | None]:
        """:meth:`score_batch` under TRL's reward signature (it adds the batch to the window too)."""
        if len(cost_usd) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(cost_usd)} costs: rows must align")
        return self.score_batch(cost_usd)

    def state_dict(self) -> dict[str, Any]:
        """The window contents, for checkpoints (``resume`` must reproduce the same rewards)."""
        return {"sqrt_costs": list(self._sqrt_costs), "frozen": self.frozen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._sqrt_costs = deque(state["sqrt_costs"], maxlen=self.window)
        self.frozen = bool(state.get("frozen", False))

    def __repr__(self) -> str:
        return (
            f"PercentileCostNormalizer(window={self.window}, low={self.low}, high={self.high}, "
            f"name={self.name!r}, episodes={self.num_episodes}, frozen={self.frozen})"
        )


class ScaleMatcher:
    """BudgetMem's ``alpha = std(r_task) / std(r_cost)`` over a rolling window of episodes.

    Without it the cost term's spread dwarfs the task term's and the policy collapses to all-Low at
    ``lambda >= 0.1`` (BudgetMem's ablation). Standard deviations are population ones (``ddof=0``).
    Warm-up: below ``min_history`` pairs, the batch passed to :meth:`alpha` is pooled with the
    window. Where the cost term has no spread
    (``std(r_cost) <= eps``, including an empty reference) the ratio is undefined and ``default`` is
    returned; the cost term is constant then, so its scale does not matter.

    Args:
        window: Episodes kept (BudgetMem: 2000).
        min_history: Window size from which the history alone sets alpha (default ``min(100, window)``).
        default: Alpha when it is undefined.
        eps: Smallest cost-term std treated as spread.

    Example:
        >>> matcher = ScaleMatcher(min_history=1)
        >>> matcher.update(task_rewards=[0.0, 1.0, 0.0, 1.0], cost_rewards=[0.2, 0.4, 0.2, 0.4])
        >>> round(matcher.alpha(), 6)  # std 0.5 / std 0.1
        5.0
    """

    def __init__(
        self,
        window: int = BUDGETMEM_WINDOW,
        min_history: int | None = None,
        default: float = 1.0,
        eps: float = 1e-8,
    ) -> None:
        if window < 2:
            raise ValueError(f"window={window}: a std needs at least 2 episodes")
        min_history = min(WARM_UP, window) if min_history is None else min_history
        if not 0 <= min_history <= window:
            raise ValueError(f"min_history={min_history}: must lie in [0, window={window}]")
        self.window = window
        self.min_history = min_history
        self.default = default
        self.eps = eps
        self._task: deque[float] = deque(maxlen=window)
        self._cost: deque[float] = deque(maxlen=window)

    @property
    def num_episodes(self) -> int:
        """Reward pairs in the window."""
        return len(self._task)

    @staticmethod
    def _pairs(task_rewards: Sequence[float | None], cost_rewards: Sequence[float | None]) -> np.ndarray:
        if len(task_rewards) != len(cost_rewards):
            raise ValueError(f"{len(task_rewards)} task rewards but {len(cost_rewards)} cost rewards")
        # A row with either term missing says nothing about their relative scale.
        rows = [
            (t, c) for t, c in zip(task_rewards, cost_rewards, strict=True) if t is not None and c is not None
        ]
        return np.asarray(rows, dtype=np.float64).reshape(-1, 2)

    def update(self, task_rewards: Sequence[float | None], cost_rewards: Sequence[float | None]) -> None:
        """Append a batch of (task, cost) reward pairs; rows with a ``None`` are skipped."""
        pairs = self._pairs(task_rewards, cost_rewards)
        self._task.extend(pairs[:, 0].tolist())
        self._cost.extend(pairs[:, 1].tolist())

    def alpha(
        self, task_rewards: Sequence[float | None] = (), cost_rewards: Sequence[float | None] = ()
    ) -> float:
        """Current ``std(r_task) / std(r_cost)``, pooling the given batch during warm-up."""
        reference = np.column_stack([np.asarray(self._task), np.asarray(self._cost)]).reshape(-1, 2)
        if len(reference) < self.min_history:
            reference = np.concatenate([reference, self._pairs(task_rewards, cost_rewards)])
        if len(reference) < 2:
            return self.default
        std_task, std_cost = reference.std(axis=0)
        return float(std_task / std_cost) if std_cost > self.eps else self.default

    def state_dict(self) -> dict[str, Any]:
        """The window contents, for checkpoints."""
        return {"task": list(self._task), "cost": list(self._cost)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._task = deque(state["task"], maxlen=self.window)
        self._cost = deque(state["cost"], maxlen=self.window)

    def __repr__(self) -> str:
        return (
            f"ScaleMatcher(window={self.window}, min_history={self.min_history}, "
            f"episodes={self.num_episodes})"
        )
