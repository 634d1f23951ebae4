"""``make_backend(cfg)``: the in-process backend one :class:`~rl_router.pool.descriptors.ModelConfig` names.

Used by :func:`~rl_router.pool.build.build_pool` for the models served in the caller's process, and
by the Ray actor (:mod:`rl_router.pool.ray_actors`) for the one model it hosts. Importing this module
is cheap: each backend imports its engine (torch, vLLM, the OpenAI client) only when it is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rl_router.pool.fake import FakeBackend
from rl_router.pool.hf_backend import HFBackend
from rl_router.pool.openai_backend import OpenAIBackend
from rl_router.pool.replay import ReplayBackend
from rl_router.pool.vllm_backend import VLLMBackend

if TYPE_CHECKING:
    from rl_router.data.routing_table import RoutingTable
    from rl_router.pool.descriptors import ModelConfig
    from rl_router.pool.types import Backend


def make_backend(cfg: ModelConfig, *, timeout_s: float, table: RoutingTable | None = None) -> Backend:
    """Build the backend serving ``cfg`` in this process (loading its model, if it has one).

    Args:
        cfg: the model.
        timeout_s: per-request timeout of the HTTP backend (the pool bounds in-process calls).
        table: the routing table, for replay models.

    Raises:
        ValueError: a replay model without a table, or with a column the table lacks.
    """
    descriptor = cfg.descriptor()
    if cfg.backend == "fake":
        return FakeBackend(descriptor, cfg.fake)
    if cfg.backend == "replay":
        if table is None:
            raise ValueError(f"replay model {cfg.name!r} needs a routing table (pool.replay)")
        return ReplayBackend(descriptor, table)
    if cfg.backend == "hf":
        return HFBackend(descriptor, cfg.hf)
    if cfg.backend == "vllm":
        return VLLMBackend(descriptor, cfg.vllm)
    return OpenAIBackend(descriptor, cfg.openai, timeout_s=timeout_s)
