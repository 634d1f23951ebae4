"""GRPO for LLM routers (Router-R1's multi-round protocol) on TRL's ``GRPOTrainer``: the TRL bridge.

Configured by ``conf/trainer/grpo.yaml`` (:class:`GRPOTrainerConfig`); launched by ``rl-router train``
when ``env.mode=multi_round`` (``experiment=router_r1`` on a GPU cluster, ``experiment=router_r1_tiny``
on a CPU). Every TRL coupling of the recipe lives in this file and goes through TRL's public
arguments only: ``rollout_func``, ``reward_funcs``, ``args`` and ``callbacks``.

The rollout (:class:`EnvRollout`, TRL's ``rollout_func``) plays the env for every sample of a batch.
TRL's ``RepeatSampler`` hands it the prompts already repeated ``num_generations`` times in a row;
each prompt message carries its row's ``question_id``, and :func:`~rl_router.trainers.grpo_math.check_groups`
refuses a batch whose groups of ``num_generations`` consecutive samples mix questions (Router-R1's
GRPO grouped unrelated questions that shared a per-dataset index). Then, turn by turn:

1. the router LLM writes the next turn of every live episode in one batched generation (HF
   ``generate`` with left padding, or TRL's vLLM engine), stopping at ``</search>``, ``</answer>``
   or EOS;
2. :func:`envs.multi_llm_qa.batched_step` steps all live episodes at once: ONE ``pool.generate``
   call per turn carries every route of the batch;
3. the env's ``<information>`` block is tokenised and appended with ``env_mask`` 0 (router tokens
   get 1), so no gradient flows from candidate text.

An episode the env ends gets a policy EOS token; one that outgrows ``max_completion_tokens`` is
ended by the env as a format violation (reward -1) and left without EOS (TRL counts it clipped).
The rollout returns ``prompt_ids``, ``completion_ids``, ``logprobs`` (None without vLLM),
``env_mask`` and clean per-sample fields (``answer``, ``correct``, ``format_ok``, ``cost_usd``,
``calls``, ``reward_terms`` ...) that TRL forwards to the reward functions: :class:`EpisodeReward`
(the env's Router-R1 reward, weight 1) and one :class:`EpisodeTerm` per reward term (weight 0,
logged on its own as ``train/reward/<term>``).

:func:`train_llm_router` reads top to bottom: setup, data and pool, SFT warm start
(:mod:`rl_router.trainers.sft`), GRPO, evaluation on the held-out questions against each single
candidate, oracle and random (:mod:`rl_router.eval.llm_eval`; ``report.json`` / ``report.md`` /
``pareto.png``, resumable from ``eval/scored.jsonl``).

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
import dataclasses
import json
import logging
import math
import os
import pickle
import random
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from envs.multi_llm_qa import MultiLLMQAEnv, batched_step
from envs.router_r1_protocol import prompt_messages
from rewards.cost import PercentileCostNormalizer
from rl_router.pool.types import ModelDescriptor
from rl_router.trainers.grpo_math import STOP_STRINGS, check_groups, episode_stats, turn_end

if TYPE_CHECKING:
    from omegaconf import DictConfig
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

log = logging.getLogger(__name__)

LOSS_TYPES = ("grpo", "dapo", "dr_grpo", "bnpo", "cispo", "sapo")
SCALE_REWARDS = ("group", "batch", "none")
REWARD_TERMS = ("format", "outcome", "cost", "cost_usd")  # the env's info["reward_terms"] keys
ROLLOUT_STATE = "rollout_state.pkl"  # the cost normaliser's window, saved in every TRL checkpoint
SFT_DIR = "sft_model"  # the warm-started router (input of GRPO)
ROLLOUTS = "rollouts.jsonl"  # every training episode, one JSON line each (trainer.log_rollouts)


@dataclass
class GRPOTrainerConfig:
    """Hyperparameters of :func:`train_llm_router` (Hydra schema ``trainer/grpo_schema``).

    Defaults are CPU-sized; ``experiment=router_r1`` sets Router-R1's (lr 1e-6, 64 questions per
    step, temperature 1.0, 225 steps, KL 0.001).
    """

    model: str = "smollm2-135m-instruct"  # router LLM: zoo name, local path or hub id
    dtype: str = "float32"  # parameter dtype: float32 on CPU, bfloat16 on GPU
    lr: float = 1.0e-6  # AdamW learning rate (Router-R1: 1e-6), constant schedule
    max_steps: int = 225  # optimizer steps; one step = one generation batch (Router-R1: ~225)
    questions_per_step: int = 64  # distinct questions per step (Router-R1's batch: 64)
    num_generations: int = 5  # trajectories per question: GRPO's group size G
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


# ------------------------------------------------------------------------------------- turn generation
@dataclass
class Segment:
    """One generated router turn: its tokens, their sampling logprobs (vLLM only) and why it ended."""

    ids: list[int]
    logprobs: list[float | None] | None
    reason: str  # "stop" (</search> or </answer>), "eos" or "length"


class TurnGenerator(Protocol):
    """Writes the next router turn for a batch of contexts (prompt + trajectory so far, token ids)."""

    def __call__(self, contexts: list[list[int]], limits: list[int]) -> list[Segment]: ...


class StopOnStrings:
    """HF stopping criterion: a row stops once the tail of its generated text holds a stop string.

    Only the generated part is read (the context holds earlier turns' ``</search>``); the tail
    window is enough because a stop string of ``k`` characters spans at most ``k`` tokens.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, start: int, stops: Sequence[str] = STOP_STRINGS):
        self.tokenizer = tokenizer
        self.start = start
        self.stops = tuple(stops)
        self.window = max(len(s) for s in self.stops) + 2

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        tails = input_ids[:, self.start :][:, -self.window :]
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stops) for t in texts], device=input_ids.device)


