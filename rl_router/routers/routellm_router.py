"""A trained policy router behind RouteLLM's router interface, so RouteLLM's own code can score it.

RouteLLM (Ong et al., 2024, https://github.com/lm-sys/RouteLLM) evaluates a router through one
method, ``calculate_strong_win_rate(prompt) -> float``: the router's score for sending the prompt to
the strong model. Its ``routellm.evals.evaluate`` thresholds that score at ten quantiles and reports
APGR and the calls needed for 20 / 50 / 80% of the quality gap. :class:`RouteLLMRouter` gives that
score for a router of this project (a run directory, an exported folder or a Hub repo id), and
:func:`register` adds it to RouteLLM's router table under :data:`ROUTER_NAME`::

    from rl_router.routers.routellm_router import register
    register()                                   # after `import routellm`; ROUTER_CLS["rl_router"]
    # Controller(routers=["rl_router"], config={"rl_router": {"checkpoint": "<run|export|repo>"}}, ...)

:mod:`rl_router.eval.routellm_harness` (and ``scripts/routellm_eval.py``) runs RouteLLM's own
benchmark and metric code with it on our rows.

The score is the router's probability of the strong candidate (the dearest, unless ``strong_model``
names another) under its calibration when it has one: ``softmax(log p + offsets)``. For two
candidates the offsets shift every score alike on the logit scale, so RouteLLM's threshold 0.5 is
the router's own calibrated decision and the ranking (APGR) is the uncalibrated one that
``rl-router eval`` reports. Only policy routers have such a score; an LLM router's choice is a
generated turn, and a ``memory_tiers`` router does not pick a model per query.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rl_router.pool.types import dearest
from rl_router.routers.load import load_router
from rl_router.routers.policy import PolicyRouter

ROUTER_NAME = "rl_router"  # the key RouteLLM's ROUTER_CLS and its CLI's --routers know this router by
MEMO_SIZE = 200_000  # prompts whose score is kept: RouteLLM asks once per threshold, a server forever


class RouteLLMRouter:
    """RouteLLM's ``Router`` interface over a policy router of this project.

    Args:
        checkpoint: A run directory, an exported folder or a Hub repo id (:func:`load_router`).
        strong_model: The candidate whose probability is the score; None: the dearest
            (:func:`~rl_router.pool.types.dearest`, the strong model of ``rl-router eval``'s APGR).
        revision: Hub revision, for repo ids.
        router: An already loaded router instead of ``checkpoint``.
        memo_size: How many prompts' scores :meth:`calculate_strong_win_rate` keeps (least recently
            asked dropped first), so a long-lived ``Controller`` does not grow without end.

    Raises:
        TypeError: the router is not a policy router.
        ValueError: ``strong_model`` is not one of its candidates.
    """

    NO_PARALLEL = True  # RouteLLM then calls it in this process (pandarallel would copy the model)

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        strong_model: str | None = None,
        revision: str | None = None,
        router: PolicyRouter | None = None,
        memo_size: int = MEMO_SIZE,
    ) -> None:
        if memo_size < 1:
            raise ValueError(f"memo_size={memo_size}: keep at least one score")
        if (checkpoint is None) == (router is None):
            raise ValueError("give exactly one of checkpoint (a run, export or repo id) and router")
        loaded = router if router is not None else load_router(checkpoint, revision=revision)
        if not isinstance(loaded, PolicyRouter):
            raise TypeError(
                f"{checkpoint or 'router'} is a {getattr(loaded, 'kind', type(loaded).__name__)} router; "
                "RouteLLM scores a per-query probability of the strong model, which only policy routers "
                "(router_kind 'policy') have"
            )
        names = loaded.model_names
        if strong_model is None:
            strong_model = names[dearest(loaded.descriptors)]
        if strong_model not in names:
            raise ValueError(f"strong_model={strong_model!r} is not a candidate of this router: {names}")
        self.router = loaded
        self.strong_model = strong_model
        self.strong = names.index(strong_model)
        self.memo_size = memo_size
        self._memo: OrderedDict[str, float] = OrderedDict()

    def calculate_strong_win_rates(self, prompts: Sequence[str]) -> np.ndarray:
        """``float64 [n]``: the score of each prompt (one batched embedding and forward pass)."""
        if not prompts:
            return np.zeros(0)
        log_probs = self.router.log_probs(self.router.embed(list(prompts)))
        if self.router.calibration is not None:
            log_probs = log_probs + np.asarray(self.router.calibration.offsets, dtype=np.float64)
        log_probs -= log_probs.max(axis=1, keepdims=True)
        probs = np.exp(log_probs)
        return probs[:, self.strong] / probs.sum(axis=1)

    def calculate_strong_win_rate(self, prompt: str) -> float:
        """The score of one prompt, in ``[0, 1]`` (what RouteLLM's ``Router`` asks for)."""
        if prompt in self._memo:
            self._memo.move_to_end(prompt)
            return self._memo[prompt]
        score = self._memo[prompt] = float(self.calculate_strong_win_rates([prompt])[0])
        if len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)
        return score

    def route(self, prompt: str, threshold: float, routed_pair: Any) -> str:
        """RouteLLM's rule: ``routed_pair.strong`` iff the score reaches ``threshold``."""
        return routed_pair.strong if self.calculate_strong_win_rate(prompt) >= threshold else routed_pair.weak

    def __str__(self) -> str:
        return ROUTER_NAME


def register(name: str = ROUTER_NAME) -> None:
    """Add :class:`RouteLLMRouter` to RouteLLM's router table (``routellm.routers.routers``), so its
    ``Controller`` and evaluation script accept ``name``.

    Raises:
        ImportError: RouteLLM is not installed (``pip install routellm``; its import also needs
            ``OPENAI_API_KEY`` set, to any value when nothing is called).
    """
    from routellm.routers import routers

    routers.ROUTER_CLS[name] = RouteLLMRouter
    routers.NAME_TO_CLS[RouteLLMRouter] = name
