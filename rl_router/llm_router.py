"""``LLMRouter``: a trained Router-R1-style LLM router you can ask, and its loaders.

An LLM router is a causal LM that writes Router-R1 turns (``<think>``, ``<search>MODEL: query
</search>``, ``<answer>``) for a prompt listing its candidates. It is four things: the transformers
model and tokenizer, the candidates it was trained with (their descriptors, in pool order, as the
prompt lists them), the prompt template, and the protocol settings of the env it was trained in
(routes per episode, the information cap, the token budgets of a turn and of a trajectory)::

    router = load_router("outputs/router_r1_tiny/2026-11-25_04-40-16")
    router.route(["What is the capital of Peru?"])   # -> ["smollm2-135m"]: its first decision
    load_router("outputs/router_r1_tiny/<run>/sft_model")  # one model folder of a run: its warm start
    router.first_turns(["What is 7 + 5?"])             # -> ["<think>…</think>\\n<search>qwen…: …</search>"]
    router.play(pool, rows)                            # -> whole greedy episodes against a live pool

:func:`rl_router.router.load_router` returns one for a run directory whose ``env.mode`` is
``multi_round`` (the model in ``<run>/router``, else the newest TRL ``checkpoints/checkpoint-N``) and
for an exported folder whose ``router_config.json`` says ``router_kind: "llm"``. An exported folder
is also a plain transformers folder: ``AutoModelForCausalLM.from_pretrained(folder)`` loads it.

Decisions are greedy, so the same weights give the same decisions wherever they are loaded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envs.multi_llm_qa import MultiLLMQAEnv
from envs.router_r1_protocol import PROMPT_TEMPLATE, parse_turn, prompt_messages
from rewards.cost import PercentileCostNormalizer
from rewards.format import RouterR1Format
from rl_router.pool.types import CandidatePool, ModelDescriptor

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from rl_router.trainers.grpo import TurnGenerator

ROUTER_DIR = "router"  # where `rl-router train` saves the trained LLM router of a run
ANSWERS_ITSELF = "<answer>"  # route(): the first turn answers without asking a candidate
INVALID_TURN = "<invalid>"  # route(): the first turn breaks the protocol


@dataclass(frozen=True)
class ProtocolSettings:
    """The env and generation settings an LLM router was trained under (and is evaluated under).

    Attributes:
        max_routes: Candidate calls per episode before the answer turn.
        info_token_cap: Router tokens of a candidate reply shown in ``<information>``.
        max_action_chars: Longest router turn, in characters.
        max_turn_tokens: New tokens per router turn.
        max_completion_tokens: Tokens per trajectory (router turns and information blocks).
        outcome: How answers are scored (``em``, ``f1`` or ``reply``).
        alpha: Router-R1's cost weight of the training reward (reported, not used to decide).
        cost_window: Episodes in the rolling window of the cost percentiles.
    """

    max_routes: int = 4
    info_token_cap: int = 600
    max_action_chars: int = 8192
    max_turn_tokens: int = 512
    max_completion_tokens: int = 4096
    outcome: str = "em"
    alpha: float = 0.6
    cost_window: int = 2000

    @classmethod
    def from_run(cls, env: Mapping[str, Any], trainer: Mapping[str, Any]) -> ProtocolSettings:
        """The settings of a training config's ``env`` and ``trainer`` groups."""
        return cls(
            max_routes=int(env["max_routes"]),
            info_token_cap=int(env["info_token_cap"]),
            max_action_chars=int(env["max_action_chars"]),
            max_turn_tokens=int(trainer["max_turn_tokens"]),
            max_completion_tokens=int(trainer["max_completion_tokens"]),
            outcome=str(env["outcome"]),
            alpha=float(env["alpha"]),
            cost_window=int(env["cost_window"]),
        )