class HFTurnGenerator:
    """Router turns from ``model.generate`` (left padding, batched in chunks, stop strings, EOS).

    Args:
        model: The router (already unwrapped for generation).
        tokenizer: Its tokenizer.
        sample: Sample (training) or decode greedily (evaluation).
        temperature, top_p, top_k: Sampling settings when ``sample``.
        chunk: Rows per ``generate`` call.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        sample: bool = True,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        chunk: int = 64,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.chunk = chunk
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": top_k}
        self.options = {
            **(sampling if sample else {"do_sample": False}),
            "eos_token_id": sorted(self.eos_ids),
            "pad_token_id": self.pad_id,
        }

    def __call__(self, contexts: list[list[int]], limits: list[int]) -> list[Segment]:
        out: list[Segment] = []
        for start in range(0, len(contexts), self.chunk):
            out += self._generate(contexts[start : start + self.chunk], limits[start : start + self.chunk])
        return out

    @torch.no_grad()
    def _generate(self, contexts: list[list[int]], limits: list[int]) -> list[Segment]:
        from transformers import GenerationConfig, StoppingCriteriaList

        width = max(len(c) for c in contexts)
        device = self.model.device
        input_ids = torch.tensor([[self.pad_id] * (width - len(c)) + c for c in contexts], device=device)
        attention = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in contexts], device=device)
        generated = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            generation_config=GenerationConfig(**self.options, max_new_tokens=max(limits)),
            stopping_criteria=StoppingCriteriaList([StopOnStrings(self.tokenizer, width)]),
        )[:, width:].tolist()
        segments = []
        for row, limit in zip(generated, limits, strict=True):
            end, reason = turn_end(row, limit, self.eos_ids, self._decode)
            segments.append(Segment(row[:end], None, reason))
        return segments

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


class VLLMTurnGenerator:
    """Router turns from TRL's colocated vLLM engine (``trainer.vllm_generation``), with logprobs.

    The stop strings and the per-turn cap reach vLLM as sampling parameters (``grpo_args`` puts
    them in ``generation_kwargs``); :func:`turn_end` still cuts each row to its own budget.
    """

    def __init__(self, vllm_generation: Any, tokenizer: PreTrainedTokenizerBase, eos_ids: set[int]) -> None:
        self.vllm_generation = vllm_generation
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids

    def __call__(self, contexts: list[list[int]], limits: list[int]) -> list[Segment]:
        if not contexts:
            return []
        _, completions, logprobs, _ = self.vllm_generation.generate(
            prompts=contexts, images=None, num_generations=1
        )
        segments = []
        for ids, lps, limit in zip(completions, logprobs, limits, strict=True):
            end, reason = turn_end(list(ids), limit, self.eos_ids, self._decode)
            segments.append(Segment(list(ids[:end]), [lp[0] for lp in lps[:end]], reason))
        return segments

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """The tokenizer's EOS plus every EOS of the model's generation config (Qwen has two)."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    if not ids:
        raise ValueError("the router tokenizer has no EOS token: trajectories must end on one")
    return ids


