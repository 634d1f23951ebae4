"""Reward terms for router training: pure, batch-shaped, TRL-compatible.

Every reward has TRL's signature ``(completions, **kwargs) -> list[float | None]``; parametrised ones
are small picklable callable classes whose ``__name__`` (and ``name``) is the metric key suffix
(``train/reward/<name>``). Terms are combined by weights (:mod:`rewards.combine`), never by editing
bodies. This is the project's own package: PyPI's ``rewards`` is unrelated.
"""

from rewards.budget import BudgetConfig, BudgetPenalty, LagrangeMultiplier, dual_ascent, greedy_usage
from rewards.combine import BudgetMemReward, RewardBreakdown, RewardFunc, RouterR1Reward, WeightedSum
from rewards.cost import PercentileCostNormalizer, ScaleMatcher, dollar_cost
from rewards.format import (
    FormatKnownModels,
    FormatMaxRoutes,
    RouterR1Format,
    format_answer_last,
    format_information_follows_search,
    format_search_query,
    format_tags_balanced,
    format_think_content,
    format_think_first,
)
from rewards.hard_budget import EpisodeBudget, HardBudgetConfig
from rewards.ledger import CostLedger, UnpricedModelError, check_priced, worst_case_usd
from rewards.outcome import (
    Completion,
    VerifierOutcome,
    completion_text,
    exact_match,
    f1,
    normalize_answer,
    recorded_correctness,
)

__all__ = [
    "worst_case_usd",
    "check_priced",
    "UnpricedModelError",
    "HardBudgetConfig",
    "EpisodeBudget",
    "CostLedger",
    "BudgetConfig",
    "BudgetMemReward",
    "BudgetPenalty",
    "Completion",
    "FormatKnownModels",
    "FormatMaxRoutes",
    "LagrangeMultiplier",
    "PercentileCostNormalizer",
    "RewardBreakdown",
    "RewardFunc",
    "RouterR1Format",
    "RouterR1Reward",
    "ScaleMatcher",
    "VerifierOutcome",
    "WeightedSum",
    "completion_text",
    "dollar_cost",
    "dual_ascent",
    "exact_match",
    "f1",
    "format_answer_last",
    "format_information_follows_search",
    "format_search_query",
    "format_tags_balanced",
    "format_think_content",
    "format_think_first",
    "greedy_usage",
    "normalize_answer",
    "recorded_correctness",
]
