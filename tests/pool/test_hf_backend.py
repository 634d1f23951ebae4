"""Transformers backend on the zoo's SmolLM2-135M (slow: loads a real model)."""

from __future__ import annotations

import pytest
from pool_helpers import SMOLLM2, req

from rl_router.pool import CandidatePool, ModelConfig, PoolConfig, SamplingParams, build_pool
from rl_router.pool.hf_backend import HFBackend, HFOptions
from rl_router.pool.types import ModelDescriptor

pytestmark = pytest.mark.slow

GREEDY_16 = SamplingParams(max_tokens=16)
PROMPTS = ["Hi", "What is the capital of France?", "Name three colours, please, in one short line.", "2+2="]


@pytest.fixture(scope="module")
def backend():
    hf = HFBackend(ModelDescriptor("smol", "hf", model=SMOLLM2, price_in=1.0, price_out=1.0), HFOptions())
    yield hf
    hf.close()


def test_batched_equals_one_at_a_time(backend):
    assert isinstance(backend, CandidatePool)
    requests = [req("smol", p, GREEDY_16) for p in PROMPTS]
    batched = backend.generate(requests)
    single = [backend.generate([r])[0] for r in requests]
    # Left padding + attention masks: a padded row decodes exactly as it does alone.
    assert [r.text for r in batched] == [r.text for r in single]
    assert [r.input_tokens for r in batched] == [r.input_tokens for r in single]
    assert all(1 <= r.output_tokens <= 16 for r in batched)


def test_token_counts_match_the_chat_template(backend):
    (result,) = backend.generate([req("smol", PROMPTS[1], GREEDY_16)])
    prompt_ids = backend.tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPTS[1]}], add_generation_prompt=True, tokenize=True, return_dict=True
    )
    assert result.input_tokens == len(prompt_ids["input_ids"])
    assert result.cost_usd == pytest.approx((result.input_tokens + result.output_tokens) / 1e6)


def test_hf_inside_a_ray_actor_answers_like_in_process(backend):
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    try:
        cfg = PoolConfig(
            models=[ModelConfig(name="smol", backend="hf", model=SMOLLM2, ray_actor=True, num_cpus=1)],
            cache=False,
        )
        with build_pool(cfg) as pool:
            remote = pool.generate([req("smol", p, GREEDY_16) for p in PROMPTS])
    finally:
        ray.shutdown()
    local = backend.generate([req("smol", p, GREEDY_16) for p in PROMPTS])
    assert [r.text for r in remote] == [r.text for r in local]