# ------------------------------------------------------------------------------------- rollout
@dataclass
class Trajectory:
    """A completion under construction: tokens, ``env_mask`` (1 = router, 0 = env) and logprobs."""

    ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    logprobs: list[float | None] = field(default_factory=list)

    def add(self, ids: Sequence[int], policy: bool, logprobs: Sequence[float | None] | None = None) -> None:
        self.ids += list(ids)
        self.mask += [int(policy)] * len(ids)
        # Env tokens are masked out of the loss; 0.0 keeps vLLM's importance ratio finite there.
        self.logprobs += list(logprobs) if logprobs is not None else [None if policy else 0.0] * len(ids)


def question_id_of(prompt: Sequence[Mapping[str, Any]]) -> str:
    """The row id a training prompt carries (set by :func:`grpo_dataset` on its last message)."""
    try:
        return str(prompt[-1]["question_id"])
    except (KeyError, IndexError, TypeError) as err:
        raise ValueError(
            "a GRPO prompt must be a message list whose last message holds `question_id` "
            "(build the dataset with rl_router.trainers.grpo.grpo_dataset)"
        ) from err


def tagged_prompt(
    row: Mapping[str, Any], descriptors: Sequence[ModelDescriptor], max_routes: int
) -> list[dict[str, str]]:
    """The router's prompt for a row (:func:`envs.router_r1_protocol.prompt_messages`), tagged with its id.

    The id rides on the message because TRL's ``rollout_func`` receives prompts only; it lets the
    rollout find each sample's row and check that TRL's groups hold one question each. Chat
    templates read ``role`` and ``content`` only.
    """
    message = prompt_messages(row, descriptors, max_routes)[0]
    return [{**message, "question_id": str(row["id"])}]


def grpo_dataset(rows: Sequence[Mapping[str, Any]], descriptors: Sequence[ModelDescriptor], max_routes: int):
    """TRL's training dataset: one conversational ``prompt`` per row (:func:`tagged_prompt`)."""
    import datasets

    return datasets.Dataset.from_dict({"prompt": [tagged_prompt(r, descriptors, max_routes) for r in rows]})


