"""``agent_steps``: route each step of a text-game agent to a model tier, under a hard budget (BoPO).

Description:
    An episode is one game task (TextWorldExpress or ScienceWorld, :mod:`envs.games`). Before every
    agent step the router picks a tier of the pool (cheap / expensive by default; N tiers allowed).
    The chosen candidate gets a ReAct-style prompt (:mod:`envs.react_agent`: the task, the recent
    moves, the room, the numbered valid actions) and its reply is read as one game action. An
    unparseable or invalid action is passed to the game as written; the game answers it (an "unknown
    action" message) and the env counts it. One pool call carries every live episode's request of a
    step (:meth:`AgentStepsEnv.step_batch`, the hook :mod:`rl_router.rollout.driver` uses).

Action Space:
    ``mode="features"``: ``Discrete(num_tiers)``, the tier of the next step, pool order.
    ``mode="text"``: the router's reply (``TextSpace``), one short line whose first word is the
    tier's number (1 = the first, cheapest tier) or name, optionally after ``Tier:``
    (:func:`parse_tier`). Anything else is malformed: the cheapest affordable tier writes the step
    and the reply counts against the format term. An empty reply ends the episode without a call
    (the rollout driver's out-of-room signal).
    A tier the remaining budget cannot pay for is masked (``info["action_mask"]``, bool ``[A]``,
    :class:`rewards.hard_budget.EpisodeBudget`); a policy that picks one anyway gets the cheapest
    affordable tier instead (counted in ``masked_actions``), so no episode can overspend.

Observation Space:
    ``mode="features"``: ``Box(float32 [2 * embed_dim + 8 + A])``: hashed embeddings of the task and
    of the current game text (:mod:`envs.text_features`), step features (step / max_steps, invalid
    share, last action valid, score, expensive-call share, spent / cap), the budget (fraction left,
    cap / largest cap), and the mask. ``mode="text"``: the router's transcript (``TextSpace``): the
    task and the numbered tiers, then per step the agent's last action, the game's text, the step,
    the budget left and the allowed tiers (:meth:`AgentStepsEnv.router_prompt` adds the system message).

Rewards:
    Terminal (earlier steps 0): ``1[success] - bopo.lam * c_hat - reference + format`` with ``c_hat`` the
    boundary-relative cost ``clip((C - C_S) / (C_L - C_S), 0, 1)`` when the task row carries the
    boundary policies' costs ``cost_small`` / ``cost_large``, else the share of steps sent to an
    expensive tier; ``reference`` is the boundary baseline (:func:`rewards.boundary.reference_baseline`)
    when ``bopo.reference_baseline`` is on and the row carries ``success_small`` / ``success_large``, else 0.
    Both are our reconstruction of BoPO (:mod:`rewards.boundary`). ``format`` (text mode, else 0) is
    ``-format_penalty`` times the share of the router's replies that were malformed.
    Terms: ``info["reward_terms"]``.

Episode End:
    Terminated on the game's success or failure, when the budget cannot pay for any tier, or (text
    mode) on an empty router reply; truncated after ``max_steps`` steps.

Arguments:
    See :class:`AgentStepsConfig`; plus ``pool``, ``examples`` (task rows: ``id``, ``game``, ``seed``,
    ``fold``, ``params`` and optionally the boundary keys above), ``game`` (a started
    :class:`~envs.games.types.TextGame`; None starts one of ``suite``, closed by ``close()``),
    ``embed`` and ``count_prompt_tokens`` (an upper bound of a prompt's input tokens, for dollar masks).

Info keys (every step): ``action_mask``, ``index``, ``model``, ``tier``, ``reply``, ``game_action``,
``action_valid``, ``invalid_actions``, ``masked_actions``, ``candidate_error``, ``error``, ``input_tokens``,
``output_tokens``, ``cost_usd`` (this step), ``episode_cost_usd``, ``expensive_calls``, ``budget_cap``,
``budget_left`` (fraction), ``over_budget``, ``budget_exhausted``, ``score``, ``success``, ``steps``,
``reward_terms``, ``env_text`` and ``malformed`` (text mode); last step also ``trajectory`` (the
episode record; in text mode also as ``episode``, the rollout driver's key, with the keys the GRPO
bridge reads: ``format_ok``, ``correct`` (= success), ``routes`` (= steps)).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.games import make_game
from envs.games.types import SUITES, GameState, GameTask, TextGame
from envs.multi_llm_qa import batched_step
from envs.react_agent import agent_messages, parse_action
from envs.row_order import RowOrder
from envs.spaces import TextSpace
from envs.text_features import hash_embed
from rewards.boundary import BoPOConfig, boundary_cost, reference_baseline
from rewards.hard_budget import EpisodeBudget, HardBudgetConfig
from rewards.ledger import CostLedger, worst_case_usd
from rl_router.pool.types import CandidatePool, Request, Result

MODES = ("features", "text")
ROUTER_SYSTEM = (
    "You route the steps of a text-game agent to model tiers. Tier 1 is the cheapest; higher tiers are "
    "stronger and dearer. After each step report, reply with the number of the tier that should write "
    "the next step, and nothing else."
)
ROUTER_STOPS = ("\n",)  # a router reply is one line; its turn ends at the first newline (or EOS)
TIER_PREFIX = re.compile(r"^\s*tier\b\s*[:=]?", re.IGNORECASE)
STEP_FEATURES = 8
StepReturn = tuple[Any, float, bool, bool, dict[str, Any]]
Messages = list[dict[str, str]]


def parse_tier(text: str, names: Sequence[str]) -> int | None:
    """The tier a router reply names (0-based), or None when it is malformed.

    The reply's first word, after an optional ``Tier:``, is the tier's number (1-based, pool order)
    or its name; trailing punctuation and later words are ignored, case does not matter.

    >>> names = ["small", "large"]
    >>> parse_tier("2", names), parse_tier("Tier: small", names), parse_tier(" 1. 1. ", names)
    (1, 0, 0)
    >>> parse_tier("I pick large", names), parse_tier("3", names), parse_tier("", names)
    (None, None, None)
    """
    words = TIER_PREFIX.sub("", text, count=1).split()
    if not words:
        return None
    word = words[0].lower().rstrip(".,;:!)")
    if word.isdigit():
        return int(word) - 1 if 1 <= int(word) <= len(names) else None
    lowered = [n.lower() for n in names]
    return lowered.index(word) if word in lowered else None


def byte_token_bound(messages: Messages) -> int:
    """An upper bound of any tokenizer's input tokens: UTF-8 bytes plus 16 per message (chat template)."""
    return sum(len(m["content"].encode()) + 16 for m in messages) + 16


