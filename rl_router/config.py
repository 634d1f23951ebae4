"""Config helpers every layer uses: :func:`typed`, :func:`construct`, and the root and logger schemas.

Schemas live next to the code they configure (one concept per file); :mod:`rl_router.registry`
registers them all with Hydra's ConfigStore. Library code receives dataclass instances
(:func:`typed`), whose ``__post_init__`` checks run at that point.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

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
    resume: str | None = (
        None  # a run directory to continue from its last checkpoint, with its recorded config
    )
    trust_pickles: bool = False  # resume: also load run state an older rl-router pickled (runs its code)
    verbose: bool = False  # show engine and worker logs (vLLM, Ray) in the terminal; False: <run>/run.log
    env: Any = MISSING
    policy: Any = MISSING
    trainer: Any = MISSING
    pool: Any = MISSING
    data: Any = MISSING
    logger: Any = MISSING


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
