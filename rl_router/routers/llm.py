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

:func:`rl_router.routers.load.load_router` returns one for a run directory whose ``env.mode`` is
``multi_round`` (the model in ``<run>/router``, else the newest TRL ``checkpoints/checkpoint-N``) and
for an exported folder whose ``router_config.json`` says ``router_kind: "llm"``. An exported folder
is also a plain transformers folder: ``AutoModelForCausalLM.from_pretrained(folder)`` loads it.

Decisions are greedy, so the same weights give the same decisions wherever they are loaded. A router
with a ``calibration`` (``rl-router calibrate``, :mod:`rl_router.routers.llm_choice`) chooses the
candidate it names after ``<search>`` by ``argmax(log p(name) + offsets)``; ``first_turns``,
``route`` and ``play`` all honour it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from envs.router_r1_protocol import PROMPT_TEMPLATE, parse_turn, prompt_messages
from rewards.cost import PercentileCostNormalizer
from rewards.format import RouterR1Format
from rl_router import checkpoint as ckpt
from rl_router.generation import HFTurnGenerator, TurnGenerator, chat_prompt_ids, load_model, token_counter
from rl_router.pool.types import CandidatePool, ModelDescriptor
from rl_router.rollout.driver import RolloutDriver, tagged_prompt
from rl_router.rollout.env_factory import env_factory
from rl_router.routers.calibration import Calibration
from rl_router.routers.folder import POOL
from rl_router.routers.llm_choice import CalibratedTurns
from rl_router.routers.policy import descriptor_from_dict, pool_descriptors
from rl_router.run import ROUTER_DIR, portable_config

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

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

    def env_config(self) -> dict[str, Any]:
        """The multi_round env config these settings stand for (what the env factory builds)."""
        return {
            "_target_": "envs.multi_llm_qa.MultiLLMQAEnv",
            "mode": "multi_round",
            "alpha": self.alpha,
            "cost_window": self.cost_window,
            "outcome": self.outcome,
            "shuffle": False,
            "max_routes": self.max_routes,
            "info_token_cap": self.info_token_cap,
            "max_action_chars": self.max_action_chars,
        }


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
        calibration: Offsets on its choice of candidate (``calibration.json``); None: its own choice.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    descriptors: list[ModelDescriptor]
    protocol: ProtocolSettings
    checkpoint: Path | None = None
    training: dict[str, Any] = field(default_factory=dict)
    prompt_template: str = PROMPT_TEMPLATE
    calibration: Calibration | None = None

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
        generate = self.generator(batch_size)
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
    ) -> gym.Env:
        """The multi_round env of one row, under the router's protocol settings (the env factory's)."""
        make = env_factory(
            self.protocol.env_config(),
            pool=pool,
            normalizer=normalizer,
            count_tokens=token_counter(self.tokenizer),
        )
        return make([row])

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
        names = [d.name for d in pool.descriptors]
        if names != self.model_names:
            raise ValueError(
                f"the pool serves {names}, but this router was trained to route between "
                f"{self.model_names} (in that order): give it the pool it was trained with"
            )
        normalizer = normalizer or PercentileCostNormalizer(window=self.protocol.cost_window)
        make_env = env_factory(
            self.protocol.env_config(),
            pool=pool,
            normalizer=normalizer,
            count_tokens=token_counter(self.tokenizer),
        )
        driver = RolloutDriver(
            make_env, rows, self.tokenizer, self.protocol.max_turn_tokens, self.protocol.max_completion_tokens
        )
        if generate is None:
            generate = self.generator(batch_size)
        episodes = []
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            prompts = [tagged_prompt(row, self.descriptors, self.protocol.max_routes) for row in chunk]
            episodes += driver.play(prompts, generate).episodes
        return episodes

    def generator(self, batch_size: int = 16) -> TurnGenerator:
        """The greedy turn writer: the model's own, or with the calibration's offsets on its choices."""
        if self.calibration is None:
            return HFTurnGenerator(self.model.eval(), self.tokenizer, sample=False, chunk=batch_size)
        return CalibratedTurns(
            self.model.eval(), self.tokenizer, self.model_names, self.calibration.offsets, batch_size
        )

    def protocol_dict(self) -> dict[str, Any]:
        return asdict(self.protocol)

    def weights_digest(self) -> str:
        """sha256 of the model's tensors (:func:`rl_router.checkpoint.weights_digest`)."""
        return ckpt.weights_digest(self.model)


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


def load_llm_run(run_dir: Path, cfg: Any, model_dir: Path | None = None) -> LLMRouter:
    """The LLM router of a training run (``cfg``: its resolved config).

    ``model_dir``: one model folder of the run (``sft_model``, ``router``, ``checkpoints/checkpoint-N``);
    None: :func:`router_model_dir`.
    """

    folder = Path(model_dir) if model_dir is not None else router_model_dir(run_dir)
    model, tokenizer = load_model(folder)
    training = portable_config(cfg)
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
