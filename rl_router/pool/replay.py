"""Replay candidate: answers from a recorded routing table, for offline training at zero generation cost.

``Request.query_id`` selects the table row, the descriptor's ``model`` the column. The result carries
the recorded response (empty where only correctness was recorded, e.g. MMLU), the recorded score in
``Result.score``, and the recorded token counts priced at the descriptor's list prices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rl_router.pool.backend import error_result
from rl_router.pool.types import ModelDescriptor, Request, Result

if TYPE_CHECKING:
    from rl_router.data.routing_table import RoutingTable


class ReplayBackend:
    """One column of a :class:`~rl_router.data.routing_table.RoutingTable`, served as a model.

    Args:
        descriptor: the candidate; ``descriptor.model`` names the table column.
        table: the recorded outcomes (shared by every replay model of a pool).

    Raises:
        ValueError: the table has no column ``descriptor.model``.
    """

    enforces_timeout = False  # in-process: the pool bounds each call with its deadline thread
    cache_answers = False  # the table already is the record of answers

    def __init__(self, descriptor: ModelDescriptor, table: RoutingTable) -> None:
        if descriptor.model not in table.models:
            raise ValueError(
                f"replay model {descriptor.name!r}: column {descriptor.model!r} is not in table "
                f"{table.name!r}; set `model` to one of {table.models}"
            )
        self.descriptor = descriptor
        self.table = table
        self._column = table.models.index(descriptor.model)

    def wait_ready(self) -> None:
        """Ready once built."""

    @property
    def descriptors(self) -> list[ModelDescriptor]:
        return [self.descriptor]

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        return [self._lookup(request) for request in requests]

    def _lookup(self, request: Request) -> Result:
        if request.query_id is None:
            return error_result(f"replay model {self.descriptor.name!r} needs Request.query_id")
        try:
            row = self.table.index_of(request.query_id)
        except KeyError:
            return error_result(f"query_id {request.query_id!r} is not in table {self.table.name!r}")
        j = self._column
        input_tokens = int(self.table.input_tokens[row, j])
        output_tokens = int(self.table.output_tokens[row, j])
        return Result(
            text=self.table.responses[row][j] or "",
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=self.descriptor.cost_usd(input_tokens, output_tokens),
            score=float(self.table.scores[row, j]),
        )

    def close(self) -> None:
        pass