class EnvRollout:
    """TRL's ``rollout_func``: plays the multi_round env for every sample of a batch (module docstring).

    Args:
        make_env: Builds an env over a one-row list (``make_env(row)``), sharing the pool and the
            cost normaliser; one fresh env per episode.
        rows: The dataset rows, with unique ``id`` values.
        tokenizer: The router's tokenizer (chat template, EOS, information blocks).
        max_turn_tokens: New tokens per router turn.
        max_completion_tokens: Tokens per trajectory (router and env tokens together).
        normalizer: The cost normaliser ``make_env`` shares (saved with every checkpoint).
        generation: ``HFTurnGenerator`` options for training (``temperature``, ``top_p``, ``top_k``,
            ``chunk``).
    """

    def __init__(
        self,
        make_env: Callable[[Mapping[str, Any]], MultiLLMQAEnv],
        rows: Sequence[Mapping[str, Any]],
        tokenizer: PreTrainedTokenizerBase,
        max_turn_tokens: int,
        max_completion_tokens: int,
        normalizer: PercentileCostNormalizer | None = None,
        generation: Mapping[str, Any] | None = None,
    ) -> None:
        self.make_env = make_env
        self.rows = {str(row["id"]): row for row in rows}
        if len(self.rows) != len(rows):
            raise ValueError("dataset rows share ids: the rollout finds each sample's row by its id")
        self.tokenizer = tokenizer
        self.max_turn_tokens = max_turn_tokens
        self.max_completion_tokens = max_completion_tokens
        self.generation = dict(generation or {})
        self.normalizer = normalizer
        self.episodes: list[dict[str, Any]] = []  # finished episodes since the last take_episodes()
        self.seconds = 0.0
        self._prompt_ids: dict[str, list[int]] = {}

    # -- TRL's entry point -----------------------------------------------------------------------
    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        training = trainer.model.training
        num_generations = trainer.num_generations if training else trainer.num_generations_eval
        with self.generator(trainer) as generate:
            return self.play(prompts, generate, num_generations)

    @contextlib.contextmanager
    def generator(self, trainer: Any) -> Iterator[TurnGenerator]:
        """The trainer's generation backend for one rollout (vLLM, or the unwrapped model's generate)."""
        if trainer.args.use_vllm:
            model = trainer.accelerator.unwrap_model(trainer.model)
            yield VLLMTurnGenerator(
                trainer.vllm_generation, self.tokenizer, eos_token_ids(model, self.tokenizer)
            )
            return
        from trl.models import unwrap_model_for_generation

        with unwrap_model_for_generation(
            trainer.model_wrapped,
            trainer.accelerator,
            gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs,
        ) as model:
            yield HFTurnGenerator(model, self.tokenizer, **self.generation)

    # -- one batch of episodes -------------------------------------------------------------------
    def play(self, prompts: list[Any], generate: TurnGenerator, num_generations: int) -> dict[str, Any]:
        """Play one episode per prompt, turn by turn, with one generation and one pool call per turn.

        Returns:
            TRL's rollout dict: ``prompt_ids``, ``completion_ids``, ``logprobs``, ``env_mask`` and the
            per-sample fields reward functions read.

        Raises:
            GroupOrderError: A group of ``num_generations`` consecutive prompts mixes questions.
        """
        started = time.perf_counter()
        ids = [question_id_of(p) for p in prompts]
        check_groups(ids, num_generations)
        envs = [self.make_env(self.rows[i]) for i in ids]
        prompt_ids = [self.prompt_ids(i, p) for i, p in zip(ids, prompts, strict=True)]
        for env, prompt in zip(envs, prompts, strict=True):
            observation, _ = env.reset(options={"index": 0})
            if observation != prompt[-1]["content"]:
                raise ValueError(
                    "the env's prompt differs from the dataset's: build the dataset from the same pool "
                    "descriptors and env.max_routes (rl_router.trainers.grpo.grpo_dataset)"
                )
        trajectories = [Trajectory() for _ in prompts]
        records: list[dict[str, Any] | None] = [None] * len(prompts)
        eos = self.tokenizer.eos_token_id
        live = list(range(len(prompts)))
        while live:
            # ---- the router writes one turn per live episode (one batched generation)
            limits = [min(self.max_turn_tokens, self._room(trajectories[i]) - 1) for i in live]
            segments = generate([prompt_ids[i] + trajectories[i].ids for i in live], limits)
            texts = [self._turn_text(envs[i], s) for i, s in zip(live, segments, strict=True)]
            # ---- the env acts on every turn: one pool call for all routes of the batch
            steps = batched_step([envs[i] for i in live], texts)
            still_live, out_of_room = [], []
            for i, segment, (_, _, terminated, _, info) in zip(live, segments, steps, strict=True):
                trajectory = trajectories[i]
                trajectory.add(segment.ids, policy=True, logprobs=segment.logprobs)
                if terminated:
                    if segment.reason == "stop" and self._room(trajectory) > 0:
                        trajectory.add([eos], policy=True)  # the policy's EOS ends the episode
                    records[i] = episode_record(info, truncated=segment.reason == "length")
                    continue
                env_ids = self.tokenizer(info["env_text"], add_special_tokens=False)["input_ids"]
                if len(env_ids) + 2 > self._room(trajectory):  # no room for the block, a turn and EOS
                    out_of_room.append(i)
                    continue
                trajectory.add(env_ids, policy=False)
                still_live.append(i)
            # ---- episodes out of room end with an empty (invalid) turn: no pool call, reward -1
            if out_of_room:
                ended = batched_step([envs[i] for i in out_of_room], [""] * len(out_of_room))
                for i, (_, _, terminated, _, info) in zip(out_of_room, ended, strict=True):
                    assert terminated, "an empty turn is invalid and ends the episode"
                    records[i] = episode_record(info, truncated=True)
            live = still_live
        self.seconds += time.perf_counter() - started
        finished = [r for r in records if r is not None]
        assert len(finished) == len(prompts), "every episode ends"
        self.episodes += finished
        return {
            "prompt_ids": prompt_ids,
            "completion_ids": [t.ids for t in trajectories],
            "logprobs": [t.logprobs for t in trajectories]
            if isinstance(generate, VLLMTurnGenerator)
            else None,
            "env_mask": [t.mask for t in trajectories],
            "question_id": ids,
            "answer": [r["answer"] or "" for r in finished],
            "correct": [float(r["correct"]) for r in finished],
            "format_ok": [bool(r["format_ok"]) for r in finished],
            "cost_usd": [float(r["cost_usd"]) for r in finished],
            "calls": [int(r["routes"]) for r in finished],
            "truncated": [bool(r["truncated"]) for r in finished],
            "episode_reward": [float(r["reward"]) for r in finished],
            "reward_terms": [dict(r["reward_terms"]) for r in finished],
        }

    def take_episodes(self) -> list[dict[str, Any]]:
        """The episodes finished since the last call (for logging), and forget them."""
        episodes, self.episodes = self.episodes, []
        return episodes

    def prompt_ids(self, question_id: str, prompt: Sequence[Mapping[str, Any]]) -> list[int]:
        """The router's prompt tokens: its chat template with the generation prompt (cached per row)."""
        if question_id not in self._prompt_ids:
            messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
            self._prompt_ids[question_id] = chat_prompt_ids(self.tokenizer, messages)
        return self._prompt_ids[question_id]

    def _room(self, trajectory: Trajectory) -> int:
        return self.max_completion_tokens - len(trajectory.ids)

    def _turn_text(self, env: MultiLLMQAEnv, segment: Segment) -> str:
        text = self.tokenizer.decode(segment.ids, skip_special_tokens=True)
        return text[: env.action_space.max_length]  # a longer turn is invalid anyway; the env would raise


