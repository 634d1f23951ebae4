"""``memory_tiers``: route each memory module of a query to a cost tier (BudgetMem on LoCoMo).

Description:
    One episode is one question over one long conversation. The conversation's chunks (256 tokens
    each, :mod:`rl_router.data.locomo`) are ranked by the fixed sentence encoder and the top ``top_k``
    become the query's memory (retrieval is not routed). Five modules then run in order,
    ``filter -> entity -> temporal -> topic -> summary`` (:mod:`envs.memory_modules`), and before
    each the router picks its tier: Low, Mid or High, one decision per step, so an episode is five
    steps and a joint action is one of 3^5 = 243. After the summary a fixed answer model answers
    from it and the episode ends.

Action Space:
    ``Discrete(3)``: the tier (0 Low, 1 Mid, 2 High) of the module about to run.

Observation Space:
    ``Box(-1, 1, (2 * D + 5,), float32)``: the question's embedding, the embedding of the text the module
    about to run will read, and a one-hot of which module it is (the policy turns it into a learned
    module-descriptor embedding). ``D`` is the encoder's dimension (384).

Rewards:
    0 on the first four steps. On the last, BudgetMem's ``r = r_task + lam * alpha * r_cost``
    (:class:`rewards.combine.BudgetMemReward`): ``r_task`` LoCoMo's F1 for the question's category
    (:mod:`rewards.locomo`; multi-answer F1 for category 1) or, with ``task_reward=judge``, a
    judge model's yes/no through the pool; ``r_cost`` the percentile-normalised sqrt of the
    modules' dollars in a rolling window (1 = cheap); ``alpha`` the running ``std(r_task) /
    std(r_cost)``. Dollars come from the cost ledger (:class:`rewards.ledger.CostLedger`): every
    module call charged input and output tokens at its model's list price, cache hits included.
    The fixed answer model's (and judge's) calls are charged on the ledger but not in ``r_cost``:
    they are the same whatever the router picks, up to the summary's length.

Episode End:
    Terminated after the fifth decision (the summary's tier). Never truncated.

Arguments:
    See :class:`MemoryTiersConfig`; at run time also ``pool`` (serving the LLM tiers, an LLM answer
    model and the judge), ``examples`` (LoCoMo rows with ``chunks``), and optionally a shared
    ``normalizer`` / ``scale`` (one window for every copy of the env), ``encode`` (the encoder, else
    ``encoder`` names one) and ``runner`` (a shared :class:`~envs.memory_modules.ModuleRunner`, so
    copies share the memo of local calls and batch their calls through one object).

Info keys:
    Every step: ``action_mask`` (int8 [3], all ones), ``index``, ``module`` (the module the next
    action routes), and after a step ``routed`` (the module just run), ``tier``, ``model``,
    ``candidate_error``, ``cost_usd`` (module dollars so far). The last step adds ``reward_terms``
    (``task``, ``f1``, ``judge``, ``cost``, ``cost_usd``) and ``episode`` (id, category, tiers,
    answer, f1, judge, cost_usd and module_usd (dollars by module), answer_cost_usd, calls and cache
    hits by module, module outputs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.memory_modules import (
    MODULES,
    TIERS,
    CachedEncoder,
    Encoder,
    HashingEncoder,
    ModuleCall,
    ModuleOutput,
    ModuleRunner,
    TierModel,
    check_strategy,
)
from envs.row_order import RowOrder
from rewards.combine import BudgetMemReward
from rewards.cost import PercentileCostNormalizer, ScaleMatcher
from rewards.ledger import CostLedger
from rewards.locomo import locomo_f1
from rl_router.pool.types import CandidatePool, ModelDescriptor, Request

TASK_REWARDS = ("f1", "judge")
ENCODERS = ("minilm", "hashing")
StepReturn = tuple[np.ndarray, float, bool, bool, dict[str, Any]]


def _implementation_tiers() -> list[TierModel]:
    return [
        TierModel(kind="heuristic", model="heuristic", price=0.06),
        TierModel(kind="encoder", model="minilm-encoder", price=0.18),
        TierModel(kind="llm", model="smollm2-135m", max_tokens=64),
    ]


@dataclass
class MemoryTiersConfig:
    """Hyperparameters of :class:`MemoryTiersEnv` (Hydra schema ``env/memory_tiers_schema``)."""

    _target_: str = "envs.memory_tiers.MemoryTiersEnv"
    mode: str = "per_module"  # one tier decision per module, in order (the only mode; picks the recipe)
    strategy: str = "implementation"  # implementation | reasoning | capacity (BudgetMem's tiering axes)
    # Low, Mid, High: local implementations are priced here ($/1M tokens), LLMs by the pool
    tiers: list[TierModel] = field(default_factory=_implementation_tiers)
    # the fixed answer model: the extractive reader (kind encoder) or a pool LLM (kind llm)
    answer: TierModel = field(
        default_factory=lambda: TierModel(kind="encoder", model="extractive-reader", price=0.18)
    )
    top_k: int = 3  # chunks retrieved per question (fixed retrieval, not routed)
    lam: float = 0.0  # BudgetMem's lambda: weight of the cost term (0 = quality only)
    alpha: float | None = None  # a fixed scale instead of the running std ratio (the "no alpha" ablation)
    cost_window: int = 2000  # episodes in the windows of the cost percentiles and of alpha
    task_reward: str = "f1"  # f1 (LoCoMo's, by category) or judge (a pool model says yes / no)
    judge_model: str | None = None  # the pool model that judges answers; needed for task_reward=judge
    encoder: str = "minilm"  # minilm (all-MiniLM-L6-v2) or hashing (bag of words; tests)
    shuffle: bool = True  # visit questions in a seeded random order (False: dataset order)

    def __post_init__(self) -> None:
        self.tiers = [TierModel(**t) if isinstance(t, Mapping) else t for t in self.tiers]
        if isinstance(self.answer, Mapping):
            self.answer = TierModel(**self.answer)
        if self.mode != "per_module":
            raise ValueError(f"env.mode={self.mode!r}: memory_tiers has one mode, per_module")
        check_strategy(self.strategy, self.tiers)
        if self.answer.kind == "heuristic":
            raise ValueError("env.answer.kind=heuristic: use encoder (extractive reader) or llm")
        if self.top_k < 1:
            raise ValueError(f"env.top_k={self.top_k}: retrieve at least one chunk")
        if self.lam < 0:
            raise ValueError(f"env.lam={self.lam}: use 0 (quality only) or more (BudgetMem: 0 ... 0.9)")
        if self.cost_window < 2:
            raise ValueError(f"env.cost_window={self.cost_window}: needs at least 2 episodes")
        if self.task_reward not in TASK_REWARDS:
            raise ValueError(f"env.task_reward={self.task_reward!r}: choose one of {TASK_REWARDS}")
        if self.task_reward == "judge" and not self.judge_model:
            raise ValueError("env.task_reward=judge needs env.judge_model (a pool model name)")
        if self.encoder not in ENCODERS:
            raise ValueError(f"env.encoder={self.encoder!r}: choose one of {ENCODERS}")


def make_encoder(name: str) -> Encoder:
    """The fixed encoder a config names, memoised by text."""
    if name == "hashing":
        return CachedEncoder(HashingEncoder())
    from rl_router.embeddings import embed

    return CachedEncoder(lambda texts: embed(list(texts), progress=False))


def judge_request(model: str, question: str, gold: str, answer: str) -> Request:
    prompt = (
        "Is the answer correct for the question, given the gold answer? Reply yes or no.\n"
        f"Question: {question}\nGold answer: {gold}\nAnswer: {answer}\nCorrect:"
    )
    return Request(model, ({"role": "user", "content": prompt},))


class MemoryTiersEnv(gym.Env):
    """Pick Low / Mid / High for each of the five memory modules of a question (module docstring)."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        pool: CandidatePool,
        examples: Sequence[Mapping[str, Any]],
        normalizer: PercentileCostNormalizer | None = None,
        scale: ScaleMatcher | None = None,
        encode: Encoder | None = None,
        runner: ModuleRunner | None = None,
        **options: Any,
    ) -> None:
        cfg = MemoryTiersConfig(**options)
        if len(examples) == 0:
            raise ValueError("MemoryTiersEnv needs at least one example")
        if any("chunks" not in row for row in examples[:1]):
            raise ValueError("rows need `chunks` (the conversation's memory): use rl_router.data.locomo")
        self.cfg = cfg
        self.pool = pool
        self.examples = examples
        self.tiers = cfg.tiers
        self.encode = encode or (runner.encode if runner is not None else make_encoder(cfg.encoder))
        self.runner = runner or ModuleRunner(pool, self.encode)
        self.ledger = CostLedger(self._priced(pool))  # an unpriced model used here stops the run now
        self.normalizer = normalizer or PercentileCostNormalizer(window=cfg.cost_window)
        self.reward_fn = BudgetMemReward(
            lam=cfg.lam, alpha=cfg.alpha, scale=scale or ScaleMatcher(cfg.cost_window)
        )
        self.dim = int(self.encode(["memory"]).shape[1])
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(2 * self.dim + len(MODULES),), dtype=np.float32)
        self.action_space = spaces.Discrete(len(TIERS))
        self._rows = RowOrder(len(examples), cfg.shuffle)
        self._index = 0
        self._t = 0
        self._texts: dict[str, str] = {}
        self._tiers_used: list[int] = []
        self._pending: ModuleCall | None = None

    def _priced(self, pool: CandidatePool) -> list[ModelDescriptor]:
        """Descriptors of every model this env charges; KeyError-free: a missing LLM is named."""
        known = {d.name: d for d in pool.descriptors}
        used: dict[str, ModelDescriptor] = {}
        for tier in [*self.tiers, self.cfg.answer]:
            local = tier.descriptor()
            if local is not None:
                used[local.name] = local
            elif tier.model in known:
                used[tier.model] = known[tier.model]
            else:
                raise ValueError(f"env tier model {tier.model!r} is not in the pool {sorted(known)}")
        if self.cfg.judge_model:
            if self.cfg.judge_model not in known:
                raise ValueError(
                    f"env.judge_model={self.cfg.judge_model!r} is not in the pool {sorted(known)}"
                )
            used[self.cfg.judge_model] = known[self.cfg.judge_model]
        return list(used.values())

    # -- gymnasium API ---------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        """Start the next question (``options={"index": i}`` picks row ``i``) and retrieve its memory."""
        super().reset(seed=seed)
        if seed is not None:
            self._rows.new_pass(self.np_random)
        if options and "index" in options:
            self._index = int(options["index"])
        else:
            self._index = self._rows.next(self.np_random)
        row = self.examples[self._index]
        chunks = list(row["chunks"])
        sims = self.encode(chunks) @ self.encode([row["question"]])[0]
        top = sorted(np.argsort(-sims, kind="stable")[: self.cfg.top_k].tolist())
        self._texts = {"memory": "\n".join(chunks[i] for i in top)}
        self._t, self._tiers_used, self._pending = 0, [], None
        self.ledger.reset()
        return self._observation(), self._info()

    def step(self, action: Any) -> StepReturn:
        return self.step_batch([self], [action])[0]

    @staticmethod
    def step_batch(envs: Sequence[MemoryTiersEnv], actions: Sequence[Any]) -> list[StepReturn]:
        """Step several envs: their module calls, then the answers of those that finished, each
        kind in ONE pool call (what a trainer with many live episodes calls)."""
        if len(envs) != len(actions):
            raise ValueError(f"{len(envs)} envs but {len(actions)} actions: give one action per env")
        if not envs:
            return []
        runner = envs[0].runner
        calls = [env._begin(action) for env, action in zip(envs, actions, strict=True)]
        infos = [env._apply(out) for env, out in zip(envs, runner.run(calls), strict=True)]
        done = [i for i, env in enumerate(envs) if env._t == len(MODULES)]
        answers = runner.run([envs[i]._answer_call() for i in done])
        judged = [envs[i]._judge_request(a.text) for i, a in zip(done, answers, strict=True)]
        verdicts = iter(envs[0].pool.generate([j for j in judged if j is not None]) if any(judged) else [])
        rewards = [0.0] * len(envs)
        for i, answer, request in zip(done, answers, judged, strict=True):
            verdict = next(verdicts) if request is not None else None
            rewards[i] = envs[i]._finish(answer, verdict, infos[i])
        return [
            (env._observation(), rewards[i], env._t == len(MODULES), False, infos[i])
            for i, env in enumerate(envs)
        ]

    # -- one step, in parts ----------------------------------------------------------------------
    def _begin(self, action: Any) -> ModuleCall:
        if self._t >= len(MODULES):
            raise RuntimeError("the episode is over: call reset() first")
        if not self.action_space.contains(int(action)):
            raise ValueError(f"action {action!r} is outside {self.action_space}")
        module = MODULES[self._t]
        row = self.examples[self._index]
        self._pending = ModuleCall(module, self.tiers[int(action)], row["question"], self._inputs(module))
        self._tiers_used.append(int(action))
        return self._pending

    def _inputs(self, module: str) -> dict[str, str]:
        if module == "filter":
            return {"memory": self._texts["memory"]}
        if module == "summary":
            return {k: self._texts.get(k, "") for k in ("filtered", "entity", "temporal", "topic")}
        return {"filtered": self._texts.get("filtered", "")}

    def _apply(self, out: ModuleOutput) -> dict[str, Any]:
        module = MODULES[self._t]
        self.ledger.charge_result(out.model, out.as_result(), tag=module)
        self._texts["filtered" if module == "filter" else module] = out.text
        self._t += 1
        self._pending = None
        return {
            "routed": module,
            "tier": TIERS[self._tiers_used[-1]],
            "model": out.model,
            "candidate_error": int(out.error is not None),
            **self._info(),
        }

    def _answer_call(self) -> ModuleCall:
        row = self.examples[self._index]
        return ModuleCall(
            "answer", self.cfg.answer, row["question"], {"summary": self._texts.get("summary", "")}
        )

    def _judge_request(self, answer: str) -> Request | None:
        if not self.cfg.judge_model:
            return None
        row = self.examples[self._index]
        return judge_request(self.cfg.judge_model, row["question"], row["answer"], answer)

    def _finish(self, answer: ModuleOutput, verdict: Any, info: dict[str, Any]) -> float:
        """Charge the answer (and judge), score the episode, and fill ``info``; returns the reward."""
        row = self.examples[self._index]
        module_usd = self.module_cost_usd()
        self.ledger.charge_result(answer.model, answer.as_result(), tag="answer")
        judge = None
        if verdict is not None:
            self.ledger.charge_result(self.cfg.judge_model, verdict, tag="judge")
            judge = float(verdict.ok and verdict.text.strip().lower().startswith("yes"))
        f1 = locomo_f1([answer.text], golden_answers=[row["golden_answers"]], category=[row["category"]])[0]
        f1 = 0.0 if f1 is None else float(f1)
        task = judge if self.cfg.task_reward == "judge" else f1
        cost_term = self.normalizer.score_batch([module_usd])[0]
        reward = self.reward_fn([answer.text], task_reward=[task], cost_term=[cost_term])[0]
        self.reward_fn.update([task], [cost_term])
        by_tag = self.ledger.by_tag()
        info["reward_terms"] = {
            "task": task,
            "f1": f1,
            "judge": judge,
            "cost": cost_term,
            "cost_usd": -module_usd,
        }
        info["episode"] = {
            "index": self._index,
            "id": row.get("id"),
            "category": row["category"],
            "tiers": [TIERS[t] for t in self._tiers_used],
            "answer": answer.text,
            "f1": f1,
            "judge": judge,
            "cost_usd": module_usd,
            "module_usd": {m: by_tag.get(m, {}).get("usd", 0.0) for m in MODULES},
            "answer_cost_usd": by_tag.get("answer", {}).get("usd", 0.0),
            "calls": {k: int(v["calls"]) for k, v in by_tag.items()},
            "cache_hits": {k: int(v["cache_hits"]) for k, v in by_tag.items()},
            "outputs": dict(self._texts),
            "reward": reward,
        }
        return float(reward)

    # -- helpers ---------------------------------------------------------------------------------
    def module_cost_usd(self) -> float:
        """Dollars of this episode's module calls so far (what ``r_cost`` normalises)."""
        return float(sum(c.usd for c in self.ledger.entries if c.tag in MODULES))

    def action_mask(self) -> np.ndarray:
        """``int8 [3]``: every tier is allowed (no hard budget in this env)."""
        return np.ones(len(TIERS), dtype=np.int8)

    def _info(self) -> dict[str, Any]:
        module = MODULES[self._t] if self._t < len(MODULES) else ""
        return {
            "action_mask": self.action_mask(),
            "index": self._index,
            "module": module,
            "cost_usd": self.module_cost_usd(),
        }

    def _observation(self) -> np.ndarray:
        row = self.examples[self._index]
        t = min(self._t, len(MODULES) - 1)
        text = "\n".join(self._inputs(MODULES[t]).values()) or "(empty)"
        onehot = np.zeros(len(MODULES), dtype=np.float32)
        if self._t < len(MODULES):
            onehot[t] = 1.0
        q, x = self.encode([row["question"], text])
        return np.concatenate([q, x, onehot]).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """RNG, data order and cursor (episodes are replayed from their start on resume)."""
        rng = self.np_random.bit_generator.state
        return {"rows": len(self.examples), "rng": rng, **self._rows.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state["rows"] != len(self.examples):
            raise ValueError(f"state of an env over {state['rows']} rows, not {len(self.examples)}")
        self.np_random = np.random.Generator(np.random.PCG64())
        self.np_random.bit_generator.state = state["rng"]
        self._rows.load_state_dict(state)

    def shared_state(self) -> dict[str, Any]:
        """Objects copies of the env share, so left out of :meth:`state_dict`."""
        return {"normalizer": self.normalizer, "scale": self.reward_fn.scale}
