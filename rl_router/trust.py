"""What a shared folder may name: loading a run or an export is data-only.

Run directories and exported folders record configs (``config.yaml``, ``router_config.json``). Hydra
would import and call any ``_target_`` they hold, so before anything recorded is instantiated,
:func:`check_recorded` walks it: every ``_target_`` must be one of this project's own loaders, pool
builders, policies or envs (:data:`ALLOWED_TARGETS`), and no other Hydra instruction key (``_args_``,
``_partial_`` ...) may appear. Anything else is refused with the key and the target in the message;
nothing is imported to find out.

A recorded pool can also send the user's API key somewhere: :func:`check_recorded_pool` refuses a
candidate that reads a key from the environment and sends it to an endpoint the recording fixed
(a literal ``base_url`` other than OpenAI's default, not the ``${oc.env:...}`` the user's own
environment fills in).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from rl_router.pool.openai_backend import OpenAIOptions

# The endpoint an OpenAI-compatible candidate uses when a config names none: not a recording's choice.
DEFAULT_BASE_URL = next(f.default for f in fields(OpenAIOptions) if f.name == "base_url")

# group -> the only `_target_` values a recorded config of that group may name
ALLOWED_TARGETS: dict[str, frozenset[str]] = {
    "data": frozenset(
        {
            "rl_router.data.routellm.load_routing_splits",
            "rl_router.data.routellm.load_routing_table",
            "rl_router.data.qa.load_qa_file",
            "rl_router.data.qa.load_router_r1_benchmarks",
            "rl_router.data.fanout_qa.load_fanoutqa",
            "rl_router.data.reasoning_tasks.load_reasoning_gym",
            "rl_router.data.mixture.load_qa_splits",
            "rl_router.data.locomo.locomo_splits",
            "envs.games.tasks.game_task_splits",
        }
    ),
    "pool": frozenset({"rl_router.pool.build.build_pool"}),
    "policy": frozenset(
        {
            "rl_router.policies.mlp.ActorCritic",
            "rl_router.policies.router_policy.RouterPolicy",
            "rl_router.policies.memory_tiers.MemoryTierPolicy",
        }
    ),
    "env": frozenset(
        {
            "envs.multi_llm_qa.MultiLLMQAEnv",
            "envs.agent_steps.AgentStepsEnv",
            "envs.memory_tiers.MemoryTiersEnv",
        }
    ),
    "logger": frozenset({"rl_router.loggers.WandbLogger", "rl_router.loggers.NullLogger"}),
}
# Hydra keys that only change how an allowed target is called, never which code runs.
HARMLESS_KEYS = frozenset({"_target_", "_convert_", "_recursive_"})


class UntrustedConfigError(ValueError):
    """A recorded config names code this project does not allow a shared folder to run."""


def check_recorded(node: Any, group: str, where: str) -> None:
    """Refuse a recorded config ``node`` of ``group`` that would run anything but our own code.

    Args:
        node: The recorded config (plain data: dicts, lists, scalars).
        group: Its config group (a key of :data:`ALLOWED_TARGETS`); nested targets (a data mixture's
            parts) must be allowed for the same group.
        where: The file it came from, for the message.

    Raises:
        UntrustedConfigError: naming the key path and the target.
    """
    allowed = ALLOWED_TARGETS[group]

    def walk(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            for key, child in value.items():
                key = str(key)
                here = f"{path}.{key}"
                if key.startswith("_") and key.endswith("_") and key not in HARMLESS_KEYS:
                    raise UntrustedConfigError(
                        f"{where}: {here} is a Hydra instruction a shared config may not hold; refusing it"
                    )
                if key == "_target_" and str(child) not in allowed:
                    raise UntrustedConfigError(
                        f"{where}: {here}={child!r} is not one of rl-router's own {group} targets; "
                        "refusing to import or call it"
                    )
                walk(child, here)
        elif isinstance(value, list | tuple):
            for i, child in enumerate(value):
                walk(child, f"{path}.{i}")

    walk(node, group)


def check_recorded_pool(pool: Mapping[str, Any], group: str, where: str) -> None:
    """Refuse a recorded pool that would send an API key to an endpoint the recording chose.

    Raises:
        UntrustedConfigError: a model reads ``api_key_env`` and its ``base_url`` is a literal; the
            message names the model, the endpoint and the two ways on (``pool=``, ``trust_recorded_pool``).
    """
    check_recorded(pool, group, where)
    for i, model in enumerate(pool.get("models") or []):
        openai = (model or {}).get("openai") or {}
        url, key = openai.get("base_url"), openai.get("api_key_env")
        if key and isinstance(url, str) and "${oc.env:" not in url and url != DEFAULT_BASE_URL:
            raise UntrustedConfigError(
                f"{where}: pool.models.{i} ({model.get('name')!r}) would send ${key} to {url}, an endpoint "
                "fixed by whoever recorded this pool; give pool=<option> to choose the candidates' "
                "endpoint yourself, or trust_recorded_pool=true if you trust that host"
            )
