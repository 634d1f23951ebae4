"""Candidate model pool: the only package that talks to ray / vllm (imported lazily).

>>> from rl_router.pool import ModelConfig, PoolConfig, Request, build_pool
>>> cfg = PoolConfig(models=[ModelConfig(name="echo", backend="fake")], cache=False)
>>> with build_pool(cfg) as pool:
...     pool.generate([Request("echo", ({"role": "user", "content": "hi"},))])[0].text
'echo: hi'
"""

from rl_router.pool.build import build_pool
from rl_router.pool.descriptors import ModelConfig, PoolConfig, RayConfig, ReplayTableConfig, SamplingConfig
from rl_router.pool.pool import ModelPool
from rl_router.pool.types import Backend, CandidatePool, ModelDescriptor, Request, Result, SamplingParams

__all__ = [
    "Backend",
    "CandidatePool",
    "ModelConfig",
    "ModelDescriptor",
    "ModelPool",
    "PoolConfig",
    "RayConfig",
    "ReplayTableConfig",
    "Request",
    "Result",
    "SamplingConfig",
    "SamplingParams",
    "build_pool",
]