@dataclass
class AgentStepsConfig:
    """Hyperparameters of :class:`AgentStepsEnv` (Hydra schema ``env/agent_steps_schema``)."""

    _target_: str = "envs.agent_steps.AgentStepsEnv"
    mode: str = "features"  # "features" (compact policies, Discrete tiers) or "text" (LLM routers)
    suite: str = "textworld_express"  # textworld_express | scienceworld
    max_steps: int = 15  # agent steps per episode (truncation)
    history: int = 3  # recent (action, observation) pairs in the agent's prompt
    max_action_tokens: int = 24  # new-token cap of a candidate's reply (one action line)
    max_actions_shown: int = 40  # valid actions listed in the prompt (ScienceWorld offers hundreds)
    embed_dim: int = 64  # size of each hashed text embedding in the features observation
    shuffle: bool = True  # visit tasks in a seeded random order (False: row order)
    budget: HardBudgetConfig = field(default_factory=HardBudgetConfig)  # per-episode hard cap
    bopo: BoPOConfig = field(default_factory=BoPOConfig)  # reward weight, reference baseline, boundary runs
    eval_caps: list[float] = field(default_factory=list)  # fixed caps (budget.kind's unit) to evaluate under
    format_penalty: float = 0.5  # text mode: reward minus this times the share of malformed router replies

    def __post_init__(self) -> None:
        if isinstance(self.budget, Mapping):
            self.budget = HardBudgetConfig(**self.budget)
        if isinstance(self.bopo, Mapping):
            self.bopo = BoPOConfig(**self.bopo)
        if self.mode not in MODES:
            raise ValueError(f"env.mode={self.mode!r}: choose one of {MODES}")
        if self.suite not in SUITES:
            raise ValueError(f"env.suite={self.suite!r}: choose one of {SUITES}")
        for name in ("max_steps", "max_action_tokens", "max_actions_shown", "embed_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"env.{name}={getattr(self, name)}: use at least 1")
        if self.history < 0:
            raise ValueError(f"env.history={self.history}: use 0 (no history) or more")
        if self.format_penalty < 0:
            raise ValueError(f"env.format_penalty={self.format_penalty}: use a penalty >= 0")


class AgentStepsEnv(gym.Env):
    """Pick a model tier for every agent step of a text game (see the module docstring)."""

    metadata = {"render_modes": []}

    @staticmethod
    def step_batch(envs: Sequence[AgentStepsEnv], actions: Sequence[Any]) -> list[StepReturn]:
        """Step several envs with ONE pool call (:func:`envs.multi_llm_qa.batched_step`)."""
        return batched_step(envs, actions)

    def __init__(
        self,
        pool: CandidatePool,
        examples: Sequence[Mapping[str, Any]],
        game: TextGame | None = None,
        embed: Callable[[str, int], np.ndarray] = hash_embed,
        count_prompt_tokens: Callable[[Messages], int] = byte_token_bound,
        normalizer: Any = None,
        **options: Any,
    ) -> None:
        cfg = AgentStepsConfig(**options)
        if len(examples) == 0:
            raise ValueError("AgentStepsEnv needs at least one task row")
        self.cfg, self.pool, self.examples = cfg, pool, examples
        self.descriptors = list(pool.descriptors)
        self.model_names = [d.name for d in self.descriptors]
        self.ledger = CostLedger(self.descriptors)  # an unpriced tier stops here
        self.expensive = cfg.budget.expensive_models(self.descriptors)
        prices = [d.price_in + d.price_out for d in self.descriptors]
        self.cheapest = int(np.argmin(prices))
        self._own_game = game is None
        self.game = game if game is not None else make_game(cfg.suite)
        self.embed, self.count_tokens = embed, count_prompt_tokens
        self._rows, self._index = RowOrder(len(examples), cfg.shuffle, start_exhausted=True), 0
        self._pending: tuple[int, bool] | None = None
        self._over = True
        self._quit = False  # text mode: the router's reply was empty
        n = len(self.descriptors)
        if cfg.mode == "features":
            dim = 2 * cfg.embed_dim + STEP_FEATURES + n
            self.observation_space = spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)
            self.action_space = spaces.Discrete(n)
        else:
            self.observation_space = TextSpace(max_length=1 << 20)
            self.action_space = TextSpace(max_length=512)

    # -- gymnasium API ---------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Start the next task (``options={"index": i}`` picks row ``i``) with a freshly drawn budget."""
        super().reset(seed=seed)
        if seed is not None:  # the next unpicked row starts a new pass from the reseeded generator
            self._rows.end_pass()
        if options and "index" in options:
            self._index = int(options["index"])
        else:
            self._index = self._rows.next(self.np_random)
        self.row = self.examples[self._index]
        self.task = GameTask.from_row(self.row)
        self.state: GameState = self.game.reset(self.task)
        self.budget: EpisodeBudget = self.cfg.budget.draw(self.np_random, self.descriptors)
        self.ledger.reset()
        self.history: list[tuple[str, str]] = []
        self.steps = self.invalid = self.masked = self.errors = self.malformed = 0
        self.last_valid = 1.0
        self.tiers: list[str] = []
        self._pending, self._over, self._quit = None, False, False
        self._messages = self._prompt()
        self._text = self._router_text()
        info = {"action_mask": self.action_mask(), "index": self._index, "budget_cap": self.budget.cap}
        return self._observation(), info

    def step(self, action: Any) -> StepReturn:
        request = self.begin_step(action)
        return self.finish_step(self.pool.generate([request])[0] if request is not None else None)

    def close(self) -> None:
        if self._own_game:
            self.game.close()

    # -- batched stepping ------------------------------------------------------------------------
    def begin_step(self, action: Any) -> Request | None:
        """Pick the tier (a masked one becomes the cheapest affordable); return its call (None: none)."""
        if self._pending is not None:
            raise RuntimeError("begin_step() twice: call finish_step() with the pending result first")
        if self._over:
            raise RuntimeError("the episode is over: call reset() first")
        if self.cfg.mode == "features":
            if not self.action_space.contains(int(action)):
                raise ValueError(f"action {action!r} is outside {self.action_space}")
            tier = int(action)
        elif not str(action).strip():  # an empty reply: the episode ends, no call
            self.malformed += 1
            self._quit = True
            self._pending = (-1, False)
            return None
        else:
            parsed = parse_tier(str(action), self.model_names)
            self.malformed += parsed is None
            tier = self.cheapest if parsed is None else parsed
        affordable = self._affordable()
        if not affordable.any():  # nothing left to pay with: the step ends the episode, no call
            self._pending = (-1, False)
            return None
        masked = not affordable[tier]
        if masked:
            tier = min(np.flatnonzero(affordable), key=lambda i: self._worst_case(i))
        self._pending = (int(tier), masked)
        descriptor = self.descriptors[tier]
        sampling = dataclasses.replace(descriptor.sampling, max_tokens=self.cfg.max_action_tokens)
        return Request(model=descriptor.name, messages=tuple(self._messages), sampling=sampling)

    def finish_step(self, result: Result | None) -> StepReturn:
        """Apply the candidate's reply to the game and score the step."""
        if self._pending is None:
            raise RuntimeError("finish_step() without begin_step()")
        (tier, masked), self._pending = self._pending, None
        if (result is None) != (tier < 0):
            raise ValueError("finish_step() needs the Result of the request begin_step() returned")
        info: dict[str, Any] = {
            "model": "",
            "tier": -1,
            "reply": "",
            "game_action": "",
            "action_valid": False,
        }
        step_usd, step_in, step_out, error = 0.0, 0, 0, ""
        if result is not None:
            name = self.model_names[tier]
            step_usd = self.ledger.charge_result(name, result, tag="step")
            self.budget.charge(name, step_usd)
            step_in, step_out = result.input_tokens, result.output_tokens
            self.steps += 1
            self.masked += int(masked)
            self.tiers.append(name)
            if result.error is not None:
                error = result.error
                self.errors += 1
                command, valid = "", False
            else:
                command, valid = parse_action(result.text, self.state.valid_actions)
                self.state = self.game.step(command)
                self.history = (self.history + [(command, self.state.observation)])[-self.cfg.history :]
            self.invalid += int(not valid)
            self.last_valid = float(valid)
            info.update(model=name, tier=tier, reply=result.text, game_action=command, action_valid=valid)
        exhausted = result is None and not self._quit
        if not self.state.over and result is not None:
            self._messages = self._prompt()
            exhausted = not self._affordable().any()
        terminated = self.state.over or exhausted or self._quit
        truncated = not terminated and self.steps >= self.cfg.max_steps
        self._over = terminated or truncated
        previous_text, self._text = self._text, self._router_text()
        info.update(
            action_mask=self.action_mask(),
            index=self._index,
            invalid_actions=self.invalid,
            masked_actions=self.masked,
            candidate_error=int(bool(error)),
            error=error,
            input_tokens=step_in,
            output_tokens=step_out,
            cost_usd=step_usd,
            episode_cost_usd=self.ledger.total_usd,
            expensive_calls=self.budget.expensive_calls,
            budget_cap=self.budget.cap,
            budget_left=self.budget.fraction_left,
            over_budget=bool(self.budget.over),
            budget_exhausted=bool(exhausted),
            score=self.state.score,
            success=bool(self.state.success),
            steps=self.steps,
            env_text=self._text[len(previous_text) :] if self._text.startswith(previous_text) else self._text,
            malformed=self.malformed,
        )
        reward = 0.0
        terms = {"success": 0.0, "cost": 0.0, "cost_usd": 0.0, "reference": 0.0, "format": 0.0}
        if self._over:
            reward, terms = self._terminal_reward()
            info["trajectory"] = self._record(reward, terms, exhausted)
            if self.cfg.mode == "text":
                info["episode"] = info["trajectory"] | {
                    "format_ok": self.malformed == 0,
                    "correct": float(self.state.success),
                    "routes": self.steps,
                }
        info["reward_terms"] = terms
        return self._observation(), reward, terminated, truncated, info

    @property
    def episode_over(self) -> bool:
        return self._over

    # -- budget ----------------------------------------------------------------------------------
    def _worst_case(self, tier: int) -> float:
        bound = self.count_tokens(self._messages)
        return worst_case_usd(self.descriptors[tier], bound, self.cfg.max_action_tokens)

    def _affordable(self) -> np.ndarray:
        return self.budget.mask(
            self.descriptors, self.count_tokens(self._messages), self.cfg.max_action_tokens
        )

    def action_mask(self) -> np.ndarray:
        """``bool [A]``: the tiers the budget can pay for now (all True when none can: the step then
        ends the episode without a call, and a sampler needs one valid action)."""
        if self._over:
            return np.ones(len(self.descriptors), dtype=bool)
        mask = self._affordable()
        return mask if mask.any() else np.ones_like(mask)

    # -- scoring ---------------------------------------------------------------------------------
    def _terminal_reward(self) -> tuple[float, dict[str, float]]:
        success = float(self.state.success)
        row, cost = self.row, self.ledger.total_usd
        if "cost_small" in row and "cost_large" in row:
            c_hat = boundary_cost([cost], [float(row["cost_small"])], [float(row["cost_large"])])[0]
        else:
            c_hat = sum(t in self.expensive for t in self.tiers) / max(len(self.tiers), 1)
        reference = 0.0
        lam = self.cfg.bopo.lam
        if self.cfg.bopo.reference_baseline and "success_small" in row and "success_large" in row:
            reference = reference_baseline(float(row["success_small"]), float(row["success_large"]), lam)
        turns = self.steps + int(self._quit)
        form = -self.cfg.format_penalty * self.malformed / turns if turns else 0.0
        reward = success - lam * c_hat - reference + form
        terms = {
            "success": success,
            "cost": c_hat,
            "cost_usd": -cost,
            "reference": -reference,
            "format": form,
        }
        return float(reward), terms

    def _record(self, reward: float, terms: Mapping[str, float], exhausted: bool) -> dict[str, Any]:
        return {
            "index": self._index,
            "id": self.row.get("id"),
            "game": self.task.game,
            "seed": self.task.seed,
            "success": bool(self.state.success),
            "failure": bool(self.state.failure),
            "score": self.state.score,
            "steps": self.steps,
            "tiers": list(self.tiers),
            "calls": {n: self.tiers.count(n) for n in self.model_names},
            "cost_usd": self.ledger.total_usd,
            "budget_kind": self.budget.kind,
            "budget_cap": self.budget.cap,
            "budget_used": self.budget.used,
            "over_budget": bool(self.budget.over),
            "budget_exhausted": bool(exhausted),
            "invalid_actions": self.invalid,
            "masked_actions": self.masked,
            "candidate_errors": self.errors,
            "malformed_replies": self.malformed,
            "reward_terms": dict(terms),
            "reward": reward,
        }

    # -- observations ----------------------------------------------------------------------------
    def _prompt(self) -> Messages:
        s = self.state
        return agent_messages(
            s.task, s.observation, s.valid_actions, self.history, self.cfg.max_actions_shown
        )

    def _observation(self) -> Any:
        if self.cfg.mode == "text":
            return self._text
        cfg, b = self.cfg, self.budget
        n_steps = max(self.steps, 1)
        expensive_share = sum(t in self.expensive for t in self.tiers) / n_steps
        spent = b.used / b.cap if b.cap > 0 else 0.0
        features = [
            self.steps / cfg.max_steps,
            self.invalid / cfg.max_steps,
            self.last_valid,
            self.state.score,
            expensive_share,
            spent,
            b.fraction_left,
            b.cap / max(cfg.budget.max_cap, 1e-12),
        ]
        return np.concatenate(
            [
                self.embed(f"{self.task.game} {self.state.task}", cfg.embed_dim),
                self.embed(self.state.observation, cfg.embed_dim),
                np.asarray(features, dtype=np.float32),
                self.action_mask().astype(np.float32),
            ]
        ).astype(np.float32)

    def router_prompt(self) -> Messages:
        """Text mode: the router's chat messages for the episode so far (system + transcript).

        The rollout driver's hook: it tokenises these once per episode after ``reset`` and then only
        appends the router's sampled turns and each step's ``info["env_text"]``.
        """
        return [{"role": "system", "content": ROUTER_SYSTEM}, {"role": "user", "content": self._text}]

    def _router_text(self) -> str:
        """Text mode: the router's transcript (task and tiers, then one block per step)."""
        if self.cfg.mode != "text":
            return ""
        lines = []
        if not self.steps:
            tiers = ", ".join(f"{i} = {n}" for i, n in enumerate(self.model_names, start=1))
            lines = [f"Task: {self.state.task}", f"Tiers: {tiers}"]
        last = f"> {self.history[-1][0]}\n" if self.history and self.steps else ""
        allowed = [str(i) for i, ok in enumerate(self.action_mask(), start=1) if ok]
        lines.append(
            f"{last}{self.state.observation.strip()}\n"
            f"Step {self.steps + 1}/{self.cfg.max_steps}, budget left {self.budget.fraction_left:.0%}, "
            f"allowed tiers: {', '.join(allowed)}. Tier:"
        )
        return (getattr(self, "_text", "") if self.steps else "") + "\n".join(lines) + "\n"