@dataclass
class LLMRouter:
    """A trained LLM router (see the module docstring).

    Attributes:
        model: The causal LM, in eval mode.
        tokenizer: Its tokenizer (with a chat template, EOS and pad tokens).
        descriptors: The candidates, in the order the prompt lists them.
        protocol: The env and generation settings it was trained under.
        checkpoint: The folder the weights came from.
        training: The training run's config groups (``pool``, ``data``, ``env``, ``trainer``...), the
            defaults of ``rl-router eval``; empty when unknown.
        prompt_template: The template of its prompt (``envs.router_r1_protocol.PROMPT_TEMPLATE``).
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    descriptors: list[ModelDescriptor]
    protocol: ProtocolSettings
    checkpoint: Path | None = None
    training: dict[str, Any] = field(default_factory=dict)
    prompt_template: str = PROMPT_TEMPLATE

    kind = "llm"

    def __post_init__(self) -> None:
        if self.prompt_template != PROMPT_TEMPLATE:
            raise ValueError(
                f"{self.checkpoint}: this router was trained with another prompt template than this "
                "rl-router's envs.router_r1_protocol.PROMPT_TEMPLATE; its decisions would not carry over. "
                "Install the rl-router version that trained it."
            )
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @property
    def model_names(self) -> list[str]:
        return [d.name for d in self.descriptors]

    def prompt(self, query: str) -> list[dict[str, str]]:
        """The router's chat prompt for one query."""
        return prompt_messages({"question": query}, self.descriptors, self.protocol.max_routes)

    def first_turns(self, queries: Sequence[str], batch_size: int = 16) -> list[str]:
        """The router's first turn (greedy) for each query, as text."""
        from rl_router.trainers.grpo import HFTurnGenerator, chat_prompt_ids

        generate = HFTurnGenerator(self.model.eval(), self.tokenizer, sample=False, chunk=batch_size)
        contexts = [chat_prompt_ids(self.tokenizer, self.prompt(q)) for q in queries]
        segments = generate(contexts, [self.protocol.max_turn_tokens] * len(contexts)) if contexts else []
        return [self.tokenizer.decode(s.ids, skip_special_tokens=True) for s in segments]

    def route(self, queries: Sequence[str], batch_size: int = 16) -> list[str]:
        """The candidate each query's first turn routes to (greedy).

        A first turn that answers directly gives :data:`ANSWERS_ITSELF`; one that breaks the protocol
        gives :data:`INVALID_TURN`.
        """
        rules = RouterR1Format(self.model_names, max_routes=self.protocol.max_routes)
        out = []
        for text in self.first_turns(queries, batch_size):
            turn = parse_turn(text, rules)
            out.append(
                turn.model
                if turn.kind == "search"
                else ANSWERS_ITSELF
                if turn.kind == "answer"
                else INVALID_TURN
            )
        return out

    def make_env(
        self,
        pool: CandidatePool,
        row: Mapping[str, Any],
        normalizer: PercentileCostNormalizer | None = None,
    ) -> MultiLLMQAEnv:
        """The multi_round env of one row, under the router's protocol settings."""
        p = self.protocol

        def count_tokens(text: str) -> int:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

        return MultiLLMQAEnv(
            pool,
            [row],
            mode="multi_round",
            alpha=p.alpha,
            cost_window=p.cost_window,
            outcome=p.outcome,
            shuffle=False,
            normalizer=normalizer,
            max_routes=p.max_routes,
            info_token_cap=p.info_token_cap,
            max_action_chars=p.max_action_chars,
            count_tokens=count_tokens,
        )

    def play(
        self,
        pool: CandidatePool,
        rows: Sequence[Mapping[str, Any]],
        batch_size: int = 16,
        normalizer: PercentileCostNormalizer | None = None,
        generate: TurnGenerator | None = None,
    ) -> list[dict[str, Any]]:
        """Greedy episodes on ``rows`` against ``pool``: the env's episode records, in row order.

        Each batch of ``batch_size`` episodes generates its turns together and sends each turn's
        routes in one pool call. ``normalizer`` is the cost window the rewards are scored against
        (a fresh one when None); ``generate`` writes the turns (default: the model, greedily).
        """
        from rl_router.trainers.grpo import EnvRollout, HFTurnGenerator, tagged_prompt

        names = [d.name for d in pool.descriptors]
        if names != self.model_names:
            raise ValueError(
                f"the pool serves {names}, but this router was trained to route between "
                f"{self.model_names} (in that order): give it the pool it was trained with"
            )
        normalizer = normalizer or PercentileCostNormalizer(window=self.protocol.cost_window)
        rollout = EnvRollout(
            lambda row: self.make_env(pool, row, normalizer),
            rows,
            self.tokenizer,
            self.protocol.max_turn_tokens,
            self.protocol.max_completion_tokens,
        )
        if generate is None:
            generate = HFTurnGenerator(self.model.eval(), self.tokenizer, sample=False, chunk=batch_size)
        episodes = []
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            prompts = [tagged_prompt(row, self.descriptors, self.protocol.max_routes) for row in chunk]
            rollout.play(prompts, generate, num_generations=1)
            episodes += rollout.take_episodes()
        return episodes

    def protocol_dict(self) -> dict[str, Any]:
        return asdict(self.protocol)


