"""Per-request operating points for a served router: ``routing.target`` in a request.

``rl-router calibrate`` fits logit offsets for ONE target and writes them beside the weights. A
served request may name its own target instead (``{"share": 0.3, "model": "gpt-4"}`` or
``{"cost_per_query": 0.001}``). :class:`TargetOffsets` makes that sound: at start it takes the same
calibration rows ``rl-router calibrate`` would (a seed-0 subset of ``calibration_rows`` rows of the
router's recorded TRAINING split, :func:`rl_router.eval.calibrate.training_rows`), computes the
router's log-probabilities on them once, and fits each target a request names with the same
functions (:func:`~rl_router.routers.calibration.fit_share_offsets`,
:func:`~rl_router.routers.calibration.fit_cost_offsets`), on those rows, the first time it is asked
for; fitted offsets are kept (a bounded LRU). So a request with target T is routed exactly as the
router would be after ``rl-router calibrate target=T rows=<calibration_rows>``.

An LLM router (:meth:`TargetOffsets.from_llm_training`) takes share targets by the same machinery
as ``rl-router calibrate`` for LLM routers (:func:`rl_router.eval.calibrate.fit_llm_calibration`):
the expensive part, the router's first turn on every calibration row and the log-probabilities of
the candidate names at its first routing decision
(:func:`~rl_router.routers.llm_choice.first_choice_log_probs`), is computed ONCE per replica, at
start, on a seed-0 subset of ``llm_calibration_rows`` training rows;
each distinct share target is then one :func:`~rl_router.routers.calibration.fit_share_offsets` (a
sort of at most that many margins, microseconds) and is kept in the same LRU, so a repeated target
costs a dictionary look-up. Cost targets are refused for LLM routers, as ``rl-router calibrate``
refuses them.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from rl_router.eval.calibrate import llm_first_choices, most_expensive, training_costs, training_rows
from rl_router.eval.table_eval import table_columns
from rl_router.routers.calibration import fit_cost_offsets, fit_share_offsets
from rl_router.routers.llm import LLMRouter
from rl_router.routers.policy import PolicyRouter
from rl_router.serve.embedder import router_inputs

CACHED_TARGETS = 256  # distinct targets whose offsets are kept
LLM_COST_REFUSED = (
    "routing.target.cost_per_query: an LLM router takes share targets ({share, model}); cost targets "
    "are for policy routers (rl-router calibrate refuses them too: the dollars of an episode depend "
    "on every turn, not on one choice the offsets move)"
)


class TargetError(ValueError):
    """A target these calibration rows cannot reach; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class TargetOffsets:
    """Offsets for any share or cost target, fitted on calibration rows prepared once.

    Args:
        router: the policy router, or an LLM router (then ``log_probs`` are its name log-probabilities).
        log_probs: ``[n, m]`` its log-probabilities on the calibration rows.
        row_dollars: ``[n, m]`` recorded dollars of each call on those rows (a routing table), or None.
        expected_dollars: ``[m]`` each candidate's expected dollars per query, used when
            ``row_dollars`` is None; None: cost targets are refused.
        source: what the rows are.
        cost_refused: why cost targets are refused whatever the dollars (LLM routers); None: they
            are fitted when dollars are known.
    """

    def __init__(
        self,
        router: PolicyRouter | LLMRouter,
        log_probs: np.ndarray,
        row_dollars: np.ndarray | None,
        expected_dollars: np.ndarray | None,
        source: str,
        cost_refused: str | None = None,
    ) -> None:
        self.router = router
        self.log_probs = np.asarray(log_probs, dtype=np.float64)
        self.row_dollars = row_dollars
        self.expected = row_dollars.mean(axis=0) if row_dollars is not None else expected_dollars
        self.source = source
        self.cost_refused = cost_refused
        self._fitted: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_training(
        cls, router: PolicyRouter, rows: int | None, embed: Callable[[list[str]], np.ndarray]
    ) -> TargetOffsets:
        """The calibration rows of ``rl-router calibrate`` for ``router`` (its recorded data option).

        Raises:
            ValueError: the router records no data option (an export without one).
        """
        data_cfg = router.training.get("data")
        prompts, table, source = training_rows(data_cfg, rows)
        log_probs = router.log_probs(router_inputs(router, prompts, embed))
        row_dollars, expected = None, None
        try:  # cost targets need recorded dollars of these very candidates; else share targets only
            if table is not None:
                row_dollars = table_columns(table, router.descriptors)[1]
            else:
                expected = training_costs(data_cfg, router)[0]
        except ValueError:
            pass
        return cls(router, log_probs, row_dollars, expected, source)

    @classmethod
    def from_llm_training(cls, router: LLMRouter, rows: int | None) -> TargetOffsets:
        """An LLM router's name log-probabilities at the first routing decision of each calibration row.

        The rows and the computation are :func:`~rl_router.eval.calibrate.fit_llm_calibration`'s
        for ``rl-router calibrate rows=<rows>`` (the offsets are checked equal in
        ``tests/serve/test_llm_targets.py``); only rows whose first turn routes count.

        Raises:
            ValueError: no data recorded with the router, or no first turn routes on these rows.
        """
        prompts, _, source = training_rows(router.training.get("data"), rows)
        log_probs, routed = llm_first_choices(router, prompts)
        source = f"{source}; {int(routed.sum())} first turns routed"
        return cls(router, log_probs, None, None, source, cost_refused=LLM_COST_REFUSED)

    def offsets(self, target: Mapping[str, Any]) -> np.ndarray:
        """``[m]`` the offsets meeting ``target`` on the calibration rows (fitted once, then kept).

        Raises:
            TargetError: an unknown model, or a cost these rows cannot reach.
        """
        names = self.router.model_names
        if "share" in target:
            model = target.get("model") or most_expensive(self.router)
            if model not in names:
                raise TargetError(
                    "routing.target.model", f"routing.target.model={model!r}: not one of {names}"
                )
            key: tuple = ("share", model, float(target["share"]))
        else:
            if self.cost_refused is not None:
                raise TargetError("routing.target.cost_per_query", self.cost_refused)
            if self.expected is None:
                raise TargetError(
                    "routing.target.cost_per_query",
                    "routing.target.cost_per_query: this router's training data record no dollars for "
                    "its candidates, so a cost target cannot be fitted; give a share target",
                )
            key = ("cost", float(target["cost_per_query"]))
        with self._lock:
            if key in self._fitted:
                self._fitted.move_to_end(key)
                return self._fitted[key]
            offsets = self._fit(key)
            self._fitted[key] = offsets
            while len(self._fitted) > CACHED_TARGETS:
                self._fitted.popitem(last=False)
            return offsets

    def _fit(self, key: tuple) -> np.ndarray:
        if key[0] == "share":
            return fit_share_offsets(self.log_probs, self.router.model_names.index(key[1]), key[2])
        try:
            with warnings.catch_warnings():  # a saturating target routes to the dearest: fine here
                warnings.simplefilter("ignore")
                offsets, _ = fit_cost_offsets(self.log_probs, self.expected, key[1], self.row_dollars)
        except ValueError as err:
            raise TargetError(
                "routing.target.cost_per_query", f"routing.target.cost_per_query: {err}"
            ) from err
        return offsets
