"""``multi_llm_qa``: route a question to one of several candidate LLMs (Router-R1's family).

Two modes live in this env:

* ``select`` (implemented): an episode is one query; the action picks a candidate; the pool answers;
  the episode ends. The observation is a query embedding plus the candidates' descriptor features,
  which is what small policy routers (``rl_router.policies.router_policy``) consume.
* ``multi_round`` (the Router-R1 protocol with ``<search>``/``<information>``/``<answer>`` turns for
  LLM routers) arrives with the Router-R1 issue; asking for it now fails at construction.

Reward (Router-R1, their code): a correct answer scores ``(1 - alpha) + alpha * C`` and a wrong one
``0``, where ``C`` is the percentile-normalised sqrt-cost of the episode (``rewards.cost``). Every
term is reported on its own in ``info["reward_terms"]``. A failed candidate call is not a crash: it
scores 0, sets ``info["candidate_error"] = 1`` and carries the error text in ``info["error"]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rewards.combine import RouterR1Reward
from rewards.cost import PercentileCostNormalizer
from rewards.outcome import exact_match, f1
from rl_router.pool.types import CandidatePool, ModelDescriptor, Request

MODES = ("select", "multi_round")
OUTCOMES = ("recorded", "em", "f1")
DESCRIPTOR_FEATURES = 3  # log1p(params_b), log1p(price_in), log1p(price_out)


@dataclass
class MultiLLMQAConfig:
    """Hyperparameters of :class:`MultiLLMQAEnv` (Hydra schema ``env/multi_llm_qa_schema``)."""

    _target_: str = "envs.multi_llm_qa.MultiLLMQAEnv"
    mode: str = "select"  # "select" (one pick per query) or "multi_round" (Router-R1 protocol)
    alpha: float = 0.6  # cost weight of Router-R1's reward: correct -> (1 - alpha) + alpha * C
    cost_window: int = 2000  # episodes in the rolling window behind the sqrt-cost percentiles
    outcome: str = "recorded"  # "recorded" (replay correctness), "em" or "f1" against golden answers
    shuffle: bool = True  # visit queries in a seeded random order (False: dataset order)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"env.mode={self.mode!r}: choose one of {MODES}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"env.alpha={self.alpha}: Router-R1's cost weight must lie in [0, 1]")
        if self.cost_window < 2:
            raise ValueError(f"env.cost_window={self.cost_window}: needs at least 2 episodes")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"env.outcome={self.outcome!r}: choose one of {OUTCOMES}")


def descriptor_features(descriptors: Sequence[ModelDescriptor]) -> np.ndarray:
    """Per-candidate features the policy sees: ``float32 [num_models, 3]``.

    >>> descriptor_features([ModelDescriptor("m", "fake", params_b=0.0, price_in=0.0)]).tolist()
    [[0.0, 0.0, 0.0]]
    """
    rows = [[np.log1p(d.params_b), np.log1p(d.price_in), np.log1p(d.price_out)] for d in descriptors]
    return np.asarray(rows, dtype=np.float32).reshape(len(descriptors), DESCRIPTOR_FEATURES)


class MultiLLMQAEnv(gym.Env):
    """Pick the candidate model that answers each query.

    Args:
        pool: the candidate pool (any :class:`~rl_router.pool.types.CandidatePool`).
        examples: rows with ``id``, ``question``, ``golden_answers`` and, for replay pools,
            ``query_id`` (the routing-table row id).
        embeddings: ``float32 [len(examples), D]`` query embeddings, row-aligned with ``examples``.
        normalizer: a shared cost normaliser (vectorised copies of the env should share one, so
            the percentile window sees every episode); a fresh one when None.
        Remaining arguments: see :class:`MultiLLMQAConfig`.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        pool: CandidatePool,
        examples: Sequence[Mapping[str, Any]],
        embeddings: np.ndarray,
        mode: str = "select",
        alpha: float = 0.6,
        cost_window: int = 2000,
        outcome: str = "recorded",
        shuffle: bool = True,
        normalizer: PercentileCostNormalizer | None = None,
    ) -> None:
        MultiLLMQAConfig(mode=mode, alpha=alpha, cost_window=cost_window, outcome=outcome)
        if mode == "multi_round":
            raise NotImplementedError(
                "env.mode=multi_round (the Router-R1 protocol) is not built yet; use env.mode=select"
            )
        if len(examples) == 0:
            raise ValueError("MultiLLMQAEnv needs at least one example")
        if len(embeddings) != len(examples):
            raise ValueError(f"{len(embeddings)} embeddings for {len(examples)} examples: rows must align")
        self.pool = pool
        self.examples = examples
        self.embeddings = np.asarray(embeddings, dtype=np.float32)
        self.descriptors = list(pool.descriptors)
        self.model_names = [d.name for d in self.descriptors]
        self.outcome = outcome
        self.shuffle = shuffle
        self.normalizer = normalizer or PercentileCostNormalizer(window=cost_window)
        self.reward_fn = RouterR1Reward(alpha=alpha)

        self._features = descriptor_features(self.descriptors).reshape(-1)
        dim = self.embeddings.shape[1] + self._features.size
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)
        self.action_space = spaces.Discrete(len(self.descriptors))
        self._order = np.arange(len(examples))
        self._cursor = 0
        self._index = 0

    # -- gymnasium API ---------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode on the next query (``options={"index": i}`` picks row ``i``)."""
        super().reset(seed=seed)
        if seed is not None:
            self._new_epoch()
        if options and "index" in options:
            self._index = int(options["index"])
        else:
            if self._cursor >= len(self._order):
                self._new_epoch()
            self._index = int(self._order[self._cursor])
            self._cursor += 1
        return self._observation(), {"action_mask": self.action_mask(), "index": self._index}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Send the query to candidate ``action``; the episode ends with its scored answer."""
        action = int(action)
        if not self.action_space.contains(action):
            raise ValueError(f"action {action} outside Discrete({self.action_space.n})")
        example = self.examples[self._index]
        model = self.descriptors[action]
        request = Request(
            model=model.name,
            messages=({"role": "user", "content": str(example["question"])},),
            query_id=example.get("query_id", example.get("id")),
        )
        result = self.pool.generate([request])[0]

        correct = 0.0 if result.error else self._score(result.text, result.score, example)
        cost_term = self.normalizer([result.text], cost_usd=[result.cost_usd])[0]
        self.normalizer.update([result.cost_usd])
        reward = self.reward_fn(
            [result.text], format_ok=[True], correct=[correct], cost_term=[cost_term]
        )[0]
        info = {
            "action_mask": self.action_mask(),
            "index": self._index,
            "model": model.name,
            "correct": correct,
            "cost_usd": result.cost_usd,
            "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens,
            "cache_hit": result.cache_hit,
            "candidate_error": int(result.error is not None),
            "error": result.error or "",
            "reward_terms": {"outcome": correct, "cost": cost_term, "cost_usd": -result.cost_usd},
        }
        return self._observation(), float(reward), True, False, info

    # -- helpers ---------------------------------------------------------------------------------
    def action_mask(self) -> np.ndarray:
        """``int8 [num_models]``; select mode has no budget, so every candidate is allowed."""
        return np.ones(len(self.descriptors), dtype=np.int8)

    def _new_epoch(self) -> None:
        n = len(self.examples)
        self._order = self.np_random.permutation(n) if self.shuffle else np.arange(n)
        self._cursor = 0

    def _observation(self) -> np.ndarray:
        return np.concatenate([self.embeddings[self._index], self._features]).astype(np.float32)

    def _score(self, text: str, recorded: float | None, example: Mapping[str, Any]) -> float:
        if self.outcome == "recorded":
            if recorded is None:
                raise ValueError(
                    "env.outcome=recorded needs a pool that records correctness (replay); "
                    "use env.outcome=em or f1 with live candidates"
                )
            return float(recorded)
        golden = [list(example["golden_answers"])]
        scorer = exact_match if self.outcome == "em" else f1
        return float(scorer([text], golden_answers=golden)[0])
