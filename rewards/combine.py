"""Combining reward terms: Router-R1's gated reward, BudgetMem's scale-matched sum, a weighted sum.

Combiners take the already computed terms (format flag, correctness, normalised cost) as kwargs, one
value per row, so each term is still computed, and logged, on its own (``train/reward/<term>``).
Changing the mix means changing weights or ``alpha``/``lam``, never editing a term's body.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rewards.cost import ScaleMatcher

RewardFunc = Callable[..., list[float | None]]  # TRL's `(completions, **kwargs) -> list[float | None]`

FORMAT_PENALTY = -1.0  # Router-R1: any format violation scores -1, whatever the answer


def _column(values: Sequence[Any] | None, n: int, name: str) -> Sequence[Any]:
    if values is None:
        raise ValueError(f"missing kwarg `{name}`: pass one value per completion")
    if len(values) != n:
        raise ValueError(f"{n} completions but {len(values)} values of `{name}`: rows must align")
    return values


class RouterR1Reward:
    """Router-R1's reward (DESIGN §2.1, from their code).

    ``r = -1`` on any format violation (overrides everything), else ``correct * ((1 - alpha) + alpha * C)``
    with ``C`` the percentile-normalised cost term in ``[0, 1]``. For a 0/1 correctness this is
    exactly their truth table (correct -> ``(1 - alpha) + alpha * C``, wrong -> ``0``); a graded
    correctness such as F1 scales the same bonus linearly. ``alpha = 0`` ignores cost, and
    ``cost_term`` may then be left out.

    Args:
        alpha: Cost weight in ``[0, 1]`` (Router-R1 swept 0 and 0.6 ... 0.9).
        name: Metric key suffix: logged as ``train/reward/<name>``.

    Example:
        >>> reward = RouterR1Reward(alpha=0.6)
        >>> reward(["a", "b", "c"], format_ok=[True, True, False], correct=[1.0, 0.0, 1.0],
        ...        cost_term=[0.5, 1.0, 1.0])
        [0.7, 0.0, -1.0]
    """

    def __init__(self, alpha: float = 0.6, name: str = "router_r1") -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha={alpha}: Router-R1's cost weight must lie in [0, 1]")
        self.alpha = alpha
        self.name = name
        self.__name__ = name  # TRL names a reward function's metric after `__name__`

    def __call__(
        self,
        completions: Sequence[Any],
        format_ok: Sequence[bool],
        correct: Sequence[float | None],
        cost_term: Sequence[float | None] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        n = len(completions)
        format_ok = _column(format_ok, n, "format_ok")
        correct = _column(correct, n, "correct")
        # With alpha = 0 the cost term cannot change the reward, so it need not be computed.
        costs = [0.0] * n if self.alpha == 0.0 and cost_term is None else _column(cost_term, n, "cost_term")
        out: list[float | None] = []
        for ok, c, cost in zip(format_ok, correct, costs, strict=True):
            if not ok:
                out.append(FORMAT_PENALTY)
            elif c is None or (cost is None and self.alpha > 0.0):
                out.append(None)
            else:
                bonus = (1.0 - self.alpha) + self.alpha * float(cost or 0.0)
                out.append(float(c) * bonus)
        return out

    def __repr__(self) -> str:
        return f"RouterR1Reward(alpha={self.alpha}, name={self.name!r})"


class BudgetMemReward:
    """BudgetMem's reward (DESIGN §2.3): ``r = r_task + lam * alpha * r_cost``.

    ``r_task`` is F1 or a judge score, ``r_cost`` the percentile-normalised sqrt-cost (1 = cheap) and
    ``alpha = std(r_task) / std(r_cost)`` from a :class:`ScaleMatcher` (call :meth:`update` after
    scoring each batch). A fixed ``alpha`` turns matching off, for the "no alpha" ablation.

    Args:
        lam: Cost-quality trade-off (BudgetMem swept 0, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9).
        alpha: Fixed scale; ``None`` matches it with ``scale``.
        scale: The running matcher (a fresh ``ScaleMatcher()`` when omitted).
        name: Metric key suffix: logged as ``train/reward/<name>``.

    Example:
        >>> reward = BudgetMemReward(lam=0.5, alpha=2.0)
        >>> reward(["a", "b"], task_reward=[0.5, 1.0], cost_term=[1.0, 0.0])
        [1.5, 1.0]
    """

    def __init__(
        self,
        lam: float = 0.1,
        alpha: float | None = None,
        scale: ScaleMatcher | None = None,
        name: str = "budgetmem",
    ) -> None:
        if lam < 0:
            raise ValueError(f"lam={lam}: the cost weight must be >= 0 (0 = quality only)")
        if alpha is not None and alpha < 0:
            raise ValueError(f"alpha={alpha}: a scale must be >= 0")
        self.lam = lam
        self.fixed_alpha = alpha
        self.scale = scale if scale is not None else ScaleMatcher()
        self.name = name
        self.__name__ = name  # TRL names a reward function's metric after `__name__`

    def alpha(
        self, task_reward: Sequence[float | None] = (), cost_term: Sequence[float | None] = ()
    ) -> float:
        """The scale used for a batch with these terms (the fixed one, or the matched one)."""
        if self.fixed_alpha is not None:
            return self.fixed_alpha
        return self.scale.alpha(task_reward, cost_term)

    def update(self, task_reward: Sequence[float | None], cost_term: Sequence[float | None]) -> None:
        """Feed a scored batch to the scale matcher."""
        self.scale.update(task_reward, cost_term)

    def __call__(
        self,
        completions: Sequence[Any],
        task_reward: Sequence[float | None],
        cost_term: Sequence[float | None],
        **kwargs: Any,
    ) -> list[float | None]:
        n = len(completions)
        task_reward = _column(task_reward, n, "task_reward")
        cost_term = _column(cost_term, n, "cost_term")
        weight = self.lam * self.alpha(task_reward, cost_term)
        return [
            None if t is None or c is None else float(t) + weight * float(c)
            for t, c in zip(task_reward, cost_term, strict=True)
        ]

    def __repr__(self) -> str:
        return f"BudgetMemReward(lam={self.lam}, alpha={self.fixed_alpha}, name={self.name!r})"


@dataclass
class RewardBreakdown:
    """A batch's total reward and each term's raw (unweighted) values, aligned with the completions."""

    total: list[float | None]
    terms: dict[str, list[float | None]] = field(default_factory=dict)
    name: str = "total"

    def metrics(self, split: str = "train") -> dict[str, float]:
        """Batch means keyed ``<split>/reward/<term>`` (rows where a term is ``None`` are skipped)."""
        out = {}
        for key, values in [*self.terms.items(), (self.name, self.total)]:
            known = [v for v in values if v is not None]
            out[f"{split}/reward/{key}"] = sum(known) / len(known) if known else math.nan
        return out


class WeightedSum:
    """``total = sum_k w_k * term_k`` over named reward functions, keeping every term for logging.

    A term that returns ``None`` for a row is left out of that row's sum (TRL's rule); a row where
    every term is ``None`` totals ``None``. Under TRL's ``GRPOTrainer`` prefer passing the terms as
    ``reward_funcs`` with ``reward_weights`` (TRL then logs each one); this class serves envs and the
    PPO trainer, which call rewards themselves.

    Args:
        terms: Metric name -> reward function (each receives the completions and all kwargs).
        weights: Metric name -> weight; must name exactly the terms (``None``: all 1.0).
        name: Key of the total: logged as ``train/reward/<name>``.

    Example:
        >>> from rewards.cost import dollar_cost
        >>> from rewards.outcome import exact_match
        >>> total = WeightedSum({"em": exact_match, "usd": dollar_cost}, weights={"em": 1.0, "usd": 10.0})
        >>> out = total.score(["Paris", "Lyon"], golden_answers=[["paris"], ["paris"]], cost_usd=[0.01, 0.0])
        >>> out.total, out.terms["em"]
        ([0.9, 0.0], [1.0, 0.0])
        >>> out.metrics()["train/reward/usd"]
        -0.005
    """

    def __init__(
        self, terms: Mapping[str, RewardFunc], weights: Mapping[str, float] | None = None, name: str = "total"
    ):
        if not terms:
            raise ValueError("WeightedSum needs at least one term")
        weights = dict.fromkeys(terms, 1.0) if weights is None else dict(weights)
        if set(weights) != set(terms):
            raise ValueError(
                f"weights name {sorted(weights)} but terms are {sorted(terms)}: give one weight per term"
            )
        self.terms = dict(terms)
        self.weights = weights
        self.name = name
        self.__name__ = name  # TRL names a reward function's metric after `__name__`

    def score(self, completions: Sequence[Any], **kwargs: Any) -> RewardBreakdown:
        """Evaluate every term once and combine them."""
        terms = {key: list(fn(completions, **kwargs)) for key, fn in self.terms.items()}
        for key, values in terms.items():
            if len(values) != len(completions):
                raise ValueError(
                    f"term {key!r} returned {len(values)} values for {len(completions)} completions"
                )
        total: list[float | None] = []
        for row in range(len(completions)):
            parts = [
                self.weights[key] * values[row] for key, values in terms.items() if values[row] is not None
            ]
            total.append(sum(parts) if parts else None)
        return RewardBreakdown(total=total, terms=terms, name=self.name)

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        return self.score(completions, **kwargs).total

    def __repr__(self) -> str:
        return f"WeightedSum(weights={self.weights}, name={self.name!r})"
