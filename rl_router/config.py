"""Typed config schemas and their registration with Hydra's ConfigStore.

Every option file under ``conf/<group>/`` starts with ``defaults: [<schema>, _self_]`` where
``<schema>`` is one of the dataclasses registered here in the same group. Hydra then composes in
struct mode, so a misspelt key or a wrong type fails at start with the key's name, e.g.
``rl-router train trainer.not_a_key=1`` -> ``Key 'not_a_key' is not in struct``.

The dataclasses themselves live next to the code they configure (one concept per file); this module
only lists them. Only the CLI touches ``DictConfig``; library code receives dataclass instances
(``OmegaConf.to_object``), whose ``__post_init__`` checks run at that point.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.utils import get_object
from omegaconf import MISSING, OmegaConf


@dataclass
class WandbLoggerConfig:
    """Weights & Biases logging; offline unless a key is configured (``WANDB_API_KEY``)."""

    _target_: str = "rl_router.loggers.WandbLogger"
    project: str = "rl-router"  # wandb project name
    entity: str | None = None  # wandb team or user; None uses the default
    mode: str = "offline"  # "offline" | "online" | "disabled"
    tags: list[str] = field(default_factory=list)  # extra run tags

    def __post_init__(self) -> None:
        if self.mode not in ("offline", "online", "disabled"):
            raise ValueError(f"logger.mode={self.mode!r}: use offline, online or disabled")


@dataclass
class NullLoggerConfig:
    """No external logger (tests, smoke runs); metrics.jsonl is still written."""

    _target_: str = "rl_router.loggers.NullLogger"


@dataclass
class TrainConfig:
    """Root of ``rl-router train``: one experiment, one run directory."""

    name: str = "default"  # experiment name; runs go to <output_root>/<name>/<date>_<time>/
    output_root: str = "outputs"  # where run directories are created
    seed: int = 0  # global seed (python, numpy, torch, env resets)
    resume: str | None = None  # a run directory to continue from its last checkpoint
    env: Any = MISSING
    policy: Any = MISSING
    trainer: Any = MISSING
    pool: Any = MISSING
    data: Any = MISSING
    logger: Any = MISSING


@dataclass
class EvalConfig:
    """Root of ``rl-router eval``: a trained run's router against baselines."""

    checkpoint: str = MISSING  # a run directory of ``rl-router train``, an exported folder or a repo id
    out_dir: str | None = None  # where report.{json,md} and pareto.png go; None: <checkpoint>/eval
    split: str = "test"  # "test": the run's held-out rows; "all": every row (e.g. a new data.path)
    data: Any = None  # a data option (`data=routellm data.path=...`) replacing the run's; None: the run's
    pool: Any = None  # LLM routers: a pool option serving the router's candidates; None: the run's
    limit: int | None = None  # LLM routers: evaluate the first N rows only
    batch_size: int = 16  # LLM routers: episodes generated together (one pool call per turn)
    resume: bool = True  # LLM routers: reuse rows out_dir/scored.jsonl already holds for this router
    outcome: str | None = None  # LLM routers: score with em / f1 / reply; None: the training outcome

    def __post_init__(self) -> None:
        if self.split not in ("test", "all"):
            raise ValueError(f"split={self.split!r}: use test (held-out rows) or all")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}: use 1 or more")
        if self.outcome not in (None, "em", "f1", "reply"):
            raise ValueError(f"outcome={self.outcome!r}: use em, f1, reply or null (the training outcome)")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit={self.limit}: use null (every row) or 1 or more")


@dataclass
class ExportConfig:
    """Root of ``rl-router export``: a Hub-ready folder from a trained run."""

    checkpoint: str = MISSING  # a run directory written by ``rl-router train``
    repo_id: str = MISSING  # Hub repository, "<user>/<name>"
    out_dir: str | None = None  # where the folder is written; None: <checkpoint>/export/<repo name>
    push: bool = False  # upload with huggingface_hub (token from HF_TOKEN)
    private: bool = False  # push=true: create the Hub repo as private (an existing repo keeps its setting)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", self.repo_id):
            raise ValueError(f"repo_id={self.repo_id!r}: use <user>/<name>, e.g. alice/routellm-router")


def _schemas() -> list[tuple[str | None, str, type]]:
    """(group, name, dataclass) of every schema; imports are local so ``rl-router --help`` starts fast."""
    from envs.multi_llm_qa import MultiLLMQAConfig
    from rl_router.data.fanout_qa import FanOutQADataConfig
    from rl_router.data.mixture import QAMixDataConfig
    from rl_router.data.qa import QALocalDataConfig, RouterR1DataConfig
    from rl_router.data.reasoning_tasks import ReasoningGymDataConfig
    from rl_router.data.routing_table import RoutingTableDataConfig
    from rl_router.policies.mlp import MLPPolicyConfig
    from rl_router.policies.router_policy import RouterPolicyConfig
    from rl_router.pool.descriptors import PoolConfig
    from rl_router.trainers.grpo import GRPOTrainerConfig
    from rl_router.trainers.ppo import PPOConfig

    return [
        (None, "base_train", TrainConfig),
        (None, "base_eval", EvalConfig),
        (None, "base_export", ExportConfig),
        ("env", "multi_llm_qa_schema", MultiLLMQAConfig),
        ("policy", "router_schema", RouterPolicyConfig),
        ("policy", "mlp_schema", MLPPolicyConfig),
        ("trainer", "ppo_schema", PPOConfig),
        ("trainer", "grpo_schema", GRPOTrainerConfig),
        ("pool", "pool_schema", PoolConfig),
        ("data", "routellm_schema", RoutingTableDataConfig),
        ("data", "qa_local_schema", QALocalDataConfig),
        ("data", "router_r1_benchmarks_schema", RouterR1DataConfig),
        ("data", "fanoutqa_schema", FanOutQADataConfig),
        ("data", "reasoning_gym_schema", ReasoningGymDataConfig),
        ("data", "qa_mix_schema", QAMixDataConfig),
        ("logger", "wandb_schema", WandbLoggerConfig),
        ("logger", "none_schema", NullLoggerConfig),
    ]


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    for group, name, node in _schemas():
        cs.store(group=group, name=name, node=node)


def typed(node: Any) -> Any:
    """A composed config node as its schema's dataclass; its ``__post_init__`` checks run here."""
    return OmegaConf.to_object(node)


def construct(schema: Any, **runtime: Any) -> Any:
    """Call a typed config's ``_target_`` with its fields plus runtime objects.

    Hydra's ``instantiate`` copies keyword arguments into config nodes, which turns thousands of
    data rows into OmegaConf containers; runtime objects (rows, embedding arrays, pools) go
    through this instead.

    Args:
        schema: a dataclass instance with a ``_target_`` field (e.g. ``typed(cfg.env)``).
        **runtime: objects the config cannot hold.
    """
    target = get_object(schema._target_)
    options = {f.name: getattr(schema, f.name) for f in fields(schema) if not f.name.startswith("_")}
    return target(**options, **runtime)
