"""The rollout driver: an LLM router plays text envs turn by turn, and gets back a typed result.

One driver serves GRPO training (through the TRL bridge, :mod:`rl_router.trainers.grpo`),
evaluation (:mod:`rl_router.eval.llm_eval`) and inference (:meth:`rl_router.routers.llm.LLMRouter.play`).
It knows no trainer: it takes prompts, a turn generator (:mod:`rl_router.generation`) and an env
maker, and returns a :class:`RolloutResult`. Per batch, turn by turn:

1. the router writes the next turn of every live episode in ONE batched generation (token ids in,
   sampled token ids out: they are kept, never re-tokenised);
2. the envs act on all turns at once through their class's ``step_batch`` hook when it has one
   (:meth:`envs.multi_llm_qa.MultiLLMQAEnv.step_batch` sends every candidate call of the turn in one
   pool call), else one ``env.step`` each;
3. an env that goes on writes its next observation in ``info["env_text"]``; its tokens are appended
   with ``env_mask`` 0 (router tokens get 1), so no gradient flows from env text.

An episode ends when its env terminates (the router's turn then gets a policy EOS token) or when the
trajectory outgrows ``max_completion_tokens``: the env then receives an empty turn, which the env
contract treats as invalid and terminal. The env's last ``info`` holds the episode record
(``info["episode"]``, any keys the env family defines) and ``info["reward_terms"]``.

Any text env fits this contract: Router-R1's protocol (a few routed calls, then an answer) as well as
an agent whose every step is a routed candidate call (``agent_steps``' text mode: one tier per step,
the episode ends on the game's end, the budget or the step limit, ``terminated`` or ``truncated``).

Where the router's prompt comes from: an env class with a ``router_prompt()`` method writes it
itself after ``reset`` (``agent_steps``: the task, the tiers and the first room; the episode's drawn
budget shows in it, so it may differ between the samples of a group); the dataset prompt then only
carries the row's id (:func:`task_prompt`). Without the hook the dataset prompt is the router's, and
must equal the env's first observation (Router-R1: :func:`tagged_prompt`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from envs.router_r1_protocol import prompt_messages
from rl_router.generation import Segment, TurnGenerator, chat_prompt_ids
from rl_router.pool.types import ModelDescriptor

if TYPE_CHECKING:
    import gymnasium as gym
    from transformers import PreTrainedTokenizerBase


@dataclass
class Trajectory:
    """A completion under construction: tokens, ``env_mask`` (1 = router, 0 = env) and logprobs."""

    ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    logprobs: list[float | None] = field(default_factory=list)
    sampled_logprobs: bool = True  # every router token came with its sampling logprob

    def add(self, ids: Sequence[int], policy: bool, logprobs: Sequence[float | None] | None = None) -> None:
        self.ids += list(ids)
        self.mask += [int(policy)] * len(ids)
        if policy and logprobs is None:
            self.sampled_logprobs = False
        # Env tokens are masked out of the loss; 0.0 keeps an importance ratio finite there.
        self.logprobs += list(logprobs) if logprobs is not None else [None if policy else 0.0] * len(ids)


@dataclass
class RolloutResult:
    """One batch of episodes, row-aligned with the prompts it was given.

    Attributes:
        prompt_ids: ``[B][P_i]`` the chat-templated prompt tokens of each episode.
        completion_ids: ``[B][C_i]`` router turns and env observations, in order.
        env_mask: ``[B][C_i]`` 1 for router tokens, 0 for env tokens.
        logprobs: ``[B][C_i]`` sampling logprobs of router tokens (0.0 on env tokens), or None when
            the generator gave none (HF generation).
        question_ids: ``[B]`` the row id of each episode.
        episodes: ``[B]`` episode records: the env's ``info["episode"]`` plus ``reward_terms`` and
            ``truncated`` (the last turn hit its token budget).
        seconds: Wall time of the batch.
    """

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    env_mask: list[list[int]]
    logprobs: list[list[float | None]] | None
    question_ids: list[str]
    episodes: list[dict[str, Any]]
    seconds: float = 0.0


def question_id_of(prompt: Sequence[Mapping[str, Any]]) -> str:
    """The row id a prompt carries (set by :func:`tagged_prompt` on its last message)."""
    try:
        return str(prompt[-1]["question_id"])
    except (KeyError, IndexError, TypeError) as err:
        raise ValueError(
            "a rollout prompt must be a message list whose last message holds `question_id` "
            "(build it with rl_router.rollout.driver.tagged_prompt)"
        ) from err


def tagged_prompt(
    row: Mapping[str, Any], descriptors: Sequence[ModelDescriptor], max_routes: int
) -> list[dict[str, str]]:
    """The router's prompt for a row (:func:`envs.router_r1_protocol.prompt_messages`), tagged with its id.

    The id rides on the message because TRL's ``rollout_func`` receives prompts only; it lets the
    driver find each sample's row (and the GRPO bridge check that groups hold one question each).
    Chat templates read ``role`` and ``content`` only.
    """
    message = prompt_messages(row, descriptors, max_routes)[0]
    return [{**message, "question_id": str(row["id"])}]


def task_prompt(row: Mapping[str, Any]) -> list[dict[str, str]]:
    """A dataset prompt for envs that write the router's prompt themselves (``router_prompt()``).

    Only its ``question_id`` is read; TRL's ``rollout_func`` receives prompts and nothing else.
    """
    return [{"role": "user", "content": f"task {row['id']}", "question_id": str(row["id"])}]


def episode_record(info: Mapping[str, Any], truncated: bool) -> dict[str, Any]:
    """The env's last-step ``info`` as one record: ``info["episode"]`` plus reward terms and truncation."""
    return {**info["episode"], "reward_terms": dict(info["reward_terms"]), "truncated": truncated}


