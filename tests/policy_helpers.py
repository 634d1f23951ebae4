"""A policy-router run directory without training: a composed config and a checkpoint of random weights."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from rl_router.checkpoint import save_checkpoint
from rl_router.routers.policy import build_policy, pool_descriptors
from rl_router.run import RUN_CONFIG


def make_run(cfg: DictConfig, run: Path) -> Path:
    """``run``: a run directory holding ``cfg`` and a step-64 checkpoint of random weights (seed 0)."""
    run.mkdir()
    OmegaConf.save(cfg, run / RUN_CONFIG, resolve=True)
    torch.manual_seed(0)
    policy = build_policy(cfg.policy, pool_descriptors(cfg.pool), list(cfg.env.features))
    save_checkpoint(run, 64, policy, torch.optim.Adam(policy.parameters()), {"global_step": 64})
    return run
