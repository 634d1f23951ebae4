"""What every recipe does first: the run directory, its recorded config, seeds, the logger, resume.

Shared by :mod:`rl_router.recipes` (both recipes call :func:`start_run`) and the trainers (seeding,
trimming ``*.jsonl`` rows a resumed run redoes). A run directory holds ``config.yaml``, the config the
run was started with (environment variables kept as ``${oc.env:...}`` interpolations).

Resuming (``rl-router train resume=<run>``) continues the run's *recorded* config, not a fresh
composition: :func:`resumed_config` keeps it, applies only the overrides the user typed that cannot
change what was trained (logging, progress, evaluation limits), and refuses the others by name.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf, open_dict

from rl_router.config import construct, typed
from rl_router.loggers import Logger

RUN_CONFIG = "config.yaml"  # the training config of a run, as recorded
METRICS = "metrics.jsonl"  # one JSON row per logged step
LOG_FILE = "run.log"  # engine and worker output (vLLM, Ray) unless verbose=true
VALIDATION_DIR = "validation"  # a run's evaluation on the validation split (choices are made on it)
ROUTER_DIR = "router"  # an LLM-router run's trained router (a transformers folder)
SFT_DIR = "sft_model"  # an LLM-router run's warm start (the input of GRPO)
ROLLOUTS = "rollouts.jsonl"  # an LLM-router run's training episodes, one JSON line each
SFT_TRAJECTORIES = "sft_trajectories.jsonl"  # what an LLM-router run's warm start imitated, one line each
# Keys a resumed run may change: they decide what is logged or shown, not what is trained.
HARMLESS_ON_RESUME = (
    "logger",
    "verbose",
    "trust_pickles",
    "output_root",
    "trainer.progress",
    "trainer.max_steps",  # train on for longer (GRPO)
    "trainer.total_steps",  # train on for longer (PPO; an annealed learning rate stretches with it)
    "trainer.eval_limit",
    "trainer.eval_batch_size",
    "trainer.eval_warm_start",
    "trainer.log_rollouts",
    "trainer.logging_steps",
)


@dataclass
class RunContext:
    """A started run: where it writes, what it logs to, and whether it continues an earlier start."""

    run_dir: Path
    logger: Logger
    resumed: bool
    log_file: Path | None  # where engine and worker logs go; None: the terminal (verbose)


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def trim_jsonl(path: Path, step: int, keep: Callable[[Mapping[str, Any]], bool] | None = None) -> None:
    """Drop the rows of ``path`` logged after ``step`` (a resumed run logs them again).

    ``keep(row)`` keeps a later row anyway (e.g. SFT rows, which GRPO's step counter does not count).
    """
    if not path.is_file():
        return
    rows = [line for line in path.read_text().splitlines(keepends=True) if line.strip()]
    kept = [r for r in rows if json.loads(r)["step"] <= step or (keep is not None and keep(json.loads(r)))]
    path.write_text("".join(kept))


def start_run(cfg: DictConfig, run_dir: Path, groups: Iterable[str] = ()) -> RunContext:
    """Create (or reopen) ``run_dir``, record the config, check every group, seed, open the logger.

    Args:
        cfg: The composed ``rl-router train`` config (already :func:`resumed_config` on resume).
        run_dir: The run directory.
        groups: Config groups to check now (``typed``): a bad value stops the run before any work.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / RUN_CONFIG, resolve=False)
    for group in groups:
        typed(cfg[group])
    seed_everything(int(cfg.seed))
    logger = construct(
        typed(cfg.logger),
        run_dir=str(run_dir),
        run_name=f"{cfg.name}/{run_dir.name}",
        config=portable_config(cfg),
    )
    log_file = None if cfg.get("verbose", False) else run_dir / LOG_FILE
    return RunContext(run_dir=run_dir, logger=logger, resumed=cfg.resume is not None, log_file=log_file)


