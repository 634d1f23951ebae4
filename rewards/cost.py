"""Cost rewards, in "higher is better" form like every reward term.

* :func:`dollar_cost` is the raw signal: ``-cost_usd`` (a cheaper episode scores higher).
* :class:`PercentileCostNormalizer` is Router-R1's / BudgetMem's normalised cost term
  ``C = 1 - clip((sqrt(cost) - Q5) / (Q95 - Q5), 0, 1)`` in ``[0, 1]`` (1 = cheap), with Q5/Q95 the
  percentiles of ``sqrt(cost)`` over a rolling window of recent episodes.
* :class:`ScaleMatcher` is BudgetMem's ``alpha = std(r_task) / std(r_cost)`` over a rolling window,
  so the task and cost terms share a scale before ``lambda`` weighs them.

The stateful pieces are plain picklable objects (a ``deque`` of floats): they survive Ray and
checkpoints (``state_dict`` / ``load_state_dict``). Reading is separate from writing: ``__call__``
scores a batch against the history, ``update`` appends the batch once the caller has scored it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

BUDGETMEM_WINDOW = 2000  # episodes; BudgetMem's window for both cost percentiles and alpha
WARM_UP = 100  # episodes of history below which the scored batch joins the reference (default)


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

    Warm-up: while the window holds fewer than ``min_history`` episodes, the batch being scored is
    pooled with the window to estimate Q5/Q95, so the first GRPO batch is normalised against itself
    instead of against nothing. A single-episode reference gives Q5 == Q95.

    Degenerate spread (Q95 == Q5, e.g. every recent episode cost the same): the formula's limit is a
    step, used as is: ``C = 1`` for ``sqrt(cost) <= Q5`` (no costlier than usual), ``C = 0`` above.

    A rolling window is relative to the policy's own recent spending: once a policy settles on one
    candidate, that candidate's cheaper calls score near ``C = 1`` and switching stops paying.
    :meth:`from_reference` freezes the percentiles on given costs instead (e.g. every candidate's
    recorded cost on the training rows), so ``C`` measures price against the whole pool.

    Args:
        window: Episodes kept in the rolling window (BudgetMem: 2000).
        low: Lower percentile (Router-R1: 5).
        high: Upper percentile (Router-R1: 95).
        min_history: Window size from which the history alone sets the percentiles
            (default ``min(100, window)``).
        name: Metric key suffix: logged as ``train/reward/<name>``.

    Example:
        >>> norm = PercentileCostNormalizer(window=100, min_history=1)
        >>> norm.update([0.0, 1.0, 4.0, 9.0, 16.0])  # sqrt costs 0..4: Q5 = 0.2, Q95 = 3.8
        >>> [round(c, 4) for c in norm(["a", "b", "c"], cost_usd=[0.0, 4.0, 25.0])]
        [1.0, 0.5, 0.0]
    """

    def __init__(
        self,
        window: int = BUDGETMEM_WINDOW,
        low: float = 5.0,
        high: float = 95.0,
        min_history: int | None = None,
        name: str = "cost",
    ) -> None:
        if window < 1:
            raise ValueError(f"window={window}: keep at least one episode")
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(f"percentiles low={low}, high={high}: need 0 <= low < high <= 100")
        min_history = min(WARM_UP, window) if min_history is None else min_history
        if not 0 <= min_history <= window:
            raise ValueError(f"min_history={min_history}: must lie in [0, window={window}]")
        self.window = window
        self.low = low
        self.high = high
        self.min_history = min_history
        self.name = name
        self.__name__ = name  # TRL names a reward function's metric after `__name__`
        self._sqrt_costs: deque[float] = deque(maxlen=window)
        self.frozen = False  # True: update() keeps the reference as it is

    @classmethod
    def from_reference(
        cls, cost_usd: Sequence[float], low: float = 5.0, high: float = 95.0, name: str = "cost"
    ) -> PercentileCostNormalizer:
        """A normaliser whose percentiles are fixed on ``cost_usd``; :meth:`update` leaves them be.

        >>> norm = PercentileCostNormalizer.from_reference([0.0, 1.0, 4.0, 9.0, 16.0])
        >>> norm.update([100.0]); [round(c, 4) for c in norm(["a", "b"], cost_usd=[4.0, 25.0])]
        [0.5, 0.0]
        """
        if len(cost_usd) == 0:
            raise ValueError("from_reference needs at least one reference cost")
        norm = cls(window=len(cost_usd), low=low, high=high, min_history=0, name=name)
        norm._sqrt_costs.extend(_sqrt_costs(cost_usd).tolist())
        norm.frozen = True
        return norm

    @property
    def num_episodes(self) -> int:
        """Episodes in the window. (No ``__len__``: an empty normaliser must stay truthy.)"""
        return len(self._sqrt_costs)

    def update(self, cost_usd: Sequence[float | None]) -> None:
        """Append a batch of episode costs (dollars; ``None`` skipped); the oldest fall out."""
        if not self.frozen:
            self._sqrt_costs.extend(_sqrt_costs(cost_usd).tolist())

    def quantiles(self, cost_usd: Sequence[float | None] = ()) -> tuple[float, float]:
        """``(Q_low, Q_high)`` of sqrt-cost that a batch with these costs is scored against."""
        reference = np.asarray(self._sqrt_costs, dtype=np.float64)
        if len(reference) < self.min_history:
            reference = np.concatenate([reference, _sqrt_costs(cost_usd)])
        if len(reference) == 0:
            raise ValueError("no cost history and no costs in the batch: nothing to take percentiles of")
        q_low, q_high = np.percentile(reference, [self.low, self.high])
        return float(q_low), float(q_high)

    def __call__(
        self, completions: Sequence[Any], cost_usd: Sequence[float | None], **kwargs: Any
    ) -> list[float | None]:
        if len(cost_usd) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(cost_usd)} costs: rows must align")
        if all(c is None for c in cost_usd):
            return [None] * len(cost_usd)
        q_low, q_high = self.quantiles(cost_usd)
        out: list[float | None] = []
        for cost in cost_usd:
            if cost is None:
                out.append(None)
                continue
            s = float(_sqrt_costs([cost])[0])
            if q_high > q_low:
                out.append(1.0 - min(max((s - q_low) / (q_high - q_low), 0.0), 1.0))
            else:
                out.append(1.0 if s <= q_low else 0.0)
        return out

    def state_dict(self) -> dict[str, Any]:
        """The window contents, for checkpoints (``resume`` must reproduce the same rewards)."""
        return {"sqrt_costs": list(self._sqrt_costs), "frozen": self.frozen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._sqrt_costs = deque(state["sqrt_costs"], maxlen=self.window)
        self.frozen = bool(state.get("frozen", False))

    def __repr__(self) -> str:
        return (
            f"PercentileCostNormalizer(window={self.window}, low={self.low}, high={self.high}, "
            f"min_history={self.min_history}, name={self.name!r}, episodes={self.num_episodes}, "
            f"frozen={self.frozen})"
        )


class ScaleMatcher:
    """BudgetMem's ``alpha = std(r_task) / std(r_cost)`` over a rolling window of episodes.

    Without it the cost term's spread dwarfs the task term's and the policy collapses to all-Low at
    ``lambda >= 0.1`` (BudgetMem's ablation). Standard deviations are population ones (``ddof=0``).
    Warm-up works as in :class:`PercentileCostNormalizer`: below ``min_history`` pairs, the batch
    passed to :meth:`alpha` is pooled with the window. Where the cost term has no spread
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
