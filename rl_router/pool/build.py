"""``build_pool(cfg)``: a :class:`~rl_router.pool.pool.ModelPool` from a :class:`PoolConfig`.

From code::

    pool = build_pool(PoolConfig(models=[ModelConfig(name="a", backend="fake")], cache=False))

From Hydra (``conf/pool/*.yaml`` carry ``_target_: rl_router.pool.build.build_pool``)::

    pool = hydra.utils.instantiate(cfg.pool)   # fields arrive as keywords (``_convert_: object``)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rl_router.pool.descriptors import ModelConfig, PoolConfig
from rl_router.pool.types import CandidatePool

if TYPE_CHECKING:
    from rl_router.data.routing_table import RoutingTable
    from rl_router.pool.pool import ModelPool


def make_backend(
    cfg: ModelConfig, *, timeout_s: float, table: RoutingTable | None = None, in_process: bool = False
) -> CandidatePool:
    """The backend serving one model: in this process, or in a Ray actor when ``cfg.in_ray``.

    Args:
        cfg: the model.
        timeout_s: per-call timeout (Ray actors and HTTP requests enforce it themselves).
        table: the routing table, for replay models.
        in_process: build here even when ``cfg.in_ray`` (what the Ray actor itself does).
    """
    descriptor = cfg.descriptor()
    if cfg.in_ray and not in_process:
        from rl_router.pool.ray_actors import RemoteBackend

        return RemoteBackend(cfg, timeout_s=timeout_s)
    if cfg.backend == "fake":
        from rl_router.pool.fake import FakeBackend

        return FakeBackend(descriptor, cfg.fake)
    if cfg.backend == "replay":
        from rl_router.pool.replay import ReplayBackend

        if table is None:
            raise ValueError(f"replay model {cfg.name!r} needs a routing table (pool.replay)")
        return ReplayBackend(descriptor, table)
    if cfg.backend == "hf":
        from rl_router.pool.hf_backend import HFBackend

        return HFBackend(descriptor, cfg.hf)
    if cfg.backend == "vllm":
        from rl_router.pool.vllm_backend import VLLMBackend

        return VLLMBackend(descriptor, cfg.vllm)
    from rl_router.pool.openai_backend import OpenAIBackend

    return OpenAIBackend(descriptor, cfg.openai, timeout_s=timeout_s)


def build_pool(
    cfg: PoolConfig | None = None, *, table: RoutingTable | None = None, **fields: Any
) -> ModelPool:
    """Build every backend of a pool (starting Ray and actors if any model needs them).

    Args:
        cfg: the pool config; or leave it out and pass its fields as keywords (what Hydra does).
        table: a routing table for replay models; None loads the one ``cfg.replay`` describes.
        **fields: :class:`PoolConfig` fields, when ``cfg`` is None.

    Returns:
        The pool; close it (or use it as a context manager) to stop its actors.

    Raises:
        ValueError: an invalid config, or a replay column missing from the table.
        ray.exceptions.RayActorError: a model failed to load in its actor (startup faults raise;
            faults after startup become error results).
    """
    from rl_router.pool.cache import ResponseCache
    from rl_router.pool.pool import ModelPool
    from rl_router.pool.ray_actors import RemoteBackend, ensure_ray

    if cfg is None:
        cfg = PoolConfig(**fields)
    elif fields:
        raise TypeError(f"pass a PoolConfig or its fields, not both (got {sorted(fields)})")
    if table is None and any(m.backend == "replay" for m in cfg.models):
        from rl_router.data.routing_table import load_routing_table

        r = cfg.replay
        table = load_routing_table(
            r.path, benchmarks=tuple(r.benchmarks), exclude_contaminated=r.exclude_contaminated, limit=r.limit
        )
    if any(m.in_ray for m in cfg.models):
        ensure_ray(cfg.ray)

    backends: list[CandidatePool] = []
    try:
        for model in cfg.models:
            backends.append(make_backend(model, timeout_s=cfg.timeout_s, table=table))
        for backend in backends:  # actors load their models in parallel; wait for all of them here
            if isinstance(backend, RemoteBackend):
                backend.wait_ready()
    except BaseException:
        for backend in backends:
            backend.close()
        raise
    cache = ResponseCache(cfg.cache_dir) if cfg.cache else None
    return ModelPool(backends, cache=cache, timeout_s=cfg.timeout_s, retries=cfg.retries)
