"""``build_pool(cfg)``: a :class:`~rl_router.pool.pool.ModelPool` from a :class:`PoolConfig`.

From code::

    pool = build_pool(PoolConfig(models=[ModelConfig(name="a", backend="fake")], cache=False))

From Hydra (``conf/pool/*.yaml`` carry ``_target_: rl_router.pool.build.build_pool``); runtime
options such as ``log_file`` are passed at instantiate time::

    pool = hydra.utils.instantiate(cfg.pool, log_file=run_dir / "workers.log")
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rl_router.pool.cache import ResponseCache
from rl_router.pool.descriptors import PoolConfig
from rl_router.pool.factory import make_backend
from rl_router.pool.pool import ModelPool
from rl_router.pool.ray_actors import RemoteBackend, ensure_ray
from rl_router.pool.worker_logs import move_loggers

if TYPE_CHECKING:
    from rl_router.data.routing_table import RoutingTable
    from rl_router.pool.types import Backend


def build_pool(
    cfg: PoolConfig | None = None,
    *,
    table: RoutingTable | None = None,
    log_file: str | Path | None = None,
    **fields: Any,
) -> ModelPool:
    """Build every backend of a pool (starting Ray and actors if any model needs them).

    Args:
        cfg: the pool config; or leave it out and pass its fields as keywords (what Hydra does).
        table: a routing table for replay models; None loads the one ``cfg.replay`` describes.
        log_file: append worker output here instead of printing it: each Ray actor's stdout, stderr
            and log records (vLLM's and transformers' included), and this process's ``vllm`` and
            ``ray`` loggers; a Ray started here runs with ``log_to_driver=False`` and WARNING-level
            logging. Relative paths are taken from the current directory; on a Ray cluster the path
            is on each actor's node. None: everything shows on the terminal.
        **fields: :class:`PoolConfig` fields, when ``cfg`` is None.

    Returns:
        The pool; close it (or use it as a context manager) to stop its actors.

    Raises:
        ValueError: an invalid config, or a replay column missing from the table.
        ray.exceptions.RayActorError: a model failed to load in its actor (startup faults raise;
            faults after startup become error results).
        TimeoutError: an actor was not placed and loaded within ``cfg.ray.start_timeout_s``.
    """
    if cfg is None:
        cfg = PoolConfig(**fields)
    elif fields:
        raise TypeError(f"pass a PoolConfig or its fields, not both (got {sorted(fields)})")
    if table is None and any(m.backend == "replay" for m in cfg.models):
        from rl_router.data.routellm import load_routing_table  # pandas: only replay pools need it

        r = cfg.replay
        table = load_routing_table(
            r.path, benchmarks=tuple(r.benchmarks), exclude_contaminated=r.exclude_contaminated, limit=r.limit
        )
    log_path = None
    if log_file is not None:
        # Absolute: actors do not share the driver's working directory.
        log_path = Path(log_file).expanduser().resolve()
        log_path.parent.mkdir(parents=True, exist_ok=True)
    if any(m.in_ray for m in cfg.models):
        ensure_ray(cfg.ray, log_file=log_path)
    if log_path is not None:
        move_loggers(log_path)

    backends: list[Backend] = []
    try:
        for model in cfg.models:
            if model.in_ray:
                backends.append(
                    RemoteBackend(
                        model, cfg.timeout_s, start_timeout_s=cfg.ray.start_timeout_s, log_file=log_path
                    )
                )
            else:
                backends.append(make_backend(model, timeout_s=cfg.timeout_s, table=table))
        for backend in backends:  # actors load their models in parallel; wait for all of them here
            backend.wait_ready()
    except BaseException:
        for backend in backends:
            backend.close()
        raise
    cache = ResponseCache(cfg.cache_dir) if cfg.cache else None
    return ModelPool(backends, cache=cache, timeout_s=cfg.timeout_s, retries=cfg.retries)


def build_pool_from(pool_cfg: Any, log_file: Path | None = None) -> ModelPool:
    """A live pool from a pool option (a DictConfig, or the plain dict a run or an export recorded).

    ``log_file``: where engine and worker logs go (None: the terminal).
    """
    from omegaconf import OmegaConf

    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(PoolConfig), pool_cfg))
    return build_pool(config, log_file=log_file)
