"""The cost ledger: every candidate call charged at its model's list price, by model and by tag.

Envs that make many calls per episode (``agent_steps``: one per agent step; ``memory_tiers``: one
per memory module) charge each call here, so an episode's dollars, its per-model calls and tokens and
the share spent in each module are one object's counts rather than sums scattered over an env.

Prices come from the pool's :class:`~rl_router.pool.types.ModelDescriptor` (dollars per 1M input and
output tokens). A model with no price at all is a configuration error when the ledger is built
(:func:`check_priced`): a ledger that silently charged $0 for it (as BudgetMem's code does for an
unknown model name) would make that model look free to every cost reward and budget.

A cached answer is charged like a fresh one: the cache saves compute, not the list price a deployed
router would pay (``cache_hit`` is recorded so compute saved can still be counted).

>>> from rl_router.pool.types import ModelDescriptor
>>> ledger = CostLedger([ModelDescriptor("s", "fake", price_in=1.0, price_out=2.0)])
>>> ledger.charge("s", input_tokens=1000, output_tokens=500, tag="filter")
0.002
>>> ledger.total_usd, ledger.by_tag()["filter"]["calls"]
(0.002, 1)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rl_router.pool.types import ModelDescriptor, Result


class UnpricedModelError(ValueError):
    """A candidate has neither an input nor an output price."""


def check_priced(descriptors: Iterable[ModelDescriptor], where: str = "pool") -> None:
    """Fail when any candidate would be charged $0 per token.

    Raises:
        UnpricedModelError: names every unpriced model and the config keys to set.
    """
    unpriced = [d.name for d in descriptors if d.price_in <= 0 and d.price_out <= 0]
    if unpriced:
        raise UnpricedModelError(
            f"{where}: model(s) {unpriced} have no price (price_in and price_out are both 0); set "
            f"pool.models[].price_in / price_out in dollars per 1M tokens (a notional price in proportion "
            f"to size is fine for local models), or every cost and budget would treat them as free"
        )


def worst_case_usd(descriptor: ModelDescriptor, input_tokens: int, max_tokens: int | None = None) -> float:
    """The most one call can cost: the prompt plus a reply of the full new-token cap.

    Hard budgets mask a tier by this bound, so no call can overspend what was left.

    >>> worst_case_usd(ModelDescriptor("m", "fake", price_in=1.0, price_out=3.0), 1000, 100)
    0.0013
    """
    cap = descriptor.sampling.max_tokens if max_tokens is None else max_tokens
    return descriptor.cost_usd(int(input_tokens), int(cap))


@dataclass(frozen=True)
class Charge:
    """One charged call."""

    model: str
    input_tokens: int
    output_tokens: int
    usd: float
    tag: str = ""  # what the call was for (a memory module, "step"), for per-tag totals
    cache_hit: bool = False
    error: bool = False  # a failed call is charged for the tokens it reported (usually 0)


class CostLedger:
    """Charges calls at list price and keeps per-model and per-tag totals.

    Args:
        descriptors: The pool's candidates (their prices).
        require_prices: Check at construction that every candidate is priced (:func:`check_priced`).
    """

    def __init__(self, descriptors: Sequence[ModelDescriptor], require_prices: bool = True) -> None:
        self.descriptors = {d.name: d for d in descriptors}
        if require_prices:
            check_priced(descriptors)
        self.entries: list[Charge] = []

    def price(self, model: str) -> ModelDescriptor:
        """The descriptor of ``model``. Raises KeyError naming the known models."""
        try:
            return self.descriptors[model]
        except KeyError:
            raise KeyError(
                f"model {model!r} is not in the ledger's pool {sorted(self.descriptors)}"
            ) from None

    def charge(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        tag: str = "",
        cache_hit: bool = False,
        error: bool = False,
    ) -> float:
        """Record one call and return its list-price dollars."""
        usd = self.price(model).cost_usd(int(input_tokens), int(output_tokens))
        self.entries.append(Charge(model, int(input_tokens), int(output_tokens), usd, tag, cache_hit, error))
        return usd

    def charge_result(self, model: str, result: Result, tag: str = "") -> float:
        """Record the call that produced ``result`` (tokens as the backend counted them)."""
        return self.charge(
            model, result.input_tokens, result.output_tokens, tag, result.cache_hit, not result.ok
        )

    @property
    def total_usd(self) -> float:
        return float(sum(c.usd for c in self.entries))

    @property
    def calls(self) -> int:
        return len(self.entries)

    def _group(self, key: str) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for c in self.entries:
            row = out.setdefault(
                getattr(c, key),
                dict.fromkeys(("calls", "usd", "input_tokens", "output_tokens", "cache_hits", "errors"), 0),
            )
            row["calls"] += 1
            row["usd"] += c.usd
            row["input_tokens"] += c.input_tokens
            row["output_tokens"] += c.output_tokens
            row["cache_hits"] += int(c.cache_hit)
            row["errors"] += int(c.error)
        return out

    def by_model(self) -> dict[str, dict[str, float]]:
        """``{model: {calls, usd, input_tokens, output_tokens, cache_hits, errors}}``."""
        return self._group("model")

    def by_tag(self) -> dict[str, dict[str, float]]:
        """The same totals per tag."""
        return self._group("tag")

    def reset(self) -> None:
        """Forget every charge (a new episode)."""
        self.entries.clear()

    def records(self) -> list[dict[str, Any]]:
        """The charges as plain dicts (for ``info`` and episode logs)."""
        return [asdict(c) for c in self.entries]

    def __repr__(self) -> str:
        return f"CostLedger(calls={self.calls}, total_usd={self.total_usd:.6g})"
