"""Hard per-episode budgets: a cap no episode can exceed, enforced by masking before the policy samples.

A *soft* budget (:mod:`rewards.budget`) prices overspending into the reward and holds on average. A
*hard* budget (BoPO's setting for agents, DESIGN.md §2.2) is a cap per task: dollars, or a count of
calls to expensive models. It is enforced mechanically, by budget-constrained decoding: before every
decision the env lists which tiers the remaining budget can still pay for (:meth:`EpisodeBudget.mask`,
sent as ``info["action_mask"]``), and the policy samples among those only. A dollar tier is affordable
only when its *worst-case* call fits (the prompt plus a reply of the full token cap,
:func:`rewards.ledger.worst_case_usd`), so even the longest reply cannot overspend. When no tier is
affordable the episode ends (``budget_exhausted``).

The cap of each episode is drawn from a configured range (:meth:`HardBudgetConfig.draw`) and shown to
the policy as the fraction left (:attr:`EpisodeBudget.fraction_left`), so one policy serves many caps.

>>> from rl_router.pool.types import ModelDescriptor
>>> tiers = [ModelDescriptor("small", "fake", price_in=1.0), ModelDescriptor("large", "fake", price_in=8.0)]
>>> budget = EpisodeBudget(kind="expensive_calls", cap=1, expensive=("large",))
>>> budget.mask(tiers, input_tokens=100).tolist()
[True, True]
>>> budget.charge("large", usd=0.0008)
>>> budget.mask(tiers, input_tokens=100).tolist(), budget.fraction_left
([True, False], 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rewards.ledger import worst_case_usd
from rl_router.pool.types import ModelDescriptor

KINDS = ("dollars", "expensive_calls")


@dataclass
class HardBudgetConfig:
    """Per-episode cap (Hydra: ``env.budget``), drawn uniformly from ``[low, high]`` each episode.

    Example: ``env.budget.kind=expensive_calls env.budget.low=2 env.budget.high=8``.
    """

    kind: str = "expensive_calls"  # dollars | expensive_calls
    low: float = 2.0  # smallest cap (dollars, or calls; calls are drawn as integers)
    high: float = 8.0  # largest cap
    expensive: list[str] = field(default_factory=list)  # models that count as expensive; []: all but cheapest

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"env.budget.kind={self.kind!r}: choose one of {KINDS}")
        if not 0 <= self.low <= self.high:
            raise ValueError(
                f"env.budget.low={self.low}, high={self.high}: need 0 <= low <= high (a cap range)"
            )
        if self.kind == "expensive_calls" and np.ceil(self.low) > np.floor(self.high):
            raise ValueError(
                f"env.budget.low={self.low}, high={self.high}: an expensive-call cap is a whole number, "
                f"and none lies in that range"
            )
        if self.kind == "dollars" and self.high <= 0:
            raise ValueError(f"env.budget.high={self.high}: a dollar cap must be positive")

    def expensive_models(self, descriptors: Sequence[ModelDescriptor]) -> tuple[str, ...]:
        """The models whose calls count against an ``expensive_calls`` cap.

        Raises:
            ValueError: ``expensive`` names a model that is not in the pool.
        """
        names = [d.name for d in descriptors]
        unknown = sorted(set(self.expensive) - set(names))
        if unknown:
            raise ValueError(f"env.budget.expensive names {unknown}, not in the pool {names}")
        if self.expensive:
            return tuple(self.expensive)
        cheapest = min(descriptors, key=lambda d: (d.price_in + d.price_out, d.name)).name
        return tuple(n for n in names if n != cheapest)

    def draw(self, rng: np.random.Generator, descriptors: Sequence[ModelDescriptor]) -> EpisodeBudget:
        """A fresh episode budget with a cap drawn from ``rng`` (the env's ``np_random``)."""
        if self.kind == "expensive_calls":
            cap = float(rng.integers(int(np.ceil(self.low)), int(np.floor(self.high)) + 1))
        else:
            cap = float(rng.uniform(self.low, self.high))
        return EpisodeBudget(self.kind, cap, self.expensive_models(descriptors))

    @property
    def max_cap(self) -> float:
        return float(self.high)


@dataclass
class EpisodeBudget:
    """What one episode may still spend, and what it has spent."""

    kind: str  # dollars | expensive_calls
    cap: float
    expensive: tuple[str, ...] = ()
    spent_usd: float = 0.0
    expensive_calls: int = 0

    @property
    def used(self) -> float:
        """Spent so far, in the cap's unit."""
        return self.spent_usd if self.kind == "dollars" else float(self.expensive_calls)

    @property
    def remaining(self) -> float:
        return max(self.cap - self.used, 0.0)

    @property
    def fraction_left(self) -> float:
        """``remaining / cap`` in ``[0, 1]`` (1 for a zero cap that has spent nothing)."""
        return 1.0 if self.cap <= 0 and self.used <= 0 else float(np.clip(self.remaining / self.cap, 0, 1))

    @property
    def over(self) -> bool:
        """Whether the episode spent more than its cap (never, when every call obeyed :meth:`mask`)."""
        return self.used > self.cap + 1e-12

    def mask(
        self, descriptors: Sequence[ModelDescriptor], input_tokens: int, max_tokens: int | None = None
    ) -> np.ndarray:
        """``bool [A]``: which tiers the remaining budget can pay for, in pool order.

        Args:
            descriptors: The tiers, in action order.
            input_tokens: The prompt the next call will send (bounds a dollar tier's cost).
            max_tokens: The reply cap of the next call; None: each model's own ``sampling.max_tokens``.
        """
        if self.kind == "expensive_calls":
            left = self.remaining >= 1.0
            return np.array([left or d.name not in self.expensive for d in descriptors], dtype=bool)
        return np.array(
            [worst_case_usd(d, input_tokens, max_tokens) <= self.remaining + 1e-15 for d in descriptors],
            dtype=bool,
        )

    def charge(self, model: str, usd: float) -> None:
        """Record a call to ``model`` that cost ``usd``."""
        self.spent_usd += float(usd)
        self.expensive_calls += int(model in self.expensive)