def episode_record(info: Mapping[str, Any], truncated: bool) -> dict[str, Any]:
    """The env's last-step ``info`` as one record: ``info["episode"]`` plus reward terms and truncation."""
    return {**info["episode"], "reward_terms": dict(info["reward_terms"]), "truncated": truncated}


def chat_prompt_ids(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Mapping[str, str]]) -> list[int]:
    """Token ids of ``messages`` under the tokenizer's chat template, ending with the assistant header."""
    text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


# ------------------------------------------------------------------------------------- rewards
class EpisodeReward:
    """The env's episode reward (Router-R1: -1 on a format violation, else ``correct * ((1-α) + α·C)``).

    Reads the rollout's ``episode_reward`` column: the env already scored each episode with its
    shared cost normaliser, so scoring again here could only disagree.

    Example:
        >>> EpisodeReward()(["a", "b"], episode_reward=[0.7, -1.0])
        [0.7, -1.0]
    """

    def __init__(self, name: str = "router_r1") -> None:
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


def reward_functions() -> tuple[list[Any], list[float]]:
    """TRL's ``reward_funcs`` and ``reward_weights``: the episode reward, then each term at weight 0."""
    return [EpisodeReward(), *(EpisodeTerm(t) for t in REWARD_TERMS)], [1.0] + [0.0] * len(REWARD_TERMS)


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
    rollout: EnvRollout,
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
                with open(folder / ROLLOUT_STATE, "wb") as f:
                    pickle.dump({"normalizer": rollout.normalizer}, f)

    return MetricsBridge()


# ------------------------------------------------------------------------------------- TRL arguments
def grpo_args(cfg: GRPOTrainerConfig, output_dir: Path) -> Any:
    """TRL's ``GRPOConfig`` for one generation batch per optimizer step."""
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
        "stop": list(STOP_STRINGS),
        "include_stop_str_in_output": True,
        "max_tokens": cfg.max_turn_tokens,
    }
    _, weights = reward_functions()
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


