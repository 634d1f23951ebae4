"""``multi_llm_qa``: route a question to candidate LLMs (Router-R1's family).

Two modes live in this env:

* ``select``: an episode is one query; the action (``Discrete``) picks a candidate; the pool answers;
  the episode ends. The observation is the query's feature blocks (``features``: embedding, length,
  format, text statistics; :mod:`rl_router.data.features`) plus the candidates' descriptor features,
  which is what small policy routers (``rl_router.policies.router_policy``) consume.
* ``multi_round``: the Router-R1 protocol for LLM routers (:mod:`envs.router_r1_protocol`). The
  observation is the transcript text (the prompt, then every turn so far); the action is the
  router's text for one turn. A turn ``<think>…</think> <search>MODEL: sub-query</search>`` sends the
  sub-query to that candidate and appends its reply, capped at ``info_token_cap`` tokens and
  neutralised, as ``<information>…</information>``; ``<think>…</think> <answer>…</answer>`` ends the
  episode. After ``max_routes`` routes only an answer is valid. An invalid turn (any broken rule of
  :mod:`rewards.format`) ends the episode at once: its reward is already -1, so more turns would only
  spend candidate calls. The answer is read from the router's own turn, never from the transcript.

Reward (Router-R1, their code), on the last step (earlier steps score 0): a format violation scores
``-1``; otherwise a correct answer scores ``(1 - alpha) + alpha * C`` and a wrong one ``0``, where
``C`` is the sqrt-cost percentile-normalised in a window holding the episode (``rewards.cost``);
``reward=budgetmem`` (select) scores ``correct + alpha * s * C``, ``s`` BudgetMem's std ratio.
``select`` charges the pool's list price; ``multi_round`` charges output tokens x ``price_out`` over
routes, as Router-R1 does. Every term is in ``info["reward_terms"]``. A failed candidate call is not
a crash: it sets ``info["candidate_error"] = 1`` and ``info["error"]``; ``select`` scores it 0,
``multi_round`` tells the router in the information block and goes on.

Batched candidate calls. ``step`` is ``begin_step`` (parse the action; return the candidate
:class:`~rl_router.pool.types.Request`, or None when the turn calls no one) then one
``pool.generate`` then ``finish_step(result)``. A trainer with many live episodes calls
:func:`batched_step`, which sends every episode's request of the turn in ONE ``pool.generate`` call::

    envs = [MultiLLMQAEnv(pool, rows, mode="multi_round", outcome="em", normalizer=shared) for _ in rows]
    live = {i: env.reset(options={"index": i})[0] for i, env in enumerate(envs)}  # index -> transcript
    while live:
        texts = generate_turns(list(live.values()))           # the router LLM, one batch (policy tokens)
        steps = batched_step([envs[i] for i in live], texts)
        for i, (obs, reward, terminated, truncated, info) in zip(list(live), steps):
            live[i] = obs                                      # info["env_text"]: the env tokens (mask 0)
            if terminated:
                del live[i]                                    # info["episode"]: answer, cost, calls...

multi_round ``info`` on every step: ``turn``, ``turn_kind`` (search / answer / invalid), ``turn_error``,
``model``, ``sub_query``, ``env_text``, ``candidate_error``, ``error``, ``routes``, ``calls`` (per
model), ``cost_usd``, ``input_tokens``, ``output_tokens``; on the last step also ``reward_terms`` and
``episode`` (prompt, completion, turns, answer, correct, format_ok, violations, costs, reward).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.router_r1_protocol import (
    TokenCounter,
    Turn,
    information_block,
    information_block_chars,
    neutralize_tags,
    parse_turn,
    prompt_messages,
    truncate_tokens,
    whitespace_tokens,
)
from envs.row_order import RowOrder
from envs.spaces import TextSpace
from rewards.combine import BudgetMemReward, RouterR1Reward
from rewards.cost import PercentileCostNormalizer, ScaleMatcher
from rewards.format import RouterR1Format
from rewards.outcome import ANSWER_SCORERS, OUTCOME_SCORERS
from rl_router.data.features import DEFAULT_FEATURES, check_features, query_features
from rl_router.pool.types import CandidatePool, ModelDescriptor, Request, Result

MODES = ("select", "multi_round")
OUTCOMES = ("recorded", "em", "f1", "reply")
COST_REFERENCES = ("rolling", "table")
REWARDS = ("router_r1", "budgetmem")
DESCRIPTOR_FEATURES = 3  # log1p(params_b), log1p(price_in), log1p(price_out)

StepReturn = tuple[Any, float, bool, bool, dict[str, Any]]


@dataclass
class MultiLLMQAConfig:
    """Hyperparameters of :class:`MultiLLMQAEnv` (Hydra schema ``env/multi_llm_qa_schema``)."""

    _target_: str = "envs.multi_llm_qa.MultiLLMQAEnv"
    mode: str = "select"  # "select" (one pick per query) or "multi_round" (Router-R1 protocol)
    alpha: float = 0.6  # cost weight of Router-R1's reward: correct -> (1 - alpha) + alpha * C
    cost_window: int = 2000  # episodes in the rolling window behind the sqrt-cost percentiles
    # "rolling": Router-R1's percentiles over the policy's own recent episodes; "table": percentiles
    # frozen on every candidate's recorded cost of the training rows (the trainer builds them)
    cost_reference: str = "rolling"
    # "router_r1": (1 - alpha) * correct + alpha * C * correct; "budgetmem" (select): correct + alpha *
    # s * C, s = std(correct) / std(C) over this env's last cost_window episodes (BudgetMem's alignment)
    reward: str = "router_r1"
    # "recorded" (replay correctness), "em" / "f1" against golden answers, or "reply" (the answer a
    # candidate's sentence states in select, reply_match; the router's short answer, short_answer_match)
    outcome: str = "recorded"
    shuffle: bool = True  # visit queries in a seeded random order (False: dataset order)
    # select: the query's observation blocks, from its text (rl_router.data.features.BLOCKS)
    features: list[str] = field(default_factory=lambda: list(DEFAULT_FEATURES))
    max_routes: int = 4  # multi_round: candidate calls per episode before the answer turn (Router-R1: 4)
    info_token_cap: int = 600  # multi_round: tokens of a candidate reply shown to the router (Router-R1: 600)
    max_action_chars: int = 8192  # multi_round: longest router turn (characters) the action space admits

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"env.mode={self.mode!r}: choose one of {MODES}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"env.alpha={self.alpha}: Router-R1's cost weight must lie in [0, 1]")
        if self.cost_window < 2:
            raise ValueError(f"env.cost_window={self.cost_window}: needs at least 2 episodes")
        if self.cost_reference not in COST_REFERENCES:
            raise ValueError(f"env.cost_reference={self.cost_reference!r}: choose one of {COST_REFERENCES}")
        check_features(self.features)
        if self.reward not in REWARDS or (self.reward == "budgetmem" and self.mode != "select"):
            raise ValueError(f"env.reward={self.reward!r}: choose one of {REWARDS} (budgetmem: select mode)")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"env.outcome={self.outcome!r}: choose one of {OUTCOMES}")
        if self.mode == "multi_round" and self.outcome == "recorded":
            raise ValueError(
                "env.outcome=recorded scores a replayed pick, but multi_round scores the router's own "
                "answer: set env.outcome=em (Router-R1) or f1"
            )
        if self.max_routes < 0:
            raise ValueError(f"env.max_routes={self.max_routes}: use 0 (answer directly) or more")
        if self.info_token_cap < 1:
            raise ValueError(f"env.info_token_cap={self.info_token_cap}: show at least 1 token")
        if self.max_action_chars < 1:
            raise ValueError(f"env.max_action_chars={self.max_action_chars}: admit at least 1 character")


def descriptor_features(descriptors: Sequence[ModelDescriptor]) -> np.ndarray:
    """Per-candidate features the policy sees: ``float32 [num_models, 3]``.

    >>> descriptor_features([ModelDescriptor("m", "fake", params_b=0.0, price_in=0.0)]).tolist()
    [[0.0, 0.0, 0.0]]
    """
    rows = [[np.log1p(d.params_b), np.log1p(d.price_in), np.log1p(d.price_out)] for d in descriptors]
    return np.asarray(rows, dtype=np.float32).reshape(len(descriptors), DESCRIPTOR_FEATURES)


@dataclass(frozen=True)
class _Pending:
    """A step between ``begin_step`` and ``finish_step``: the action and, in multi_round, its parse."""

    action: Any
    turn: Turn | None = None


@dataclass
class _Episode:
    """One multi_round episode so far; ``segments`` concatenate to the router's completion."""

    index: int
    prompt: str
    segments: list[str] = field(default_factory=list)  # router turns and env information blocks
    turns: list[str] = field(default_factory=list)
    information: list[str] = field(default_factory=list)  # each information block's (neutralised) text
    calls: dict[str, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0  # Router-R1's charge: output tokens x price_out
    list_cost_usd: float = 0.0  # the pool's list price (input + output)
    candidate_errors: int = 0
    answer: str | None = None
    over: bool = False

    @property
    def routes(self) -> int:
        return sum(self.calls.values())


def select_request(model: str, example: Mapping[str, Any]) -> Request:
    """The candidate call of select mode: the question as the user's only message.

    Shared with :func:`rl_router.rollout.live_table.collect_routing_table`, so answers recorded before
    training are the response-cache entries the env's calls hit.
    """
    return Request(
        model=model,
        messages=({"role": "user", "content": str(example["question"])},),
        query_id=example.get("query_id", example.get("id")),
    )


class MultiLLMQAEnv(gym.Env):
    """Route each query to candidate models: one pick (``select``) or Router-R1 turns (``multi_round``).

    Args:
        pool: the candidate pool (any :class:`~rl_router.pool.types.CandidatePool`).
        examples: rows with ``id``, ``question``, ``golden_answers`` and, for replay pools,
            ``query_id`` (the routing-table row id).
        embeddings: ``float32 [len(examples), 384]`` query embeddings, row-aligned with ``examples``
            (``select`` with the ``embedding`` block only; ``multi_round`` observes text).
        normalizer: a shared cost normaliser (vectorised copies of the env should share one, so
            the percentile window sees every episode); a fresh one when None.
        count_tokens: the token counter behind ``info_token_cap`` (e.g. the router tokenizer's
            encode length); whitespace words when None.
        defer_cost: (multi_round) leave the cost term to a caller that scores whole batches (the GRPO
            bridge): the normaliser is left alone, ``reward_terms["cost"]`` is None, and so is the
            reward wherever it needs that term (``episode["reward"]`` None, the step's reward NaN).
        Remaining arguments: see :class:`MultiLLMQAConfig`.
    """

    metadata = {"render_modes": []}

    @staticmethod
    def step_batch(envs: Sequence[MultiLLMQAEnv], actions: Sequence[Any]) -> list[StepReturn]:
        """Step several of these envs with one pool call (:func:`batched_step`).

        The hook :mod:`rl_router.rollout.driver` looks for on an env class: every turn of a rollout
        batch then reaches the candidates in one batched request.
        """
        return batched_step(envs, actions)

    def __init__(
        self,
        pool: CandidatePool,
        examples: Sequence[Mapping[str, Any]],
        embeddings: np.ndarray | None = None,
        mode: str = "select",
        alpha: float = 0.6,
        cost_window: int = 2000,
        cost_reference: str = "rolling",
        reward: str = "router_r1",
        outcome: str = "recorded",
        shuffle: bool = True,
        features: Sequence[str] = DEFAULT_FEATURES,
        normalizer: PercentileCostNormalizer | None = None,
        max_routes: int = 4,
        info_token_cap: int = 600,
        max_action_chars: int = 8192,
        count_tokens: TokenCounter | None = None,
        defer_cost: bool = False,
    ) -> None:
        MultiLLMQAConfig(
            mode=mode,
            alpha=alpha,
            cost_window=cost_window,
            cost_reference=cost_reference,
            reward=reward,
            outcome=outcome,
            features=list(features),
            max_routes=max_routes,
            info_token_cap=info_token_cap,
            max_action_chars=max_action_chars,
        )
        if len(examples) == 0:
            raise ValueError("MultiLLMQAEnv needs at least one example")
        self.pool = pool
        self.examples = examples
        self.mode = mode
        self.descriptors = list(pool.descriptors)
        self.model_names = [d.name for d in self.descriptors]
        self.outcome = outcome
        self.shuffle = shuffle
        if cost_reference == "table" and (normalizer is None or not normalizer.frozen):
            raise ValueError(
                "env.cost_reference=table needs a normaliser frozen on reference costs "
                "(PercentileCostNormalizer.from_reference); `rl-router train` builds it from the "
                "training table"
            )
        if defer_cost and mode != "multi_round":
            raise ValueError("defer_cost leaves finished episodes to the caller: use mode=multi_round")
        self.normalizer = normalizer or PercentileCostNormalizer(window=cost_window)
        self.defer_cost = defer_cost
        self.reward_fn = RouterR1Reward(alpha=alpha)
        # BudgetMem's reward, its std-ratio scale matched on this env's own episodes
        self.budgetmem = (
            BudgetMemReward(lam=alpha, scale=ScaleMatcher(cost_window)) if reward == "budgetmem" else None
        )
        self.max_routes = max_routes
        self.info_token_cap = info_token_cap
        self.count_tokens: TokenCounter = count_tokens or whitespace_tokens
        self._rows = RowOrder(len(examples), self.shuffle)
        self._index = 0
        self._pending: _Pending | None = None
        self._episode: _Episode | None = None

        if mode == "select":
            if "embedding" in features and (embeddings is None or len(embeddings) != len(examples)):
                got = "no" if embeddings is None else len(embeddings)
                raise ValueError(f"{got} embeddings for {len(examples)} examples: rows must align")
            questions = [str(example["question"]) for example in examples]
            self.query = query_features(questions, features, embeddings=embeddings)  # [n, Q]
            self._features = descriptor_features(self.descriptors).reshape(-1)
            dim = self.query.shape[1] + self._features.size
            self.observation_space = spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)
            self.action_space = spaces.Discrete(len(self.descriptors))
        else:
            bad = [n for n in self.model_names if ":" in n]
            if bad:
                raise ValueError(f"candidates {bad} have ':' in their name; a route reads MODEL: sub-query")
            self.format = RouterR1Format(self.model_names, max_routes=max_routes)
            longest_prompt = max(len(self.prompt_messages(i)[0]["content"]) for i in range(len(examples)))
            longest = (
                longest_prompt
                + (max_routes + 1) * max_action_chars
                + max_routes * information_block_chars(info_token_cap)
            )
            self.observation_space = TextSpace(max_length=longest)
            self.action_space = TextSpace(max_length=max_action_chars)

    # -- gymnasium API ---------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Start an episode on the next query (``options={"index": i}`` picks row ``i``)."""
        super().reset(seed=seed)
        if seed is not None:
            self._rows.new_pass(self.np_random)
        if options and "index" in options:
            self._index = int(options["index"])
        else:
            self._index = self._rows.next(self.np_random)
        self._pending = None
        if self.mode == "select":
            return self._observation(), {"action_mask": self.action_mask(), "index": self._index}
        messages = self.prompt_messages(self._index)
        self._episode = _Episode(index=self._index, prompt=messages[0]["content"])
        return self._episode.prompt, {"index": self._index, "prompt_messages": messages}

    def step(self, action: Any) -> StepReturn:
        """Act once: ``select`` picks candidate ``action``; ``multi_round`` plays the router's turn text."""
        request = self.begin_step(action)
        result = self.pool.generate([request])[0] if request is not None else None
        return self.finish_step(result)

    # -- batched stepping ------------------------------------------------------------------------
    def begin_step(self, action: Any) -> Request | None:
        """Validate and parse ``action``; return the candidate call it asks for (None: no call).

        Call :meth:`finish_step` next, with the pool's answer to the returned request.

        Raises:
            ValueError: ``action`` is outside the action space.
            RuntimeError: a step is already pending, or (multi_round) no episode is running.
        """
        if self._pending is not None:
            raise RuntimeError("begin_step() twice: call finish_step() with the pending result first")
        if not self.action_space.contains(action if self.mode == "multi_round" else int(action)):
            raise ValueError(f"action {str(action)[:80]!r} is outside {self.action_space}")
        if self.mode == "select":
            return self._begin_select(int(action))
        return self._begin_turn(action)

    def finish_step(self, result: Result | None) -> StepReturn:
        """Complete the pending step with the result of :meth:`begin_step`'s request (None if none)."""
        pending, self._pending = self._pending, None
        if pending is None:
            raise RuntimeError("finish_step() without begin_step()")
        if pending.turn is None:
            return self._finish_select(pending.action, result)
        return self._finish_turn(pending.action, pending.turn, result)

    @property
    def episode_over(self) -> bool:
        """Whether a multi_round episode has ended (``reset`` starts the next); select episodes always end."""
        return self._episode is None or self._episode.over

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON data to go on exactly as this env would: RNG, data order, cursor, row, episode so far.

        Not the pool, the rows, nor the cost normaliser sub-envs share (:meth:`shared_state`).
        """
        if self._pending is not None:
            raise RuntimeError("state_dict() between begin_step() and finish_step(): finish the step first")
        episode = None if self._episode is None else asdict(self._episode)
        state = {"mode": self.mode, "rows": len(self.examples), "rng": self.np_random.bit_generator.state}
        return state | self._rows.state_dict() | {"index": self._index, "episode": episode}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Go on from :meth:`state_dict`'s data; ValueError for another mode or number of rows."""
        if (state["mode"], state["rows"]) != (self.mode, len(self.examples)):
            got = f"a {state['mode']} env over {state['rows']} rows"
            raise ValueError(f"state of {got}, not of this {self.mode} env over {len(self.examples)}")
        self.np_random = np.random.Generator(np.random.PCG64())  # gymnasium's; another's state is refused
        self.np_random.bit_generator.state = state["rng"]
        self._rows.load_state_dict(state)
        self._index = state["index"]
        self._pending, self._episode = None, _Episode(**state["episode"]) if state["episode"] else None

    def shared_state(self) -> dict[str, Any]:
        """Stateful objects sub-envs may share, so left out of :meth:`state_dict`: the cost normaliser
        (and BudgetMem's scale matcher, saved the same way)."""
        return {"normalizer": self.normalizer} | ({"scale": self.budgetmem.scale} if self.budgetmem else {})

    # -- helpers ---------------------------------------------------------------------------------
    def prompt_messages(self, index: int) -> list[dict[str, str]]:
        """The router's first message for row ``index`` (multi_round; see ``router_r1_protocol``)."""
        return prompt_messages(self.examples[index], self.descriptors, self.max_routes)

    def action_mask(self) -> np.ndarray:
        """``int8 [num_models]``; select mode has no budget, so every candidate is allowed."""
        return np.ones(len(self.descriptors), dtype=np.int8)

    def _score(self, text: str, recorded: float | None, example: Mapping[str, Any]) -> float:
        if self.outcome == "recorded":
            if recorded is None:
                raise ValueError(
                    "env.outcome=recorded needs a pool that records correctness (replay); "
                    "use env.outcome=em or f1 with live candidates"
                )
            return float(recorded)
        golden = [list(example["golden_answers"])]
        # select scores a candidate's reply, multi_round the router's own answer (reply: a short one)
        scorer = (OUTCOME_SCORERS if self.mode == "select" else ANSWER_SCORERS)[self.outcome]
        return float(scorer([text], golden_answers=golden)[0])

    # -- select mode -----------------------------------------------------------------------------
    def _observation(self) -> np.ndarray:
        return np.concatenate([self.query[self._index], self._features]).astype(np.float32)

    def observations(self) -> np.ndarray:
        """``float32 [n, D]``: the select-mode observation of every row, in row order (what a policy's
        input standardisation is fitted on)."""
        if self.mode != "select":
            raise ValueError("observations() lists select-mode observations; this env is multi_round")
        tiled = np.broadcast_to(self._features, (len(self.query), self._features.size))
        return np.concatenate([self.query, tiled], axis=1).astype(np.float32)

    def _begin_select(self, action: int) -> Request:
        request = select_request(self.descriptors[action].name, self.examples[self._index])
        self._pending = _Pending(action)
        return request

    def _finish_select(self, action: int, result: Result | None) -> StepReturn:
        if result is None:
            raise ValueError("select mode always calls a candidate: finish_step() needs its Result")
        example = self.examples[self._index]
        correct = 0.0 if result.error else self._score(result.text, result.score, example)
        cost_term = self.normalizer.score_batch([result.cost_usd])[0]
        if self.budgetmem is not None:
            reward = self.budgetmem([result.text], task_reward=[correct], cost_term=[cost_term])[0]
            self.budgetmem.update([correct], [cost_term])
        else:
            reward = self.reward_fn(
                [result.text], format_ok=[True], correct=[correct], cost_term=[cost_term]
            )[0]
        info = {
            "action_mask": self.action_mask(),
            "index": self._index,
            "model": self.descriptors[action].name,
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

    # -- multi_round mode ------------------------------------------------------------------------
    def _begin_turn(self, text: str) -> Request | None:
        episode = self._episode
        if episode is None or episode.over:
            raise RuntimeError("no multi_round episode is running: call reset() first")
        turn = parse_turn(text, self.format)
        if turn.kind == "search" and episode.routes >= self.max_routes:
            turn = Turn("invalid", error=f"route limit: {self.max_routes} routes used, only <answer> is left")
        self._pending = _Pending(text, turn)
        if turn.kind != "search":
            return None
        return Request(model=turn.model, messages=({"role": "user", "content": turn.query},))

    def _finish_turn(self, text: str, turn: Turn, result: Result | None) -> StepReturn:
        if (result is None) != (turn.kind != "search"):
            raise ValueError(f"a {turn.kind} turn takes {'a Result' if turn.kind == 'search' else 'None'}")
        episode = self._episode
        assert episode is not None  # _begin_turn checked it
        episode.turns.append(text)
        episode.segments.append(text)
        env_text, error = "", None
        if result is not None:
            descriptor = self.descriptors[self.model_names.index(turn.model)]
            episode.calls[turn.model] = episode.calls.get(turn.model, 0) + 1
            episode.input_tokens += result.input_tokens
            episode.output_tokens += result.output_tokens
            episode.cost_usd += descriptor.price_out * result.output_tokens / 1e6
            episode.list_cost_usd += result.cost_usd
            if result.error is not None:
                error = result.error
                episode.candidate_errors += 1
                reply = f"(the call to {turn.model} failed: {result.error})"
            else:
                reply = result.text
            shown = truncate_tokens(reply, self.info_token_cap, self.count_tokens)
            env_text = information_block(shown)
            episode.information.append(neutralize_tags(shown))
            episode.segments.append(env_text)
        info: dict[str, Any] = {
            "index": episode.index,
            "turn": len(episode.turns),
            "turn_kind": turn.kind,
            "turn_error": turn.error,
            "model": turn.model,
            "sub_query": turn.query,
            "env_text": env_text,
            "candidate_error": int(error is not None),
            "error": error or "",
            "routes": episode.routes,
            "calls": dict(episode.calls),
            "cost_usd": episode.cost_usd,
            "input_tokens": episode.input_tokens,
            "output_tokens": episode.output_tokens,
        }
        reward = 0.0
        if turn.kind != "search":
            episode.answer = turn.answer if turn.kind == "answer" else None
            reward = self._end_episode(episode, info)
        return episode.prompt + "".join(episode.segments), reward, episode.over, False, info

    def _end_episode(self, episode: _Episode, info: dict[str, Any]) -> float:
        """Score the finished episode (Router-R1's reward) and add the episode's record to ``info``."""
        episode.over = True
        completion = "".join(episode.segments)
        violations = self.format.violations(completion)
        example = self.examples[episode.index]
        correct = 0.0 if episode.answer is None else self._score(episode.answer, None, example)
        cost_term = None if self.defer_cost else self.normalizer.score_batch([episode.cost_usd])[0]
        reward = self.reward_fn(
            [completion], format_ok=[not violations], correct=[correct], cost_term=[cost_term]
        )[0]
        assert reward is not None or self.defer_cost  # every term is known, unless the cost is deferred
        info["reward_terms"] = {
            "format": -1.0 if violations else 0.0,
            "outcome": correct,
            "cost": cost_term,
            "cost_usd": -episode.cost_usd,
        }
        info["episode"] = {
            "index": episode.index,
            "id": example.get("id"),
            "prompt": episode.prompt,
            "completion": completion,
            "turns": list(episode.turns),
            "information": list(episode.information),
            "answer": episode.answer,
            "correct": correct,
            "format_ok": not violations,
            "violations": violations,
            "routes": episode.routes,
            "calls": dict(episode.calls),
            "cost_usd": episode.cost_usd,
            "list_cost_usd": episode.list_cost_usd,
            "input_tokens": episode.input_tokens,
            "output_tokens": episode.output_tokens,
            "candidate_errors": episode.candidate_errors,
            "reward": reward,
        }
        return float("nan" if reward is None else reward)  # NaN: a deferred cost term leaves it unknown


def batched_step(envs: Sequence[MultiLLMQAEnv], actions: Sequence[Any]) -> list[StepReturn]:
    """Step several envs, sending all their candidate requests in ONE ``pool.generate`` call.

    Args:
        envs: Envs sharing one pool (the trainer's live episodes).
        actions: One action per env (router turn texts in multi_round).

    Returns:
        Each env's ``(observation, reward, terminated, truncated, info)``, in order.

    Raises:
        ValueError: lengths differ, the envs do not share one pool, or an action is invalid (then
            no env is left with a pending step).
    """
    if len(envs) != len(actions):
        raise ValueError(f"{len(envs)} envs but {len(actions)} actions: give one action per env")
    if not envs:
        return []
    pool = envs[0].pool
    if any(env.pool is not pool for env in envs):
        raise ValueError("batched_step sends one pool call: every env must share the same pool object")
    requests: list[Request | None] = []
    try:
        for env, action in zip(envs, actions, strict=True):
            requests.append(env.begin_step(action))
    except BaseException:
        for env in envs[: len(requests)]:
            env._pending = None  # undo the steps that began: none of them has called a candidate
        raise
    sent = [r for r in requests if r is not None]
    answers = iter(pool.generate(sent) if sent else [])
    return [
        env.finish_step(next(answers) if request is not None else None)
        for env, request in zip(envs, requests, strict=True)
    ]
