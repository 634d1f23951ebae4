"""GRPO for LLM routers on TRL's ``GRPOTrainer``: the trainer's config and the TRL bridge.

Configured by ``conf/trainer/grpo.yaml`` (:class:`GRPOTrainerConfig`); driven by the recipe
:mod:`rl_router.recipes.llm_router_grpo`. Every TRL coupling lives in this file and goes through
TRL's public arguments only: ``rollout_func``, ``reward_funcs``, ``args`` and ``callbacks``.

:class:`TRLRollout` is TRL's ``rollout_func``. TRL's ``RepeatSampler`` hands it the prompts already
repeated ``num_generations`` times in a row; each prompt carries its row's ``question_id``, and
:func:`~rl_router.trainers.grpo_math.check_groups` refuses a batch whose groups mix questions
(Router-R1's GRPO grouped unrelated questions that shared a per-dataset index). The episodes are
played by :class:`rl_router.rollout.driver.RolloutDriver` (no TRL inside); this bridge only picks
the generation backend from the trainer and converts the typed
:class:`~rl_router.rollout.driver.RolloutResult` into TRL's dict: ``prompt_ids``,
``completion_ids``, ``logprobs`` (None without vLLM), ``env_mask`` and clean per-sample fields
(``answer``, ``correct``, ``format_ok``, ``cost_usd``, ``calls``, ``reward_terms`` ...) that TRL
forwards to the reward functions: :class:`EpisodeReward` (the env's reward, weight 1) and one
:class:`EpisodeTerm` per reward term (weight 0, logged on its own as ``train/reward/<term>``).

Two env families train through it. Router-R1 (:mod:`rl_router.recipes.llm_router_grpo`): the bridge
scores each batch's cost term with one normaliser and combines the reward. ``agent_steps`` text mode
(:mod:`rl_router.recipes.agent_steps_grpo`): the env's own terminal reward (BoPO, our
reconstruction) stands, so the bridge gets no normaliser and no reward combiner; the terms it logs
are :data:`AGENT_STEPS_TERMS`.

With a budget (``trainer.budget``, :class:`rewards.budget.BudgetConfig`) the objective is the same
Lagrangian as PPO's: :meth:`TRLRollout.score` adds ``-lam * usage / target`` to every episode's reward
(logged as the ``budget`` term) and then moves ``lam`` by projected dual ascent on the batch's mean
usage: an episode's dollars, or the share of its routes that went to the capped model. Unlike PPO's,
the measure is the *sampled* episodes' (a greedy replay of every batch would double the rollout
cost); ``lam`` is saved in every checkpoint with the cost window.

GPU notes (not testable on the CPU machines this was written on): ``trainer.use_vllm=true`` makes
each turn one call of TRL's own vLLM engine (``trainer.vllm_generation``, weights synced by TRL
before every rollout), with the stop strings and the per-turn token cap passed as vLLM sampling
parameters and vLLM's token logprobs returned for TRL's importance-sampling correction. Supported:
``vllm_mode=colocate`` with ``vllm_tensor_parallel_size=1`` (TRL's server mode and TP>1 gather
prompts across processes inside every call, which a multi-turn rollout whose processes take
different numbers of turns would deadlock). DeepSpeed ZeRO-3 has the same per-call collective in
HF generation: use DDP or ZeRO-2.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rewards.budget import BudgetConfig, BudgetPenalty, dual_ascent
from rewards.combine import RouterR1Reward
from rewards.cost import PercentileCostNormalizer
from rl_router.generation import (
    STOP_STRINGS,
    HFTurnGenerator,
    TurnGenerator,
    VLLMTurnGenerator,
    eos_token_ids,
)
from rl_router.pool.types import ModelDescriptor
from rl_router.rollout.driver import RolloutDriver, RolloutResult, tagged_prompt
from rl_router.trainers.grpo_math import check_groups, episode_stats, exploration_prefixes
from rl_router.trainers.sft import SFT_ROUTES

if TYPE_CHECKING:
    from transformers import TrainerCallback

LOSS_TYPES = ("grpo", "dapo", "dr_grpo", "bnpo", "cispo", "sapo")
SCALE_REWARDS = ("group", "batch", "none")
REWARD_TERMS = ("format", "outcome", "cost", "cost_usd")  # the env's info["reward_terms"] keys
AGENT_STEPS_TERMS = ("success", "cost", "cost_usd", "reference", "format")  # agent_steps' terms
BUDGET_TERM = "budget"  # the Lagrangian's term, set by TRLRollout.score under trainer.budget
ROLLOUT_STATE = "rollout_state.json"  # the cost normaliser's window, saved in every TRL checkpoint


@dataclass
class GRPOTrainerConfig:
    """Hyperparameters of GRPO for LLM routers (Hydra schema ``trainer/grpo_schema``).

    The optimisation defaults are Router-R1's (lr 1e-6, 64 questions x 5 samples per step, temperature
    1.0, ~225 steps, KL 0.001); the hardware flags are CPU ones (float32, no vLLM, no bf16), which
    ``experiment=router_r1`` switches for a GPU cluster.
    """

    model: str = "smollm2-135m-instruct"  # router LLM: zoo name, local path or hub id
    dtype: str = "float32"  # parameter dtype: float32 on CPU, bfloat16 on GPU
    lr: float = 1.0e-6  # AdamW learning rate (Router-R1: 1e-6), constant schedule
    max_steps: int = 225  # optimizer steps; one step = one generation batch (Router-R1: ~225)
    questions_per_step: int = 64  # distinct questions per step (Router-R1's batch: 64)
    num_generations: int = 5  # trajectories per question: GRPO's group size G (Search-R1's GRPO: 5)
    micro_batch_size: int = 8  # samples per forward/backward; gradient accumulation fills the step
    temperature: float = 1.0  # router sampling temperature (Router-R1: 1.0)
    top_p: float = 1.0  # nucleus sampling mass of the router
    top_k: int = 0  # top-k of the router's sampling; 0 = off
    max_turn_tokens: int = 512  # new tokens of one router turn
    max_completion_tokens: int = 4096  # tokens of a whole trajectory (router turns + information blocks)
    beta: float = 0.001  # KL weight to the reference (Router-R1: 0.001); 0 loads no reference model
    epsilon: float = 0.2  # PPO-style ratio clip
    loss_type: str = "dapo"  # TRL loss: dapo (token mean over the batch, verl's default), grpo, dr_grpo ...
    scale_rewards: str = "group"  # divide advantages by the group's reward std ("group"), "batch" or "none"
    max_grad_norm: float = 1.0  # global gradient-norm clip
    weight_decay: float = 0.01  # AdamW weight decay
    gradient_checkpointing: bool = False  # trade compute for memory (GPU runs of 3B routers)
    use_cpu: bool = True  # train on CPU (TRL/transformers `use_cpu`)
    bf16: bool = False  # bfloat16 mixed precision (GPU only)
    use_vllm: bool = False  # generate router turns with TRL's vLLM engine (GPU only; see module notes)
    vllm_mode: str = "colocate"  # TRL vLLM mode; only colocate suits multi-turn rollouts
    vllm_gpu_memory_utilization: float = 0.3  # GPU memory share of the colocated vLLM engine
    vllm_max_model_length: int | None = None  # vLLM context; None: the model's (set prompt + completion)
    generation_chunk: int = 64  # HF generation: rows per generate call (bounds memory)
    sft_steps: int = 0  # SFT warm-start steps before GRPO (0: none; tiny routers need it)
    sft_lr: float = 1.0e-4  # SFT learning rate
    sft_batch_size: int = 4  # SFT trajectories per step
    sft_routes: str = "cheapest"  # the warm start's route: "cheapest" right candidate, or "every_correct"
    # in every group, one sample per candidate opens its first turn with the warm start's route to
    # it (grpo_math.exploration_prefixes): a route the policy never samples still gets a gradient.
    # Forced tokens carry no sampling logprobs, so TRL's vLLM importance correction gets none (untested)
    explore_routes: bool = False
    train_limit: int | None = None  # keep the first N training questions (smoke runs)
    eval_data: Any = None  # a data option for the held-out questions; None: the data option's own split
    eval_limit: int | None = None  # evaluate on the first N held-out questions; None: all
    eval_batch_size: int = 16  # held-out questions per greedy rollout batch
    eval_warm_start: bool = True  # also evaluate the SFT warm start (eval_sft/): what GRPO added to it
    checkpoint_every: int = 50  # optimizer steps between checkpoints (TRL/HF checkpoints)
    keep_checkpoints: int = 3  # newest checkpoints kept on disk
    logging_steps: int = 1  # optimizer steps between metric rows
    log_rollouts: bool = True  # write every training episode to <run>/rollouts.jsonl
    progress: bool = True  # show TRL's progress bar and print one line per logged step
    seed: int = 0  # seeds python, numpy, torch, TRL's sampler and the generation
    budget: BudgetConfig = field(default_factory=BudgetConfig)  # a cap on spend (Lagrangian); off by default

    @property
    def generation_batch_size(self) -> int:
        """Trajectories per optimizer step (``questions_per_step * num_generations``)."""
        return self.questions_per_step * self.num_generations

    def __post_init__(self) -> None:
        for name in (
            "max_steps",
            "questions_per_step",
            "micro_batch_size",
            "max_turn_tokens",
            "eval_batch_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"trainer.{name}={getattr(self, name)}: must be at least 1")
        if self.num_generations < 2:
            raise ValueError(
                f"trainer.num_generations={self.num_generations}: GRPO compares at least 2 per group"
            )
        if self.generation_batch_size % self.micro_batch_size:
            raise ValueError(
                f"trainer.micro_batch_size={self.micro_batch_size} must divide questions_per_step * "
                f"num_generations = {self.generation_batch_size}"
            )
        if self.max_completion_tokens < self.max_turn_tokens + 1:
            raise ValueError(
                f"trainer.max_completion_tokens={self.max_completion_tokens} must exceed max_turn_tokens="
                f"{self.max_turn_tokens}: a trajectory holds at least one turn and its EOS"
            )
        if self.lr <= 0 or self.sft_lr <= 0:
            raise ValueError(f"trainer.lr={self.lr}, sft_lr={self.sft_lr}: learning rates must be positive")
        if self.temperature <= 0:
            raise ValueError(f"trainer.temperature={self.temperature}: GRPO samples; use a positive value")
        if not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ValueError(
                f"trainer.top_p={self.top_p}, top_k={self.top_k}: need 0 < top_p <= 1, top_k >= 0"
            )
        if self.beta < 0 or self.epsilon <= 0:
            raise ValueError(f"trainer.beta={self.beta}, epsilon={self.epsilon}: need beta >= 0, epsilon > 0")
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"trainer.loss_type={self.loss_type!r}: choose one of {LOSS_TYPES}")
        if self.scale_rewards not in SCALE_REWARDS:
            raise ValueError(f"trainer.scale_rewards={self.scale_rewards!r}: choose one of {SCALE_REWARDS}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"trainer.dtype={self.dtype!r}: use float32 (CPU) or bfloat16 (GPU)")
        if self.use_cpu and (self.bf16 or self.use_vllm):
            raise ValueError("trainer.use_cpu=true runs without bf16 and vLLM: set bf16=false use_vllm=false")
        if self.use_vllm and self.vllm_mode != "colocate":
            raise ValueError(
                f"trainer.vllm_mode={self.vllm_mode!r}: multi-turn rollouts need colocate (server mode "
                "gathers prompts across processes in every call; processes take different numbers of turns)"
            )
        if self.sft_routes not in SFT_ROUTES:
            raise ValueError(f"trainer.sft_routes={self.sft_routes!r}: choose one of {SFT_ROUTES}")
        if self.sft_steps < 0 or self.sft_batch_size < 1:
            raise ValueError(
                f"trainer.sft_steps={self.sft_steps}, sft_batch_size={self.sft_batch_size}: invalid"
            )
        for name in ("train_limit", "eval_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"trainer.{name}={getattr(self, name)}: use a positive count or null")
        if self.checkpoint_every < 1 or self.keep_checkpoints < 1 or self.logging_steps < 1:
            raise ValueError(
                "trainer.checkpoint_every, keep_checkpoints and logging_steps must be at least 1"
            )


# ------------------------------------------------------------------------------------- rollout bridge
def grpo_dataset(rows: Sequence[Mapping[str, Any]], descriptors: Sequence[ModelDescriptor], max_routes: int):
    """TRL's training dataset: one conversational ``prompt`` per row (:func:`tagged_prompt`)."""
    import datasets

    return datasets.Dataset.from_dict({"prompt": [tagged_prompt(r, descriptors, max_routes) for r in rows]})