def step_envs(envs: Sequence[gym.Env], actions: Sequence[Any]) -> list[tuple]:
    """Step every env once: through the env class's batched ``step_batch`` hook when it has one."""
    if not envs:
        return []
    step_batch = getattr(type(envs[0]), "step_batch", None)
    if step_batch is not None and all(type(env) is type(envs[0]) for env in envs):
        return step_batch(envs, actions)
    return [env.step(action) for env, action in zip(envs, actions, strict=True)]


class RolloutDriver:
    """Plays one episode per prompt (see the module docstring).

    Args:
        make_env: Builds a fresh env over a one-row list (``make_env([row])``); the env factory's
            output (:func:`rl_router.rollout.env_factory.env_factory`).
        rows: The dataset rows, with unique ``id`` values.
        tokenizer: The router's tokenizer (chat template, EOS, env observations).
        max_turn_tokens: New tokens per router turn.
        max_completion_tokens: Tokens per trajectory (router and env tokens together).
    """

    def __init__(
        self,
        make_env: Callable[[Sequence[Mapping[str, Any]]], gym.Env],
        rows: Sequence[Mapping[str, Any]],
        tokenizer: PreTrainedTokenizerBase,
        max_turn_tokens: int,
        max_completion_tokens: int,
    ) -> None:
        self.make_env = make_env
        self.rows = {str(row["id"]): row for row in rows}
        if len(self.rows) != len(rows):
            raise ValueError("dataset rows share ids: the driver finds each sample's row by its id")
        self.tokenizer = tokenizer
        self.max_turn_tokens = max_turn_tokens
        self.max_completion_tokens = max_completion_tokens
        self._prompt_ids: dict[tuple[str, ...], list[int]] = {}

    def play(
        self,
        prompts: Sequence[Sequence[Mapping[str, Any]]],
        generate: TurnGenerator,
        seeds: Sequence[int] | None = None,
        first_turn_prefixes: Sequence[str | None] | None = None,
    ) -> RolloutResult:
        """Play one episode per prompt, with one generation and one env batch step per turn.

        Args:
            prompts: Message lists from :func:`tagged_prompt` or :func:`task_prompt` (TRL repeats
                each ``num_generations`` times in a row; the driver does not care).
            generate: Writes the next turn of a batch of token contexts.
            seeds: One ``reset`` seed per episode (evaluation: the same budget draws as the
                baselines get); None: unseeded resets (training).
            first_turn_prefixes: Per episode, text its first turn starts with (None: none), e.g. a
                route forced for exploration (``trainer.explore_routes``). The prefix's tokens are
                the router's (``env_mask`` 1, so they get the episode's advantage) but were not
                sampled, so the result carries no sampling logprobs; the router writes the rest of
                the turn, and its record says ``forced_prefix``.
        """
        if first_turn_prefixes is not None and len(first_turn_prefixes) != len(prompts):
            raise ValueError(
                f"{len(first_turn_prefixes)} first-turn prefixes for {len(prompts)} prompts: "
                "give one per prompt"
            )
        started = time.perf_counter()
        ids = [question_id_of(p) for p in prompts]
        envs = [self.make_env([self.rows[i]]) for i in ids]
        try:
            return self._play(envs, ids, prompts, generate, seeds, first_turn_prefixes, started)
        finally:
            for env in envs:  # agent_steps envs own a game process each
                env.close()

    def _play(
        self,
        envs: Sequence[gym.Env],
        ids: Sequence[str],
        prompts: Sequence[Sequence[Mapping[str, Any]]],
        generate: TurnGenerator,
        seeds: Sequence[int] | None,
        prefixes: Sequence[str | None] | None,
        started: float,
    ) -> RolloutResult:
        prompt_ids = []
        for k, (env, prompt) in enumerate(zip(envs, prompts, strict=True)):
            observation, _ = env.reset(seed=None if seeds is None else int(seeds[k]), options={"index": 0})
            router_prompt = getattr(env, "router_prompt", None)
            if router_prompt is not None:  # the env writes the router's prompt (module docstring)
                prompt = router_prompt()
            elif observation != prompt[-1]["content"]:
                raise ValueError(
                    "the env's prompt differs from the dataset's: build the prompts from the same pool "
                    "descriptors and env.max_routes (rl_router.rollout.driver.tagged_prompt)"
                )
            prompt_ids.append(self.prompt_ids(prompt))
        trajectories = [Trajectory() for _ in prompts]
        prefixes = list(prefixes) if prefixes is not None else [None] * len(prompts)
        opening = [self.tokenizer(p, add_special_tokens=False)["input_ids"] if p else [] for p in prefixes]
        for trajectory, ids_ in zip(trajectories, opening, strict=True):
            if ids_:
                trajectory.add(ids_, policy=True)  # the router's tokens, not sampled: no logprobs
        records: list[dict[str, Any] | None] = [None] * len(prompts)
        eos = self.tokenizer.eos_token_id
        live = list(range(len(prompts)))
        first = True
        while live:
            # ---- the router writes one turn per live episode (one batched generation)
            limits = [min(self.max_turn_tokens, self._room(trajectories[i]) - 1) for i in live]
            segments = generate([prompt_ids[i] + trajectories[i].ids for i in live], limits)
            texts = [
                self._turn_text(envs[i], s, opening[i] if first else ())
                for i, s in zip(live, segments, strict=True)
            ]
            first = False
            # ---- the envs act on every turn at once
            steps = step_envs([envs[i] for i in live], texts)
            still_live, out_of_room = [], []
            for i, segment, (_, _, terminated, truncated, info) in zip(live, segments, steps, strict=True):
                trajectory = trajectories[i]
                trajectory.add(segment.ids, policy=True, logprobs=segment.logprobs)
                if terminated or truncated:  # truncated: a step limit (agent_steps)
                    if segment.reason == "stop" and self._room(trajectory) > 0:
                        trajectory.add([eos], policy=True)  # the policy's EOS ends the episode
                    records[i] = episode_record(info, truncated=segment.reason == "length")
                    records[i]["forced_prefix"] = bool(opening[i])
                    continue
                env_ids = self.tokenizer(info["env_text"], add_special_tokens=False)["input_ids"]
                if len(env_ids) + 2 > self._room(trajectory):  # no room for the block, a turn and EOS
                    out_of_room.append(i)
                    continue
                trajectory.add(env_ids, policy=False)
                still_live.append(i)
            # ---- episodes out of room end with an empty (invalid) turn: no candidate call
            if out_of_room:
                ended = step_envs([envs[i] for i in out_of_room], [""] * len(out_of_room))
                for i, (_, _, terminated, _, info) in zip(out_of_room, ended, strict=True):
                    if not terminated:
                        raise RuntimeError("the env went on after an empty turn: it must end the episode")
                    records[i] = episode_record(info, truncated=True)
                    records[i]["forced_prefix"] = bool(opening[i])
            live = still_live
        episodes = [r for r in records if r is not None]
        if len(episodes) != len(prompts):
            raise RuntimeError("an episode ended without a record")
        return RolloutResult(
            prompt_ids=prompt_ids,
            completion_ids=[t.ids for t in trajectories],
            env_mask=[t.mask for t in trajectories],
            logprobs=[t.logprobs for t in trajectories]
            if all(t.sampled_logprobs for t in trajectories)
            else None,
            question_ids=ids,
            episodes=episodes,
            seconds=time.perf_counter() - started,
        )

    def prompt_ids(self, prompt: Sequence[Mapping[str, Any]]) -> list[int]:
        """The router's prompt tokens: its chat template with the generation prompt (cached by text)."""
        messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
        key = tuple(f"{m['role']}\0{m['content']}" for m in messages)
        if key not in self._prompt_ids:
            self._prompt_ids[key] = chat_prompt_ids(self.tokenizer, messages)
        return self._prompt_ids[key]

    def _room(self, trajectory: Trajectory) -> int:
        return self.max_completion_tokens - len(trajectory.ids)

    def _turn_text(self, env: Any, segment: Segment, prefix_ids: Sequence[int] = ()) -> str:
        text = self.tokenizer.decode([*prefix_ids, *segment.ids], skip_special_tokens=True)
        max_length = getattr(env.action_space, "max_length", None)
        return text if max_length is None else text[:max_length]  # a longer turn is invalid anyway
