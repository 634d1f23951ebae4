"""ModelPool: one batched call per model, order, concurrency, retries, timeouts, traits, never raising."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest
from pool_helpers import req

from rl_router.pool import CandidatePool, ModelConfig, PoolConfig, build_pool
from rl_router.pool.cache import ResponseCache
from rl_router.pool.fake import FakeBackend, FakeOptions
from rl_router.pool.pool import ModelPool
from rl_router.pool.types import ModelDescriptor, Request, Result, SamplingParams


def fake(name: str, **options) -> FakeBackend:
    return FakeBackend(ModelDescriptor(name, "fake", price_in=1.0, price_out=3.0), FakeOptions(**options))


class Exploding:
    """A backend whose engine raises on every call (a crashed engine, a bug in a client)."""

    enforces_timeout = False
    cache_answers = True

    def __init__(self, name: str) -> None:
        self.descriptor = ModelDescriptor(name, "fake")
        self.calls = 0

    def wait_ready(self) -> None:
        pass

    @property
    def descriptors(self) -> list[ModelDescriptor]:
        return [self.descriptor]

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        self.calls += 1
        raise RuntimeError("engine on fire")

    def close(self) -> None:
        pass


def test_pool_is_a_candidate_pool():
    assert isinstance(ModelPool([fake("a")]), CandidatePool)
    assert isinstance(fake("a"), CandidatePool)


def test_one_batched_call_per_model_and_order_kept():
    backends = [fake("a"), fake("b"), fake("c")]
    pool = ModelPool(backends)
    requests = [req("abc"[i % 3], f"question {i}") for i in range(30)]
    results = pool.generate(requests)
    assert [b.batch_sizes for b in backends] == [[10], [10], [10]]
    assert [r.text for r in results] == [f"{'abc'[i % 3]}: question {i}" for i in range(30)]
    assert pool.stats()["b"]["calls"] == 10 and pool.stats()["b"]["batches"] == 1


def test_models_run_concurrently():
    pool = ModelPool([fake("a", latency_s=0.5), fake("b", latency_s=0.5), fake("c", latency_s=0.5)])
    start = time.perf_counter()
    pool.generate([req(m, "q") for m in "abc"])
    assert time.perf_counter() - start < 1.2  # sequential would take 1.5 s


def test_request_sampling_overrides_the_model_default():
    pool = ModelPool([fake("a")])
    long = "one two three four five"
    short, default = pool.generate([req("a", long, SamplingParams(max_tokens=2)), req("a", long)])
    assert (short.output_tokens, default.output_tokens) == (2, 6)


def test_failed_requests_are_retried_then_counted():
    pool = ModelPool([fake("bad", failure_rate=1.0), fake("good")], retries=2)
    results = pool.generate([req("bad", "x"), req("good", "y"), req("bad", "z")])
    assert [r.ok for r in results] == [False, True, False]
    assert results[0].error == "fake failure of bad" and results[0].cost_usd == 0.0
    stats = pool.stats()
    assert stats["bad"] == {**stats["bad"], "calls": 2, "errors": 2, "retries": 4, "batches": 3}
    assert stats["good"]["errors"] == 0 and stats["good"]["retries"] == 0


def test_a_raising_backend_never_crashes_the_caller():
    boom = Exploding("boom")
    pool = ModelPool([boom, fake("ok")], retries=1)
    results = pool.generate([req("boom", "x"), req("ok", "y")])
    assert results[0].error == "RuntimeError: engine on fire"
    assert results[1].text == "ok: y"
    assert boom.calls == 2 and pool.stats()["boom"]["errors"] == 1


def test_in_process_backend_past_the_timeout_fails_fast():
    pool = ModelPool([fake("slow", latency_s=2.0), fake("fast")], timeout_s=0.3, retries=0)
    start = time.perf_counter()
    results = pool.generate([req("slow", "x"), req("fast", "y")])
    assert time.perf_counter() - start < 1.0
    assert results[0].error == "TimeoutError: no answer within 0.3s" and results[1].ok
    assert pool.stats()["slow"]["timeouts"] == 1


class SelfTimed(FakeBackend):
    """A fake that declares, as Ray-hosted and HTTP backends do, that it enforces the timeout itself."""

    enforces_timeout = True


class Recorded(FakeBackend):
    """A fake that declares, as replay does, that its answers already are a record."""

    cache_answers = False


@pytest.mark.parametrize(("backend_class", "ok"), [(SelfTimed, True), (FakeBackend, False)])
def test_deadline_thread_only_for_backends_that_do_not_time_themselves(backend_class, ok):
    slow = backend_class(ModelDescriptor("slow", "fake"), FakeOptions(latency_s=0.6))
    pool = ModelPool([slow], timeout_s=0.2, retries=0)
    (result,) = pool.generate([req("slow", "x")])
    # The pool's 0.2 s deadline cuts off only the backend that left timing to the pool.
    assert result.ok is ok and result.text == ("slow: x" if ok else "")
    assert pool.stats()["slow"]["timeouts"] == (0 if ok else 1)


def test_answers_a_backend_declares_a_record_are_not_cached(tmp_path):
    recorded, cached = Recorded(ModelDescriptor("rec", "fake")), fake("live")
    pool = ModelPool([recorded, cached], cache=ResponseCache(tmp_path))
    for _ in range(2):
        pool.generate([req("rec", "q"), req("live", "q")])
    assert (recorded.batch_sizes, cached.batch_sizes) == ([1, 1], [1])
    assert len(pool.cache) == 1


def test_unknown_model_is_an_error_result():
    pool = ModelPool([fake("a")])
    (result,) = pool.generate([req("nope", "x")])
    assert "unknown model 'nope'" in result.error and "'a'" in result.error
    assert pool.stats()["nope"]["errors"] == 1


def test_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="'a'"):
        ModelPool([fake("a"), fake("a")])


def test_build_pool_from_config_with_cache(tmp_path):
    cfg = PoolConfig(
        models=[ModelConfig(name="a", backend="fake", price_out=3.0, fake={"answers": ["yes"]})],
        cache_dir=str(tmp_path),
    )
    with build_pool(cfg) as pool:
        first, second = pool.generate([req("a", "q")]), pool.generate([req("a", "q")])
    assert (first[0].text, first[0].cache_hit, second[0].cache_hit) == ("yes", False, True)
    assert second[0].cost_usd == first[0].cost_usd == pytest.approx(3e-6)
    assert (tmp_path / "responses.sqlite").exists()
