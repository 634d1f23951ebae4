"""What a serve replica holds, built from a :class:`~rl_router.serve.config.ServeConfig`.

:func:`resolve` runs first, in the process that launches the server: it loads the router once to
check everything a user can get wrong (an env serve cannot play, a pool with other candidates or
replay ones, a recorded pool that would send a key elsewhere) and returns the pool config to use,
so a bad start fails there, with its message, before any Ray process starts. :func:`build_routing`
then runs in each replica: router, candidate pool (:func:`rl_router.pool.build_pool`; Ray actors for
vLLM candidates), query embedder and per-request targets.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rl_router.pool.build import build_pool_from
from rl_router.routers.folder import ROUTER_CONFIG, ROUTER_KINDS
from rl_router.routers.load import load_router
from rl_router.run import RUN_CONFIG
from rl_router.serve.batching import BatchingPool
from rl_router.serve.config import ServeConfig
from rl_router.serve.routing import LLMRouting, PolicyRouting, Routing
from rl_router.trust import check_recorded, check_recorded_pool

SERVABLE_ENV = "envs.multi_llm_qa.MultiLLMQAEnv"
NOT_SERVABLE = (
    "serving routers trained on {env} is not supported yet: rl-router serve serves multi_llm_qa "
    "routers (policy routers: one pick per request; LLM routers: one Router-R1 episode). agent_steps "
    "and memory_tiers routers route inside an episode of their env, which a chat request does not hold"
)


def resolve(config: ServeConfig) -> dict[str, Any]:
    """Check that ``config`` can be served; returns the pool config (plain data) the replicas build.

    Raises:
        NotImplementedError: an agent_steps / memory_tiers (or other non multi_llm_qa) router.
        ValueError: no usable pool (none recorded, other candidate names, replay candidates).
        UntrustedConfigError: a recorded pool or data option naming code or endpoints not allowed.
    """
    check_servable(config.checkpoint)
    router = load_router(config.checkpoint)
    check_env(router.training.get("env") or {})
    where = f"{router.checkpoint} (recorded training config)"
    if config.pool is not None:
        pool_cfg = _plain(config.pool)
    else:
        recorded = router.training.get("pool")
        if recorded is None:
            raise ValueError(f"{router.checkpoint}: no pool recorded with this router; give pool=<option>")
        pool_cfg = _plain(recorded)
        (check_recorded if config.trust_recorded_pool else check_recorded_pool)(pool_cfg, "pool", where)
    check_pool(pool_cfg, router.model_names)
    if config.serve.targets and router.training.get("data") is not None:
        check_recorded(router.training["data"], "data", where)
    return pool_cfg


def build_routing(config: ServeConfig, pool_cfg: Mapping[str, Any]) -> Routing:
    """A replica's routing: the router, its pool and (policy routers) embedder and targets."""
    import torch

    if config.serve.torch_threads is not None:
        torch.set_num_threads(config.serve.torch_threads)
    router = load_router(config.checkpoint)
    pool = BatchingPool(build_pool_from(pool_cfg))
    s = config.serve
    try:
        from rl_router.serve.targets import TargetOffsets

        targets, reason = None, "per-request targets are off on this server (serve.targets=false)"
        if s.targets and router.training.get("data") is None:
            reason = "this router records no training data to fit a target on"
        if router.kind == "llm":
            if s.targets and router.training.get("data") is not None:
                try:
                    targets = TargetOffsets.from_llm_training(router, s.llm_calibration_rows)
                except ValueError as err:  # the server still serves; a target gets this reason
                    reason = f"no target can be fitted for this router: {err}"
            return LLMRouting(router, pool, s.context_tokens, s.model_name, None, targets, reason)
        from rl_router.serve.embedder import QueryEmbedder

        embedder = QueryEmbedder()
        if s.targets and router.training.get("data") is not None:
            targets = TargetOffsets.from_training(router, s.calibration_rows, embedder.embed)
        return PolicyRouting(
            router,
            pool,
            embedder.embed,
            embedder.count_tokens,
            s.context_tokens,
            targets,
            s.model_name,
            reason,
        )
    except BaseException:
        pool.close()
        raise


def _plain(node: Any) -> dict[str, Any]:
    """A pool config as plain data (it travels to the replicas)."""
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
    if dataclasses.is_dataclass(node):
        return dataclasses.asdict(node)  # type: ignore[arg-type]
    return dict(node)


def check_servable(source: str | Path) -> None:
    """Refuse, before anything loads, a local router this server cannot play (agent_steps, memory_tiers).

    Raises:
        NotImplementedError: the router was trained on another env than multi_llm_qa.
    """
    path = Path(source)
    for home in (path, path.parent, path.parent.parent):
        if (home / RUN_CONFIG).is_file():
            env = OmegaConf.to_container(OmegaConf.load(home / RUN_CONFIG)).get("env") or {}
            check_env(env)
            return
        if (home / ROUTER_CONFIG).is_file():
            config = json.loads((home / ROUTER_CONFIG).read_text())
            if config.get("router_kind") not in ROUTER_KINDS:
                raise NotImplementedError(
                    NOT_SERVABLE.format(env=f"router_kind={config.get('router_kind')!r}")
                )
            check_env((config.get("training") or {}).get("env") or {})
            return


def check_env(env: Mapping[str, Any]) -> None:
    """Refuse a recorded env config other than multi_llm_qa's (an empty one passes)."""
    target = env.get("_target_")
    if target is not None and target != SERVABLE_ENV:
        raise NotImplementedError(NOT_SERVABLE.format(env=target))


def check_pool(pool_cfg: Mapping[str, Any], router_names: Sequence[str]) -> None:
    """Refuse a pool that cannot answer this router's live requests.

    Raises:
        ValueError: other candidate names than the router's (in its order), or a replay candidate.
    """
    models = list(pool_cfg.get("models") or [])
    names = [str(m.get("name")) for m in models]
    if names != list(router_names):
        raise ValueError(
            f"the pool serves {names}, but this router routes between {list(router_names)} (in that "
            "order): give pool=<option> whose models have the router's names"
        )
    replay = [str(m.get("name")) for m in models if m.get("backend") == "replay"]
    if replay:
        raise ValueError(
            f"pool models {replay} are replay candidates: they answer recorded table rows, not new "
            "prompts; give pool=<option> with live candidates of the same names"
        )