def router_model_dir(run_dir: Path) -> Path:
    """The LLM router of a run: ``<run>/router``, else the newest ``checkpoints/checkpoint-N``."""
    final = run_dir / ROUTER_DIR
    if (final / "config.json").is_file():
        return final
    checkpoints = sorted(
        (p for p in (run_dir / "checkpoints").glob("checkpoint-*") if (p / "config.json").is_file()),
        key=lambda p: int(p.name.rsplit("-", 1)[1]),
    )
    if not checkpoints:
        raise FileNotFoundError(
            f"{run_dir} holds no trained LLM router ({ROUTER_DIR}/ or checkpoints/checkpoint-N): "
            "has GRPO training saved anything yet?"
        )
    return checkpoints[-1]


def load_model(folder: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A transformers causal LM and its tokenizer (float32 on CPU, the saved dtype on a GPU)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    on_gpu = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(
        str(folder), dtype="auto" if on_gpu else torch.float32, use_safetensors=True
    )
    if on_gpu:
        model = model.to("cuda")
    return model.eval(), AutoTokenizer.from_pretrained(str(folder))


def load_llm_run(run_dir: Path, cfg: Any, model_dir: Path | None = None) -> LLMRouter:
    """The LLM router of a training run (``cfg``: its resolved config).

    ``model_dir``: one model folder of the run (``sft_model``, ``router``, ``checkpoints/checkpoint-N``);
    None: :func:`router_model_dir`.
    """
    from omegaconf import OmegaConf

    from rl_router.router import pool_descriptors

    folder = Path(model_dir) if model_dir is not None else router_model_dir(run_dir)
    model, tokenizer = load_model(folder)
    training = OmegaConf.to_container(cfg, resolve=True)
    return LLMRouter(
        model,
        tokenizer,
        pool_descriptors(cfg.pool),
        ProtocolSettings.from_run(training["env"], training["trainer"]),
        checkpoint=folder,
        training=training,
    )


def load_llm_exported(folder: Path, config: Mapping[str, Any]) -> LLMRouter:
    """The LLM router of a folder written by ``rl-router export`` (``config``: its router_config.json)."""
    from rl_router.router import POOL, descriptor_from_dict

    descriptors = [descriptor_from_dict(d) for d in json.loads((folder / POOL).read_text())]
    model, tokenizer = load_model(folder)
    return LLMRouter(
        model,
        tokenizer,
        descriptors,
        ProtocolSettings(**config["protocol"]),
        checkpoint=folder,
        training=dict(config.get("training") or {}),
        prompt_template=config["prompt_template"],
    )
