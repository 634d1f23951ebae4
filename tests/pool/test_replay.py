"""Replay backend: table lookups, recorded scores, token costs at the descriptor's list prices."""

from __future__ import annotations

import pytest
from pool_helpers import req

from rl_router.pool import CandidatePool, ModelConfig, PoolConfig, build_pool
from rl_router.pool.replay import ReplayBackend
from rl_router.pool.types import ModelDescriptor


def replay_cfg() -> PoolConfig:
    return PoolConfig(
        models=[
            ModelConfig(name="small", backend="replay", model="small-col", price_in=0.24, price_out=0.24),
            ModelConfig(name="large", backend="replay", model="large-col", price_in=24.7, price_out=24.7),
        ],
    )


def test_lookup_by_query_id_with_recorded_score_and_cost(tiny_table):
    with build_pool(replay_cfg(), table=tiny_table) as pool:
        results = pool.generate(
            [req("small", "2+2?", query_id="gsm8k/1"), req("large", "2+2?", query_id="gsm8k/1")]
        )
        again = pool.generate([req("large", "2+2?", query_id="gsm8k/1")])
    small, large = results
    assert (small.text, small.score, large.text, large.score) == ("5", 0.0, "4", 1.0)
    assert (large.input_tokens, large.output_tokens) == (13, 310)
    assert small.cost_usd == pytest.approx((11 + 120) * 0.24 / 1e6)
    assert large.cost_usd == pytest.approx((13 + 310) * 24.7 / 1e6)
    assert not again[0].cache_hit  # the table is the record; no second cache on top


def test_row_without_response_text_still_scores(tiny_table):
    backend = ReplayBackend(ModelDescriptor("l", "replay", model="large-col"), tiny_table)
    assert isinstance(backend, CandidatePool)
    (result,) = backend.generate([req("l", "Capital of France?", query_id="mmlu/x/0")])
    assert (result.text, result.score, result.ok) == ("", 1.0, True)


def test_missing_or_unknown_query_id_is_an_error(tiny_table):
    backend = ReplayBackend(ModelDescriptor("l", "replay", model="large-col"), tiny_table)
    no_id, unknown = backend.generate([req("l", "q"), req("l", "q", query_id="gsm8k/999")])
    assert "needs Request.query_id" in no_id.error
    assert "'gsm8k/999' is not in table 'tiny'" in unknown.error


def test_unknown_column_fails_at_build_with_the_choices(tiny_table):
    with pytest.raises(ValueError, match="large-col"):
        ReplayBackend(ModelDescriptor("x", "replay", model="gpt-5"), tiny_table)