# ------------------------------------------------------------------------------------- the recipe
def drop_metrics_after(path: Path, step: int) -> None:
    """Drop the rows a resumed run redoes from ``metrics.jsonl`` or ``rollouts.jsonl``: those logged
    after ``step`` (SFT rows stay)."""
    if path.is_file():
        rows = path.read_text().splitlines(keepends=True)
        path.write_text(
            "".join(r for r in rows if json.loads(r)["step"] <= step or "sft/loss" in json.loads(r))
        )


def load_splits(cfg: DictConfig, trainer_cfg: GRPOTrainerConfig) -> tuple[list[dict], list[dict]]:
    """Training and held-out rows: ``(train, test)`` from the data option, or test from ``eval_data``."""
    from hydra.utils import instantiate

    data = instantiate(cfg.data)
    train, test = (data[0], data[1]) if isinstance(data, tuple) else (data, None)
    if trainer_cfg.eval_data is not None:
        test = instantiate(trainer_cfg.eval_data)
        test = test[1] if isinstance(test, tuple) else test
    if test is None:
        raise ValueError(
            f"data={cfg.data._target_} has no held-out split: set trainer.eval_data to a data option "
            "(experiment=router_r1 evaluates on the seven Router-R1 benchmarks)"
        )
    train_rows = [dict(r) for r in train][: trainer_cfg.train_limit]
    test_rows = [dict(r) for r in test][: trainer_cfg.eval_limit]
    return train_rows, test_rows


