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

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


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

    checkpoint: str = MISSING  # a run directory written by ``rl-router train``
    out_dir: str | None = None  # where report.{json,md} and pareto.png go; None: <checkpoint>/eval
    data: dict[str, Any] = field(default_factory=dict)  # merged into the run's data config


@dataclass
class ExportConfig:
    """Root of ``rl-router export``: a Hub-ready folder from a trained run."""

    checkpoint: str = MISSING  # a run directory written by ``rl-router train``
    repo_id: str = MISSING  # Hub repository, "<user>/<name>"
    push: bool = False  # upload with huggingface_hub (token from HF_TOKEN)


def _schemas() -> list[tuple[str | None, str, type]]:
    """(group, name, dataclass) of every schema; imports are local so the CLI starts fast."""
    return [
        (None, "base_train", TrainConfig),
        (None, "base_eval", EvalConfig),
        (None, "base_export", ExportConfig),
        ("logger", "wandb_schema", WandbLoggerConfig),
        ("logger", "none_schema", NullLoggerConfig),
    ]


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    for group, name, node in _schemas():
        cs.store(group=group, name=name, node=node)
