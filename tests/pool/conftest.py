"""Pool test helpers: a tiny routing table (the loopback OpenAI server is in tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest


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
