"""The one env factory: training, evaluation and inference build every env through it.

An env is named by a config (a typed dataclass, or the plain mapping a run or an export recorded);
its ``_target_`` must be one of this project's env classes (:data:`ENV_SCHEMAS`), and its keys are
checked against that env's schema, so a recorded config can neither call arbitrary code nor drift
from what training used. Runtime objects (the pool, rows, the cost normaliser, the router's token
counter, query embeddings) are passed in, never stored in the config::

    make_env = env_factory(cfg.env, pool=pool, normalizer=normalizer, count_tokens=count_tokens)
    env = make_env(rows)        # an env over these rows
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym

from envs.agent_steps import AgentStepsConfig
from envs.memory_tiers import MemoryTiersConfig
from envs.multi_llm_qa import MultiLLMQAConfig
from rl_router.config import construct
from rl_router.pool.types import CandidatePool

# env class -> its schema: the only envs a config may name
ENV_SCHEMAS: dict[str, type] = {
    "envs.multi_llm_qa.MultiLLMQAEnv": MultiLLMQAConfig,
    "envs.agent_steps.AgentStepsEnv": AgentStepsConfig,
    "envs.memory_tiers.MemoryTiersEnv": MemoryTiersConfig,
}


def env_schema(env_cfg: Any) -> Any:
    """The typed env config of ``env_cfg`` (a schema dataclass, a mapping or a ``DictConfig``).

    Raises:
        ValueError: the config names no env of :data:`ENV_SCHEMAS`, or holds a key its schema lacks.
    """
    if dataclasses.is_dataclass(env_cfg) and not isinstance(env_cfg, type):
        data = {f.name: getattr(env_cfg, f.name) for f in dataclasses.fields(env_cfg)}
    else:
        from omegaconf import OmegaConf

        data = (
            OmegaConf.to_container(env_cfg, resolve=True) if OmegaConf.is_config(env_cfg) else dict(env_cfg)
        )
    target = data.get("_target_", "envs.multi_llm_qa.MultiLLMQAEnv")
    schema = ENV_SCHEMAS.get(str(target))
    if schema is None:
        raise ValueError(
            f"env._target_={target!r} is not an env of this project; known: {sorted(ENV_SCHEMAS)}"
        )
    known = {f.name for f in dataclasses.fields(schema)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"env config key(s) {unknown} are not fields of {schema.__name__}")
    return schema(**data)


def env_factory(
    env_cfg: Any,
    *,
    pool: CandidatePool,
    normalizer: Any = None,
    count_tokens: Callable[[str], int] | None = None,
    embeddings: Any = None,
    defer_cost: bool = False,
) -> Callable[[Sequence[Mapping[str, Any]]], gym.Env]:
    """``make_env(rows)``: an env of ``env_cfg`` over ``rows``, sharing ``pool`` and ``normalizer``.

    Args:
        env_cfg: The env's config (see :func:`env_schema`).
        pool: The candidate pool every env calls.
        normalizer: One cost normaliser shared by every env made (a rolling window sees all episodes).
        count_tokens: The router tokenizer's token counter (multi-round information caps).
        embeddings: ``float32 [len(rows), D]`` query embeddings (select mode), row-aligned with the rows
            the factory is called with.
        defer_cost: Envs leave each episode's cost term to the caller, which scores a whole batch at
            once (the GRPO bridge; ``MultiLLMQAEnv(defer_cost=True)``).
    """
    schema = env_schema(env_cfg)
    runtime: dict[str, Any] = {"pool": pool, "normalizer": normalizer}
    if count_tokens is not None:
        runtime["count_tokens"] = count_tokens
    if embeddings is not None:
        runtime["embeddings"] = embeddings
    if defer_cost:
        runtime["defer_cost"] = True

    def make_env(rows: Sequence[Mapping[str, Any]]) -> gym.Env:
        return construct(schema, examples=rows, **runtime)

    return make_env


def budget_env_maker(env_cfg: AgentStepsConfig, pool: CandidatePool) -> Callable[..., Callable[[], gym.Env]]:
    """``maker(rows, budget=None)``: a zero-argument agent_steps env constructor over ``rows``.

    ``budget`` replaces ``env_cfg.budget`` (an eval cap: the same tasks under another budget); None
    keeps the config's. What the agent_steps recipes hand to boundary rollouts, vector envs and the
    capped evaluations.
    """

    def maker(rows: Sequence[Mapping[str, Any]], budget: Any = None) -> Callable[[], gym.Env]:
        options = env_cfg if budget is None else dataclasses.replace(env_cfg, budget=budget)
        make = env_factory(options, pool=pool)
        return lambda: make(rows)

    return maker