def train_llm_router(cfg: DictConfig, run_dir: Path, progress: bool | None = None) -> dict[str, Any]:
    """Warm-start (SFT), train (GRPO) and evaluate an LLM router in ``run_dir``.

    Args:
        cfg: The composed ``rl-router train`` config (``env.mode=multi_round``, ``trainer=grpo``).
        run_dir: The run directory (created).
        progress: Override ``trainer.progress``.

    Returns:
        ``{"history": logged rows, "report": report.json contents, "warm_start_report": the same for
        the SFT warm start (None without one), "run_dir": run_dir, "router_dir": the trained router}``.
    """
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint
    from trl import GRPOTrainer

    from rl_router.config import construct, typed
    from rl_router.eval.llm_eval import evaluate_llm_router
    from rl_router.llm_router import ROUTER_DIR, LLMRouter, ProtocolSettings, load_model
    from rl_router.loggers import JsonlLogger, MultiLogger
    from rl_router.router import RUN_CONFIG
    from rl_router.trainers import sft
    from rl_router.zoo import resolve

    # ---------------------------------------------------------------- setup
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / RUN_CONFIG, resolve=True)
    env_cfg, trainer_cfg = typed(cfg.env), typed(cfg.trainer)
    typed(cfg.data)
    if env_cfg.mode != "multi_round":
        raise ValueError(
            f"env.mode={env_cfg.mode!r}: the GRPO trainer routes LLM routers in multi_round mode"
        )
    if progress is not None:
        trainer_cfg.progress = progress
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    output_dir = run_dir / "checkpoints"  # TRL's checkpoint-<step> folders
    last = get_last_checkpoint(str(output_dir)) if cfg.resume is not None and output_dir.is_dir() else None
    if last is not None:
        for name in ("metrics.jsonl", ROLLOUTS):
            drop_metrics_after(run_dir / name, int(Path(last).name.rsplit("-", 1)[1]))
    config = OmegaConf.to_container(cfg, resolve=True)
    external = construct(
        typed(cfg.logger), run_dir=str(run_dir), run_name=f"{cfg.name}/{run_dir.name}", config=config
    )
    logger = MultiLogger(JsonlLogger(run_dir / "metrics.jsonl"), external)

    # ---------------------------------------------------------------- data and pool
    from hydra.utils import instantiate

    train_rows, test_rows = load_splits(cfg, trainer_cfg)
    log.info("data: %d training questions, %d held-out questions", len(train_rows), len(test_rows))
    pool = instantiate(cfg.pool)
    try:
        descriptors = list(pool.descriptors)
        names = [d.name for d in descriptors]
        model_path = resolve(trainer_cfg.model)  # zoo models are materialised; paths and hub ids pass
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

        def count_tokens(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

        def env_factory(normalizer: PercentileCostNormalizer) -> Callable[[Mapping[str, Any]], MultiLLMQAEnv]:
            def make_env(row: Mapping[str, Any]) -> MultiLLMQAEnv:
                return construct(
                    env_cfg, pool=pool, examples=[row], normalizer=normalizer, count_tokens=count_tokens
                )

            return make_env

        # ------------------------------------------------------------ SFT warm start
        if trainer_cfg.sft_steps > 0:
            sft_dir = run_dir / SFT_DIR
            if not (sft_dir / "config.json").is_file():
                trajectories = sft.synthesize_trajectories(
                    pool,
                    train_rows,
                    count_tokens,
                    max_routes=env_cfg.max_routes,
                    info_token_cap=env_cfg.info_token_cap,
                )
                log.info("SFT: %d trajectories from %d questions", len(trajectories), len(train_rows))
                sft.warm_start(model_path, tokenizer, trajectories, sft_dir, trainer_cfg, logger=logger)
            model_path = str(sft_dir)

        # ------------------------------------------------------------ GRPO
        normalizer = PercentileCostNormalizer(window=env_cfg.cost_window)  # one window for every episode
        if last is not None and (Path(last) / ROLLOUT_STATE).is_file():
            with open(Path(last) / ROLLOUT_STATE, "rb") as f:
                normalizer = pickle.load(f)["normalizer"]
        rollout = EnvRollout(
            env_factory(normalizer),
            train_rows,
            tokenizer,
            trainer_cfg.max_turn_tokens,
            trainer_cfg.max_completion_tokens,
            normalizer,
            generation={
                "temperature": trainer_cfg.temperature,
                "top_p": trainer_cfg.top_p,
                "top_k": trainer_cfg.top_k,
                "chunk": trainer_cfg.generation_chunk,
            },
        )
        funcs, _ = reward_functions()
        rollouts_path = run_dir / ROLLOUTS if trainer_cfg.log_rollouts else None
        bridge = metrics_callback(rollout, names, logger, trainer_cfg.progress, rollouts_path)
        trainer = GRPOTrainer(
            model=model_path,
            reward_funcs=funcs,
            args=grpo_args(trainer_cfg, output_dir),
            train_dataset=grpo_dataset(train_rows, descriptors, env_cfg.max_routes),
            processing_class=tokenizer,
            rollout_func=rollout,
            callbacks=[bridge],
        )
        trainer.train(resume_from_checkpoint=last)
        router_dir = run_dir / ROUTER_DIR
        trainer.save_model(str(router_dir))
        tokenizer.save_pretrained(str(router_dir))

        # ------------------------------------------------------------ evaluate
        router = LLMRouter(
            trainer.accelerator.unwrap_model(trainer.model).eval(),
            tokenizer,
            descriptors,
            ProtocolSettings.from_run(OmegaConf.to_container(cfg.env, resolve=True), cfg.trainer),
            checkpoint=router_dir,
            training=config,
        )
        report = evaluate_llm_router(
            router,
            pool,
            test_rows,
            run_dir / "eval",
            batch_size=trainer_cfg.eval_batch_size,
            progress=trainer_cfg.progress,
        )
        for name in ("report.json", "report.md", "pareto.png"):  # beside the run, as PPO runs have it
            shutil.copy2(run_dir / "eval" / name, run_dir / name)
        warm_report = None
        if trainer_cfg.sft_steps > 0 and trainer_cfg.eval_warm_start:
            model, _ = load_model(run_dir / SFT_DIR)
            warm = dataclasses.replace(router, model=model, checkpoint=run_dir / SFT_DIR)
            warm_report = evaluate_llm_router(
                warm, pool, test_rows, run_dir / "eval_sft", batch_size=trainer_cfg.eval_batch_size
            )
    finally:
        pool.close()
    summary = report["router"]
    logger.log(
        {
            "eval/accuracy": summary["accuracy"],
            "eval/format_valid": summary["format_valid"],
            "eval/cost_usd": summary["dollars_per_question"],
            "eval/calls": summary["calls_per_question"],
        },
        trainer.state.global_step,
    )
    logger.finish()
    if trainer_cfg.progress:
        print((run_dir / "report.md").read_text())
        print(f"run directory: {run_dir}")
    return {
        "history": bridge.history,
        "report": report,
        "warm_start_report": warm_report,
        "run_dir": run_dir,
        "router_dir": router_dir,
    }
