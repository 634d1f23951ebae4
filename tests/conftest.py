"""Shared fixtures: offline by default, composed configs, a fake pool."""

from __future__ import annotations

import os

import pytest

# Tests never reach a hub: transformers / datasets / huggingface_hub must stay offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture
def compose():
    """Compose a root config (``config``, ``eval`` or ``export``) with overrides, as the CLI does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from rl_router.cli import conf_dir, run_dir_resolver
    from rl_router.config import register_configs

    register_configs()
    if not OmegaConf.has_resolver("rl_run_dir"):
        OmegaConf.register_new_resolver("rl_run_dir", run_dir_resolver, use_cache=True)

    def _compose(overrides: list[str] | None = None, config_name: str = "config"):
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return hydra_compose(config_name=config_name, overrides=overrides or [])

    return _compose