def portable_config(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain data, with environment-variable interpolations left unresolved.

    What goes to wandb and into exports: an endpoint or a path read from the environment stays
    ``${oc.env:NAME}``; everything else is resolved.
    """
    raw = OmegaConf.to_container(cfg, resolve=False)

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(node)]
        if isinstance(node, str) and "${oc.env:" in node:
            return node
        if isinstance(node, str) and "${" in node:
            return OmegaConf.select(cfg, path)
        return node

    return walk(raw, "")


def load_run_config(run_dir: str | Path) -> DictConfig:
    """The recorded training config of a run directory."""
    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: checkpoint= must be a run directory of `rl-router train`")
    return OmegaConf.load(path)


def run_env_target(checkpoint: str | Path) -> str | None:
    """The env class a run directory was trained on (its recorded ``env._target_``); None: not a run."""
    path = Path(checkpoint) / RUN_CONFIG
    return (OmegaConf.load(path).get("env") or {}).get("_target_") if path.is_file() else None


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
        return out or {prefix: {}}
    return {prefix: node}


def _override_key(override: str) -> str:
    key = override.split("=", 1)[0].lstrip("+~")
    return key.split("@", 1)[0].replace("/", ".")


def resumed_config(composed: DictConfig, recorded: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """The config a resumed run continues with: the recorded one, plus the harmless overrides typed.

    Args:
        composed: What the command line composes to now.
        recorded: The run's ``config.yaml``.
        overrides: The command line's overrides (``key=value``, ``group=option``).

    Raises:
        ValueError: an override changes what was trained (data, pool, env, policy, trainer shape,
            seed ...); the message names each key with its recorded and requested values.
    """
    new = _leaves(OmegaConf.to_container(composed, resolve=False))
    old = _leaves(OmegaConf.to_container(recorded, resolve=False))
    keys = [_override_key(o) for o in overrides if _override_key(o) not in ("resume", "hydra")]
    touched = {
        leaf
        for leaf in set(new) | set(old)
        if new.get(leaf) != old.get(leaf)
        and any(k in ("experiment", "debug") or leaf == k or leaf.startswith(k + ".") for k in keys)
    }
    refused = sorted(
        t for t in touched if not any(t == h or t.startswith(h + ".") for h in HARMLESS_ON_RESUME)
    )
    if refused:
        details = ", ".join(f"{k}: recorded {old.get(k)!r}, requested {new.get(k)!r}" for k in refused)
        raise ValueError(
            f"resume: the overrides change what the run was trained with ({details}); a resumed run "
            "continues its recorded config; start a new run for other settings"
        )
    merged = OmegaConf.to_container(recorded, resolve=False)
    for leaf in touched:
        _set(merged, leaf, new.get(leaf))
    for group in {t.split(".", 1)[0] for t in touched if t.split(".", 1)[0] in ("logger",)}:
        merged[group] = OmegaConf.to_container(composed, resolve=False)[group]  # a whole group swapped
    merged["resume"] = composed.resume
    out = copy.deepcopy(composed)
    with open_dict(out):
        for key, value in merged.items():
            out[key] = _typed_group(str(key), value, composed.get(key)) if isinstance(value, dict) else value
    return out


def _typed_group(group: str, values: dict[str, Any], composed: Any) -> Any:
    """``values`` of a config group on the schema it was composed with (so ``typed`` still works).

    The composed node's schema when it has the same fields, else the registered ``*_schema`` of the
    group that does (a resumed run may have been composed from another option of the group).
    """
    candidates = [composed] if OmegaConf.is_config(composed) else []
    repo = ConfigStore.instance().repo.get(group, {})
    candidates += [
        OmegaConf.create(node.node) for name, node in sorted(repo.items()) if name.endswith("_schema.yaml")
    ]
    for node in candidates:
        if set(node.keys()) == set(values) and node.get("_target_") in (None, values.get("_target_")):
            return OmegaConf.merge(node, values)
    return OmegaConf.create(values)


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        tree = tree.setdefault(part, {})
    if value is None and parts[-1] not in tree:
        return
    tree[parts[-1]] = value
