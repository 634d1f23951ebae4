"""Fake backend: deterministic answers, failure share and token accounting."""

from __future__ import annotations

import pytest
from pool_helpers import req

from rl_router.pool.fake import FakeBackend, FakeOptions
from rl_router.pool.types import ModelDescriptor, SamplingParams

DESCRIPTOR = ModelDescriptor("f", "fake", price_in=1.0, price_out=2.0)


def test_same_request_same_answer_across_instances():
    options = FakeOptions(answers=["a", "b", "c", "d"])
    requests = [req("f", f"q{i}") for i in range(40)]
    first = [r.text for r in FakeBackend(DESCRIPTOR, options).generate(requests)]
    second = [r.text for r in FakeBackend(DESCRIPTOR, options).generate(requests)]
    assert first == second and set(first) == {"a", "b", "c", "d"}


def test_seed_matters_only_when_sampling():
    backend = FakeBackend(DESCRIPTOR, FakeOptions(answers=[str(i) for i in range(1000)]))
    greedy = [backend.generate([req("f", "q", SamplingParams(seed=s))])[0].text for s in range(5)]
    sampled = [
        backend.generate([req("f", "q", SamplingParams(temperature=1.0, seed=s))])[0].text for s in range(5)
    ]
    assert len(set(greedy)) == 1 and len(set(sampled)) == 5


def test_failure_rate_is_a_share_of_requests():
    backend = FakeBackend(DESCRIPTOR, FakeOptions(failure_rate=0.3))
    results = backend.generate([req("f", f"q{i}") for i in range(2000)])
    share = sum(not r.ok for r in results) / len(results)
    assert share == pytest.approx(0.3, abs=0.04)
    assert all(r.cost_usd == 0.0 and r.output_tokens == 0 for r in results if not r.ok)


def test_tokens_and_cost_from_words():
    (result,) = FakeBackend(DESCRIPTOR, FakeOptions(answers=["x y z"])).generate([req("f", "a b")])
    assert (result.input_tokens, result.output_tokens) == (2, 3)
    assert result.cost_usd == pytest.approx((2 * 1.0 + 3 * 2.0) / 1e6)


def test_options_are_checked():
    with pytest.raises(ValueError, match="failure_rate"):
        FakeOptions(failure_rate=1.5)