def trl_rollout_dict(result: RolloutResult) -> dict[str, Any]:
    """TRL's ``rollout_func`` output for a typed rollout result (extra keys reach the reward functions)."""
    episodes = result.episodes
    return {
        "prompt_ids": result.prompt_ids,
        "completion_ids": result.completion_ids,
        "logprobs": result.logprobs,
        "env_mask": result.env_mask,
        "question_id": result.question_ids,
        "answer": [e.get("answer") or "" for e in episodes],
        "correct": [float(e["correct"]) for e in episodes],
        "format_ok": [bool(e["format_ok"]) for e in episodes],
        "cost_usd": [float(e["cost_usd"]) for e in episodes],
        "calls": [int(e["routes"]) for e in episodes],
        "truncated": [bool(e["truncated"]) for e in episodes],
        "episode_reward": [float(e["reward"]) for e in episodes],
        "reward_terms": [dict(e["reward_terms"]) for e in episodes],
    }


class TRLRollout:
    """TRL's ``rollout_func``: checks the groups, plays them with the driver, scores the batch, converts.

    A generation batch is normalised as one batch: the driver's envs leave the cost term to this
    bridge (they are built with ``defer_cost=True``), and :meth:`score` adds every episode's cost to
    the window with one :meth:`~rewards.cost.PercentileCostNormalizer.score_batch` call, so all
    samples of a group (and of the batch) are scored against the same percentiles.

    Args:
        driver: Plays the episodes (its env maker shares the pool; its envs defer the cost term).
        normalizer: The cost normaliser every batch is scored against (saved with every checkpoint);
            None with ``reward`` None.
        reward: Router-R1's reward at the env's ``alpha`` (``RouterR1Reward(alpha=env.alpha)``): the
            one place that combines an episode's format, outcome and cost terms. None: the env's own
            episode reward stands (``agent_steps``).
        generation: :class:`~rl_router.generation.HFTurnGenerator` options for training
            (``temperature``, ``top_p``, ``top_k``, ``chunk``).
        budget: A cap on spend (``trainer.budget``); None or off: the plain reward.
        multiplier: The budget's ``lam`` to start from (a resumed run's).
        route_openings: ``trainer.explore_routes``: sample ``j`` of every group starts its first turn
            with ``route_openings[j]`` (:func:`~rl_router.trainers.grpo_math.exploration_prefixes`);
            the budget's dual step then measures the other, free samples.
    """

    def __init__(
        self,
        driver: RolloutDriver,
        normalizer: PercentileCostNormalizer | None,
        reward: RouterR1Reward | None,
        generation: Mapping[str, Any] | None = None,
        budget: BudgetConfig | None = None,
        multiplier: float = 0.0,
        route_openings: Sequence[str] = (),
    ):
        if (normalizer is None) != (reward is None):
            raise ValueError("give TRLRollout both a cost normaliser and a reward (Router-R1) or neither")
        self.driver = driver
        self.normalizer = normalizer
        self.reward = reward
        self.generation = dict(generation or {})
        self.budget = budget if budget is not None and budget.enabled else None
        self.penalty = BudgetPenalty(self.budget.target) if self.budget else None
        self.multiplier = float(multiplier)  # the budget's lam
        self.route_openings = list(route_openings)  # forced first-turn openings, one per candidate
        self.budget_metrics: dict[str, float] = {}  # the last dual step's, for the logger
        self.episodes: list[dict[str, Any]] = []  # finished episodes since the last take_episodes()
        self.seconds = 0.0

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        num_generations = trainer.num_generations if trainer.model.training else trainer.num_generations_eval
        with self.generator(trainer) as generate:
            return self.play(prompts, generate, num_generations)

    def play(self, prompts: list[Any], generate: TurnGenerator, num_generations: int) -> dict[str, Any]:
        """One batch: the group check, the episodes, TRL's dict.

        Raises:
            GroupOrderError: A group of ``num_generations`` consecutive prompts mixes questions.
        """
        from rl_router.rollout.driver import question_id_of

        check_groups([question_id_of(p) for p in prompts], num_generations)
        prefixes = exploration_prefixes(len(prompts), num_generations, self.route_openings)
        result = self.driver.play(prompts, generate, first_turn_prefixes=prefixes)
        self.score(result.episodes)
        self.seconds += result.seconds
        self.episodes += result.episodes
        return trl_rollout_dict(result)

    def score(self, episodes: Sequence[dict[str, Any]]) -> None:
        """Score a batch of episode records' cost term over the whole batch, and their reward.

        Sets each record's ``reward_terms["cost"]`` and ``reward`` in place, so the logged records
        and TRL's columns hold the same numbers.

        Without a reward combiner (``agent_steps``) the env's own rewards stand; only a budget is added.

        Raises:
            ValueError: An env scored its own cost term (built without ``defer_cost``): its episode
                is in the window already, and scoring the batch would add it twice.
        """
        if self.reward is None:
            if self.budget is not None:
                self.charge_budget(episodes)
            return
        if any(e["reward_terms"].get("cost") is not None for e in episodes):
            raise ValueError(
                "the envs scored their own cost term: build them with defer_cost=True "
                "(env_factory(..., defer_cost=True)) so the bridge scores each batch as one"
            )
        cost_terms = self.normalizer.score_batch([e["cost_usd"] for e in episodes])
        rewards = self.reward(
            [e["completion"] for e in episodes],
            format_ok=[e["format_ok"] for e in episodes],
            correct=[e["correct"] for e in episodes],
            cost_term=cost_terms,
        )
        for episode, cost_term, reward in zip(episodes, cost_terms, rewards, strict=True):
            episode["reward_terms"]["cost"] = cost_term
            episode["reward"] = reward
        if self.budget is not None:
            self.charge_budget(episodes)

    def budget_usage(self, episode: Mapping[str, Any]) -> float:
        """What one episode used of the budget: its dollars, or its routes' share to the capped model."""
        assert self.budget is not None
        if self.budget.model is None:
            return float(episode["cost_usd"])
        calls = episode["calls"]
        total = sum(calls.values())
        return calls.get(self.budget.model, 0) / total if total else 0.0

    def charge_budget(self, episodes: Sequence[dict[str, Any]]) -> None:
        """Add ``-lam * usage / target`` to each episode's reward, then take the dual step on the batch."""
        assert self.budget is not None and self.penalty is not None
        usage = [self.budget_usage(e) for e in episodes]
        terms = self.penalty([e["completion"] for e in episodes], usage=usage, multiplier=self.multiplier)
        for episode, term in zip(episodes, terms, strict=True):
            episode["reward_terms"]["budget"] = term
            episode["reward"] = float(episode["reward"]) + float(term)
        free = [u for u, e in zip(usage, episodes, strict=True) if not e.get("forced_prefix")] or usage
        measured = float(sum(free) / len(free)) if free else 0.0  # the policy's own routes
        self.multiplier = dual_ascent(self.multiplier, measured, self.budget.target, self.budget.lambda_lr)
        self.budget_metrics = {"train/budget/lambda": self.multiplier, "train/budget/measured": measured}

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs: the cost window and the budget's ``lam`` (None without a budget)."""
        return {
            "normalizer": None if self.normalizer is None else self.normalizer.state_dict(),
            "budget": None if self.budget is None else {"lambda": self.multiplier},
        }

    @contextlib.contextmanager
    def generator(self, trainer: Any) -> Iterator[TurnGenerator]:
        """The trainer's generation backend for one rollout (vLLM, or the unwrapped model's generate)."""
        tokenizer = self.driver.tokenizer
        if trainer.args.use_vllm:
            model = trainer.accelerator.unwrap_model(trainer.model)
            yield VLLMTurnGenerator(trainer.vllm_generation, tokenizer, eos_token_ids(model, tokenizer))
            return
        from trl.models import unwrap_model_for_generation

        with unwrap_model_for_generation(
            trainer.model_wrapped,
            trainer.accelerator,
            gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs,
        ) as model:
            yield HFTurnGenerator(model, tokenizer, **self.generation)

    def take_episodes(self) -> list[dict[str, Any]]:
        """The episodes finished since the last call (for logging), and forget them."""
        episodes, self.episodes = self.episodes, []
        return episodes


