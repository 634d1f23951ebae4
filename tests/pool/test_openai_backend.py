"""OpenAI-compatible backend against a real loopback HTTP server: answers, 500s, stalls, key hygiene."""

from __future__ import annotations

import logging
import time

import pytest
from omegaconf import OmegaConf
from pool_helpers import req

from rl_router.pool import CandidatePool, ModelConfig, PoolConfig, build_pool
from rl_router.pool.openai_backend import OpenAIBackend, OpenAIOptions
from rl_router.pool.types import ModelDescriptor

SECRET = "sk-test-9f8e7d6c5b4a39281706"
KEY_ENV = "RL_ROUTER_TEST_KEY"


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


def http_pool(url: str, model: str, timeout_s: float = 10.0, retries: int = 1, **overrides) -> PoolConfig:
    return PoolConfig(
        models=[
            ModelConfig(
                name="api",
                backend="openai",
                model=model,
                price_in=1.0,
                price_out=4.0,
                openai={"base_url": url, "api_key_env": KEY_ENV},
                **overrides,
            )
        ],
        cache=False,
        timeout_s=timeout_s,
        retries=retries,
    )


def test_answers_in_order_with_usage_tokens_and_prices(openai_server):
    with build_pool(http_pool(openai_server.url, "echo")) as pool:
        results = pool.generate([req("api", f"one two {i}") for i in range(5)])
    assert [r.text for r in results] == [f"{i} owt eno" for i in range(5)]
    assert all(r.ok and r.input_tokens == 8 and r.output_tokens == 3 for r in results)
    assert results[0].cost_usd == pytest.approx((8 * 1.0 + 3 * 4.0) / 1e6)
    assert openai_server.auth == [f"Bearer {SECRET}"] * 5  # the key is read from the named variable


def test_http_500_becomes_counted_error_without_the_key(openai_server, caplog):
    caplog.set_level(logging.DEBUG)
    with build_pool(http_pool(openai_server.url, "fail", retries=2)) as pool:
        results = pool.generate([req("api", "a"), req("api", "b")])
        stats = pool.stats()["api"]
    assert all(not r.ok and "InternalServerError" in r.error for r in results)
    assert all("<redacted>" in r.error and SECRET not in r.error for r in results)
    assert openai_server.calls["fail"] == 2 * 3  # first attempt + 2 retries, each request
    assert (stats["errors"], stats["retries"], stats["batches"]) == (2, 4, 3)
    assert SECRET not in caplog.text


def test_flaky_server_recovers_on_retry(openai_server):
    with build_pool(http_pool(openai_server.url, "flaky", retries=1)) as pool:
        results = pool.generate([req("api", "x y"), req("api", "z")])
        stats = pool.stats()["api"]
    assert [r.text for r in results] == ["y x", "z"]
    assert (stats["errors"], stats["retries"]) == (0, 2)


def test_stalled_server_times_out(openai_server):
    with build_pool(http_pool(openai_server.url, "stall", timeout_s=0.5, retries=0)) as pool:
        start = time.perf_counter()
        results = pool.generate([req("api", "slow")])
        elapsed = time.perf_counter() - start
        stats = pool.stats()["api"]
    assert "Timeout" in results[0].error
    assert elapsed < 2.5  # the server would have answered after 3 s
    assert stats["errors"] == 1


def test_key_never_in_repr_or_written_config(openai_server):
    cfg = http_pool(openai_server.url, "echo")
    backend = OpenAIBackend(cfg.models[0].descriptor(), cfg.models[0].openai)
    assert isinstance(backend, CandidatePool)
    assert SECRET not in repr(backend) and KEY_ENV in repr(backend)
    assert SECRET not in repr(cfg)
    assert SECRET not in OmegaConf.to_yaml(OmegaConf.structured(cfg))
    backend.close()


def test_missing_key_variable_names_the_variable(monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ValueError, match=KEY_ENV):
        OpenAIBackend(ModelDescriptor("api", "openai", model="echo"), OpenAIOptions(api_key_env=KEY_ENV))


def test_keyless_server_needs_no_variable(openai_server, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    options = OpenAIOptions(base_url=openai_server.url, api_key_env=None)
    backend = OpenAIBackend(ModelDescriptor("api", "openai", model="echo"), options)
    assert backend.generate([req("api", "ab")])[0].text == "ba"
    backend.close()
