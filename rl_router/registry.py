"""Every config schema, registered with Hydra's ConfigStore (the CLI calls :func:`register_configs`).

Every option file under ``conf/<group>/`` starts with ``defaults: [<schema>, _self_]`` where
``<schema>`` is one of the dataclasses registered here in the same group. Hydra then composes in
struct mode, so a misspelt key or a wrong type fails at start with the key's name, e.g.
``rl-router train trainer.not_a_key=1`` -> ``Key 'not_a_key' is not in struct``.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore


def schemas() -> list[tuple[str | None, str, type]]:
    """(group, name, dataclass) of every schema; imports are local so ``rl-router --help`` starts fast."""
    from envs.agent_steps import AgentStepsConfig
    from envs.games.tasks import GameTasksConfig
    from envs.multi_llm_qa import MultiLLMQAConfig
    from rl_router.config import NullLoggerConfig, TrainConfig, WandbLoggerConfig
    from rl_router.data.fanout_qa import FanOutQADataConfig
    from rl_router.data.mixture import QAMixDataConfig
    from rl_router.data.qa import QALocalDataConfig, RouterR1DataConfig
    from rl_router.data.reasoning_tasks import ReasoningGymDataConfig
    from rl_router.data.routellm import RoutingTableDataConfig
    from rl_router.eval.calibrate import CalibrateConfig
    from rl_router.eval.run import EvalConfig
    from rl_router.hub import ExportConfig
    from rl_router.policies.mlp import MLPPolicyConfig
    from rl_router.policies.router_policy import RouterPolicyConfig
    from rl_router.pool.descriptors import PoolConfig
    from rl_router.recipes.memory_tiers_ppo import SCHEMAS as MEMORY_TIERS_SCHEMAS
    from rl_router.serve.config import ServeConfig
    from rl_router.trainers.grpo import GRPOTrainerConfig
    from rl_router.trainers.ppo import PPOConfig

    return [
        (None, "base_train", TrainConfig),
        (None, "base_eval", EvalConfig),
        (None, "base_export", ExportConfig),
        (None, "base_calibrate", CalibrateConfig),
        (None, "base_serve", ServeConfig),
        ("env", "multi_llm_qa_schema", MultiLLMQAConfig),
        ("env", "agent_steps_schema", AgentStepsConfig),
        ("data", "text_games_schema", GameTasksConfig),
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
        *MEMORY_TIERS_SCHEMAS,
    ]


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    for group, name, node in schemas():
        cs.store(group=group, name=name, node=node)
