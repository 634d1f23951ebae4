"""Response cache: what the key covers, what a hit reports, and many processes writing at once."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp

import pytest
from pool_helpers import req, user

from rl_router.pool.cache import CachedAnswer, ResponseCache, cache_key
from rl_router.pool.fake import FakeBackend, FakeOptions
from rl_router.pool.pool import ModelPool
from rl_router.pool.types import ModelDescriptor, SamplingParams

BASE = ModelDescriptor("m", "vllm", model="org/model", revision="abc", price_in=2.0, price_out=10.0)
GREEDY = SamplingParams()


def test_key_covers_model_revision_messages_and_every_sampling_field():
    key = cache_key(BASE, user("hi"), GREEDY)
    variants = [
        cache_key(dataclasses.replace(BASE, revision="def"), user("hi"), GREEDY),
        cache_key(dataclasses.replace(BASE, model="org/other"), user("hi"), GREEDY),
        cache_key(dataclasses.replace(BASE, backend="hf"), user("hi"), GREEDY),
        cache_key(BASE, user("hi!"), GREEDY),
        cache_key(BASE, ({"role": "system", "content": "hi"},), GREEDY),
        cache_key(BASE, user("hi"), SamplingParams(seed=1)),
        cache_key(BASE, user("hi"), SamplingParams(temperature=0.7)),
        cache_key(BASE, user("hi"), SamplingParams(max_tokens=16)),
        cache_key(BASE, user("hi"), SamplingParams(top_p=0.9)),
    ]
    assert len({key, *variants}) == 1 + len(variants)
    # The router-facing name and the prices are not part of what the model answers.
    renamed = dataclasses.replace(BASE, name="alias", price_out=99.0)
    assert cache_key(renamed, user("hi"), GREEDY) == key


def _pool(tmp_path, **options) -> tuple[ModelPool, FakeBackend]:
    fake = FakeBackend(ModelDescriptor("m", "fake", price_in=2.0, price_out=10.0), FakeOptions(**options))
    return ModelPool([fake], cache=ResponseCache(tmp_path)), fake


def test_hit_costs_no_compute_and_charges_the_same(tmp_path):
    pool, fake = _pool(tmp_path)
    requests = [req("m", "what is two plus two"), req("m", "name a colour")]
    first = pool.generate(requests)
    second = pool.generate(requests)
    assert fake.batch_sizes == [2]  # the second call never reached the backend
    assert [r.cache_hit for r in first] == [False, False]
    assert [r.cache_hit for r in second] == [True, True]
    for a, b in zip(first, second, strict=True):
        assert (b.text, b.input_tokens, b.output_tokens, b.cost_usd) == (
            a.text,
            a.input_tokens,
            a.output_tokens,
            a.cost_usd,
        )
    assert second[0].cost_usd == pytest.approx((5 * 2.0 + 6 * 10.0) / 1e6)
    assert pool.stats()["m"]["cache_hits"] == 2


def test_new_seed_misses_and_cache_survives_the_pool(tmp_path):
    pool, _ = _pool(tmp_path)
    pool.generate([req("m", "hello", SamplingParams(temperature=1.0, seed=1))])
    pool.close()
    pool, fake = _pool(tmp_path)
    again = pool.generate(
        [
            req("m", "hello", SamplingParams(temperature=1.0, seed=1)),
            req("m", "hello", SamplingParams(temperature=1.0, seed=2)),
        ]
    )
    assert [r.cache_hit for r in again] == [True, False]
    assert fake.batch_sizes == [1]


def test_duplicates_in_one_batch_are_generated_once(tmp_path):
    pool, fake = _pool(tmp_path)
    results = pool.generate([req("m", "same")] * 4)
    assert fake.batch_sizes == [1]
    assert [r.cache_hit for r in results] == [False, True, True, True]
    assert len({(r.text, r.cost_usd) for r in results}) == 1


def test_errors_are_not_cached(tmp_path):
    pool, fake = _pool(tmp_path, failure_rate=1.0)
    pool.retries = 0
    pool.generate([req("m", "boom")])
    pool.generate([req("m", "boom")])
    assert fake.batch_sizes == [1, 1]
    assert len(pool.cache) == 0


def _writer(directory: str, worker: int, n_keys: int, rounds: int) -> None:
    cache = ResponseCache(directory)
    for r in range(rounds):
        # Every worker writes every key (overlapping writers), in its own order.
        keys = [f"k{(i + worker * 7 + r) % n_keys}" for i in range(0, n_keys, 3)]
        cache.put_many((k, "m", CachedAnswer(f"text-{k}", len(k), 1)) for k in keys)
        cache.get_many(keys)
    cache.close()


def test_concurrent_writer_processes(tmp_path):
    n_keys, workers = 60, 4
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, n_keys, 25)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * workers
    cache = ResponseCache(tmp_path)
    assert len(cache) == n_keys
    found = cache.get_many(f"k{i}" for i in range(n_keys))
    assert all(found[f"k{i}"] == CachedAnswer(f"text-k{i}", len(f"k{i}"), 1) for i in range(n_keys))
    assert cache.path.name == "responses.sqlite" and sorted(p.name for p in tmp_path.glob("*.sqlite")) == [
        "responses.sqlite"
    ]