# ------------------------------------------------------------------------------------- rewards
class EpisodeReward:
    """The episode reward (Router-R1: -1 on a format violation, else ``correct * ((1-α) + α·C)``).

    Reads the rollout's ``episode_reward`` column: :meth:`TRLRollout.score` already scored the
    batch with the shared cost normaliser, so scoring again here could only disagree.

    Example:
        >>> EpisodeReward()(["a", "b"], episode_reward=[0.7, -1.0])
        [0.7, -1.0]
    """

    def __init__(self, name: str = "router_r1") -> None:  # "bopo" for agent_steps
        self.name = name
        self.__name__ = name  # TRL names a reward function's metric after `__name__`

    def __call__(
        self, completions: Sequence[Any], episode_reward: Sequence[float], **kwargs: Any
    ) -> list[float]:
        return [float(r) for r in episode_reward]


class EpisodeTerm:
    """One reward term of the env's ``info["reward_terms"]``, passed to TRL with weight 0 to log it.

    Example:
        >>> EpisodeTerm("outcome")(["a"], reward_terms=[{"format": 0.0, "outcome": 1.0}])
        [1.0]
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.__name__ = name  # TRL logs it as rewards/<name>/mean, renamed train/reward/<name>

    def __call__(
        self, completions: Sequence[Any], reward_terms: Sequence[Mapping[str, float]], **kwargs: Any
    ) -> list[float | None]:
        return [None if t.get(self.name) is None else float(t[self.name]) for t in reward_terms]


def reward_functions(
    budget: bool = False, terms: Sequence[str] = REWARD_TERMS, name: str = "router_r1"
) -> tuple[list[Any], list[float]]:
    """TRL's ``reward_funcs`` and ``reward_weights``: the episode reward, then each term at weight 0.

    With ``budget`` the Lagrangian's ``budget`` term is logged too (it is already in the reward).
    ``terms`` / ``name``: the env family's reward terms and the episode reward's metric name
    (``AGENT_STEPS_TERMS`` / ``"bopo"`` for ``agent_steps``).
    """
    terms = (*terms, BUDGET_TERM) if budget else tuple(terms)
    return [EpisodeReward(name), *(EpisodeTerm(t) for t in terms)], [1.0] + [0.0] * len(terms)


# ------------------------------------------------------------------------------------- logging
def rename_trl_metrics(logs: Mapping[str, Any]) -> dict[str, float]:
    """TRL's log keys in this project's ``<split>/<group>/<name>`` form (numbers only).

    >>> rename_trl_metrics({"reward": 0.5, "rewards/format/mean": -0.25, "completions/max_length": 9})
    {'train/reward/total': 0.5, 'train/reward/format': -0.25, 'rollout/completion/max_length': 9}
    """
    out = {}
    for key, value in logs.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        parts = key.split("/")
        if key == "reward":
            name = "train/reward/total"
        elif key == "reward_std":
            name = "train/reward/std"
        elif parts[0] == "rewards" and len(parts) == 3:
            name = f"train/reward/{parts[1]}" if parts[2] == "mean" else f"train/reward_{parts[2]}/{parts[1]}"
        elif parts[0] == "completions":
            name = "rollout/completion/" + "/".join(parts[1:])
        else:
            name = f"train/{key}"
        out[name] = value
    return out


def metrics_callback(
    rollout: TRLRollout,
    model_names: Sequence[str],
    logger: Any,
    progress: bool,
    rollouts_path: Path | None = None,
) -> TrainerCallback:
    """A TRL callback: renamed TRL metrics + rollout statistics to our logger; cost window to checkpoints.

    Its ``history`` holds every logged row (the bench prints the reward curve from it). With
    ``rollouts_path``, every training episode is appended there as one JSON line (the step, the
    question id, the router's completion with its information blocks, the calls, the answer, its
    score, cost, format violations and reward): what the router actually did, step by step.
    """
    from transformers import TrainerCallback

    class MetricsBridge(TrainerCallback):
        def __init__(self) -> None:
            self.history: list[dict[str, float]] = []

        def on_log(
            self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kw: Any
        ):
            metrics = rename_trl_metrics(logs or {})
            episodes = rollout.take_episodes()
            metrics.update(episode_stats(episodes, model_names))
            if rollouts_path is not None and episodes:
                with rollouts_path.open("a") as f:
                    for episode in episodes:
                        record = {k: v for k, v in episode.items() if k not in ("prompt", "index")}
                        f.write(json.dumps({"step": state.global_step, **record}) + "\n")
            metrics.update(rollout.budget_metrics)
            metrics["rollout/seconds"] = rollout.seconds
            rollout.seconds = 0.0
            logger.log(metrics, state.global_step)
            self.history.append({"step": state.global_step, **metrics})
            if progress and "train/reward/total" in metrics:
                shares = " ".join(
                    f"{n}={metrics.get(f'rollout/route_share/{n}', 0.0):.2f}" for n in model_names
                )
                print(
                    f"step {state.global_step}: reward {metrics['train/reward/total']:+.3f} "
                    f"format {metrics.get('rollout/format_valid', math.nan):.2f} "
                    f"acc {metrics.get('rollout/accuracy', math.nan):.2f} "
                    f"$/q {metrics.get('rollout/cost_usd', math.nan):.2e} "
                    f"calls {metrics.get('rollout/calls', math.nan):.2f} routes[{shares}]",
                    flush=True,
                )

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir() and rollout.normalizer is not None:
                (folder / ROLLOUT_STATE).write_text(json.dumps(rollout.state_dict()))

    return MetricsBridge()


# ------------------------------------------------------------------------------------- TRL arguments
def grpo_args(
    cfg: GRPOTrainerConfig,
    output_dir: Path,
    terms: Sequence[str] = REWARD_TERMS,
    stops: Sequence[str] = STOP_STRINGS,
) -> Any:
    """TRL's ``GRPOConfig`` for one generation batch per optimizer step.

    ``terms``: the env family's reward terms (one weight each); ``stops``: where a router turn ends.
    """
    from trl import GRPOConfig

    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_step = cfg.micro_batch_size * world
    if cfg.generation_batch_size % per_step:
        raise ValueError(
            f"questions_per_step * num_generations = {cfg.generation_batch_size} is not a multiple of "
            f"micro_batch_size * processes = {per_step}"
        )
    accumulation = cfg.generation_batch_size // per_step
    vllm_kwargs = {
        "stop": list(stops),
        "include_stop_str_in_output": True,
        "max_tokens": cfg.max_turn_tokens,
    }
    _, weights = reward_functions(cfg.budget.enabled, terms)
    return GRPOConfig(
        output_dir=str(output_dir),
        learning_rate=cfg.lr,
        lr_scheduler_type="constant",
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.micro_batch_size,
        gradient_accumulation_steps=accumulation,
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        reward_weights=weights,
        disable_dropout=True,
        gradient_checkpointing=cfg.gradient_checkpointing,
        model_init_kwargs={"dtype": cfg.dtype},
        use_cpu=cfg.use_cpu,
        bf16=cfg.bf16,
        use_vllm=cfg.use_vllm,
        vllm_mode=cfg.vllm_mode,
        vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
        vllm_max_model_length=cfg.vllm_max_model_length,
        generation_kwargs=vllm_kwargs if cfg.use_vllm else None,
        save_strategy="steps",
        save_steps=cfg.checkpoint_every,
        save_total_limit=cfg.keep_checkpoints,
        logging_steps=cfg.logging_steps,
        report_to="none",
        disable_tqdm=not cfg.progress,
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=0,
    )
