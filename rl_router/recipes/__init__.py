"""Training recipes: thin drivers of setup -> train -> evaluate, one module each. Only the CLI imports them.

A recipe is chosen by the ``trainer`` and ``env`` groups together (:data:`RECIPES`):

============================  ==========================  =======================================
trainer                       env                         recipe
============================  ==========================  =======================================
``ppo`` (PPOConfig)           ``multi_llm_qa``, select     :mod:`~rl_router.recipes.policy_router_ppo`
``grpo`` (GRPOTrainerConfig)  ``multi_llm_qa``, multi_round :mod:`~rl_router.recipes.llm_router_grpo`
``ppo`` (PPOConfig)           ``agent_steps``, features    :mod:`~rl_router.recipes.agent_steps_ppo`
``grpo`` (GRPOTrainerConfig)  ``agent_steps``, text        :mod:`~rl_router.recipes.agent_steps_grpo`
``joint_ppo``                 ``memory_tiers``, per_module :mod:`~rl_router.recipes.memory_tiers_ppo`
============================  ==========================  =======================================

A combination without a recipe stops at start with a message naming both.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

# (trainer schema, env class, env mode) -> the recipe module
RECIPES: dict[tuple[str, str, str], str] = {
    ("PPOConfig", "envs.multi_llm_qa.MultiLLMQAEnv", "select"): "rl_router.recipes.policy_router_ppo",
    (
        "GRPOTrainerConfig",
        "envs.multi_llm_qa.MultiLLMQAEnv",
        "multi_round",
    ): "rl_router.recipes.llm_router_grpo",
    ("PPOConfig", "envs.agent_steps.AgentStepsEnv", "features"): "rl_router.recipes.agent_steps_ppo",
    ("GRPOTrainerConfig", "envs.agent_steps.AgentStepsEnv", "text"): "rl_router.recipes.agent_steps_grpo",
    (
        "JointPPOConfig",
        "envs.memory_tiers.MemoryTiersEnv",
        "per_module",
    ): "rl_router.recipes.memory_tiers_ppo",
}


def recipe_for(cfg: DictConfig) -> Callable[..., dict[str, Any]]:
    """The ``train(cfg, run_dir)`` of the recipe for ``cfg.trainer`` and ``cfg.env``.

    Raises:
        ValueError: no recipe trains that trainer on that env; the message names both and the
            combinations that exist.
    """
    from rl_router.config import typed

    trainer = type(typed(cfg.trainer)).__name__
    env = (str(cfg.env.get("_target_")), str(cfg.env.get("mode")))
    module = RECIPES.get((trainer, *env))
    if module is None:
        known = "; ".join(f"{t} with {e} mode={m}" for t, e, m in RECIPES)
        raise ValueError(
            f"no recipe trains trainer {trainer} on env {env[0]} (mode={env[1]}): choose a combination "
            f"that exists ({known}), e.g. trainer=grpo needs env=multi_llm_qa_router_r1"
        )
    return importlib.import_module(module).train


def run_training(cfg: DictConfig, overrides: Sequence[str] | None = None) -> dict[str, Any]:
    """The Hydra task of ``rl-router train``: picks the recipe and trains in Hydra's run directory.

    On ``resume=<run>`` the run's recorded config is continued (:func:`rl_router.run.resumed_config`).
    """
    from hydra.core.hydra_config import HydraConfig

    from rl_router.run import load_run_config, resumed_config

    hydra = HydraConfig.get()
    run_dir = Path(hydra.runtime.output_dir)
    if cfg.resume is not None:
        typed_overrides = list(hydra.overrides.task) if overrides is None else list(overrides)
        cfg = resumed_config(cfg, load_run_config(cfg.resume), typed_overrides)
    return recipe_for(cfg)(cfg, run_dir)
