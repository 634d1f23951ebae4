"""Pool test fixtures: a tiny routing table, one local Ray for the session, logger state kept.

The loopback OpenAI server is in tests/conftest.py.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rl_router.pool.worker_logs import LIBRARY_LOGGERS


@pytest.fixture
def tiny_table():
    """Two models x three queries, with MMLU-style rows that recorded no response text."""
    from rl_router.data.routing_table import RoutingTable

    return RoutingTable(
        name="tiny",
        models=["small-col", "large-col"],
        ids=["gsm8k/0", "gsm8k/1", "mmlu/x/0"],
        prompts=["1+1?", "2+2?", "Capital of France?"],
        sources=["gsm8k", "gsm8k", "mmlu/x"],
        scores=np.array([[1, 1], [0, 1], [0, 1]], dtype=np.float32),
        responses=[["2", "2"], ["5", "4"], [None, None]],
        input_tokens=np.array([[10, 12], [11, 13], [20, 20]]),
        output_tokens=np.array([[100, 300], [120, 310], [1, 1]]),
    )


@pytest.fixture(scope="session")
def local_ray():
    """A local Ray with two CPUs, started once: every Ray test module shares it (start-up costs seconds).

    It also offers one unit of the custom resource ``pool_test`` (placement tests hold and free it).
    """
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, resources={"pool_test": 1}, include_dashboard=False, namespace="rl_router_tests")
    yield ray
    ray.shutdown()


@pytest.fixture
def keep_library_loggers():
    """Undo what ``build_pool(log_file=...)`` does to this process's library loggers."""
    saved = {}
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.propagate)
    yield
    for name, (handlers, propagate) in saved.items():
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.propagate = propagate
