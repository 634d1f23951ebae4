"""Per-request routing without a server: ranking, fallback, budgets, targets, conversations, LLM episodes.

The policy router is a run of random weights over fake candidates (``serve_helpers``); its queries
are embedded by a recording fake (unit vectors from a hash) unless a test needs the real encoder.
"""

from __future__ import annotations

import doctest
import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from grpo_helpers import ROWS, ScriptedRouter, route_then_answer, tiny_model, tiny_tokenizer
from serve_helpers import compose, fake_pool_config, make_policy_run

import rl_router.serve.batching as batching_module
import rl_router.serve.routing as routing_module
from rl_router import load_router
from rl_router.config import typed
from rl_router.eval.calibrate import TargetConfig, fit_calibration, training_rows
from rl_router.pool import build_pool
from rl_router.pool.types import Request
from rl_router.routers.llm import LLMRouter, ProtocolSettings
from rl_router.serve.batching import BatchingPool, Combiner
from rl_router.serve.build import check_servable, resolve
from rl_router.serve.embedder import QueryEmbedder, router_inputs
from rl_router.serve.routing import (
    ChatRequest,
    LLMRouting,
    PolicyRouting,
    ServeError,
    prompt_token_bound,
    worst_case_usd,
)
from rl_router.serve.targets import TargetOffsets

ROUTER = "rl-router"


class RecordingEmbed:
    """Unit vectors from a hash of each text; keeps every text it was asked for."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.texts += texts
        seeds = [int(hashlib.sha1(t.encode()).hexdigest()[:8], 16) for t in texts]
        vecs = np.stack([np.random.default_rng(s).standard_normal(384) for s in seeds]).astype(np.float32)
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


class CountingPool:
    """A pool proxy that keeps every request it forwards."""

    def __init__(self, pool) -> None:
        self.pool, self.requests = pool, []

    @property
    def descriptors(self):
        return self.pool.descriptors

    def generate(self, requests):
        self.requests += list(requests)
        return self.pool.generate(requests)

    def close(self) -> None:
        self.pool.close()


def words(text: str) -> int:
    return len(text.split())


def user(content: str) -> tuple[dict[str, str], ...]:
    return ({"role": "user", "content": content},)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_policy_run(tmp_path_factory.mktemp("routing") / "run", ["pool=fake"])


@pytest.fixture(scope="module")
def router(run):
    return load_router(run)


def policy_routing(router, failing=None, targets=None, embed=None):
    pool = CountingPool(build_pool(fake_pool_config(failing=failing)))
    return PolicyRouting(router, pool, embed or RecordingEmbed(), words, 256, targets, ROUTER)


def test_doctests():
    assert doctest.testmod(routing_module).failed == 0


def test_the_router_reads_the_whole_conversation_up_to_the_cap(router):
    embed = RecordingEmbed()
    messages = (
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "My cat is called Tom."},
        {"role": "assistant", "content": "Nice name."},
        {"role": "user", "content": "What is my cat called?"},
    )
    reply = policy_routing(router, embed=embed).answer(ChatRequest(ROUTER, messages))
    assert embed.texts[-1] == (
        "system: Be brief.\nuser: My cat is called Tom.\nassistant: Nice name.\nuser: What is my cat called?"
    )
    assert reply.text == f"{reply.model}: What is my cat called?"  # the candidate gets every message
    short = PolicyRouting(router, build_pool(fake_pool_config()), embed, words, 10, None, ROUTER)
    short.answer(ChatRequest(ROUTER, messages))
    assert embed.texts[-1] == "assistant: Nice name.\nuser: What is my cat called?"  # oldest dropped first
    short.answer(ChatRequest(ROUTER, user("one message only")))
    assert embed.texts[-1] == "one message only"  # exactly what the router was trained on


def test_a_failing_candidate_falls_back_down_the_ranking(router):
    healthy = policy_routing(router).answer(ChatRequest(ROUTER, user("fallback?")))
    first = healthy.routing["chosen"]
    second = healthy.routing["ranking"][1]
    routing = policy_routing(router, failing={first: 1.0})
    reply = routing.answer(ChatRequest(ROUTER, user("fallback?")))
    assert (reply.model, reply.text) == (second, f"{second}: fallback?")
    assert reply.routing["chosen"] == first and reply.routing["fallbacks"] == 1
    assert reply.routing["models"] == [first, second]
    assert reply.routing["calls"][0]["error"] == f"fake failure of {first}"
    assert [r.model for r in routing.pool.requests] == [first, second]


def test_every_candidate_failing_is_a_502_with_the_reasons(router):
    routing = policy_routing(router, failing={"fake-small": 1.0, "fake-large": 1.0})
    with pytest.raises(ServeError) as err:
        routing.answer(ChatRequest(ROUTER, user("anyone?")))
    assert err.value.status == 502 and err.value.code == "candidates_failed"
    for name in ("fake-small", "fake-large"):
        assert f"fake failure of {name}" in err.value.message
    assert err.value.routing["fallbacks"] == 1


def test_a_budget_never_calls_an_unaffordable_candidate(router):
    d_small, d_large = router.descriptors
    messages = user("How much is this?")
    assert prompt_token_bound(messages) == len("How much is this?") + 8
    large = worst_case_usd(d_large, messages, 100)
    small = worst_case_usd(d_small, messages, 100)
    assert small < large and large == pytest.approx((25 + 100) * 1.0 / 1e6)
    routing = policy_routing(router)
    budget = (small + large) / 2
    for i in range(8):
        reply = routing.answer(ChatRequest(ROUTER, user(f"q{i}"), max_tokens=100, max_usd=budget))
        assert reply.model == "fake-small" and reply.routing["cost_usd"] <= reply.routing["max_usd"]
    assert {r.model for r in routing.pool.requests} == {"fake-small"}  # fake-large was never called
    with pytest.raises(ServeError) as err:
        routing.answer(ChatRequest(ROUTER, messages, max_tokens=100, max_usd=small / 2))
    assert (err.value.status, err.value.param) == (400, "routing.max_usd")
    assert len(routing.pool.requests) == 8


def test_a_named_candidate_is_called_alone(router):
    routing = policy_routing(router, failing={"fake-large": 1.0})
    assert routing.answer(ChatRequest("fake-small", user("hi"))).model == "fake-small"
    with pytest.raises(ServeError) as err:
        routing.answer(ChatRequest("fake-large", user("hi")))
    assert err.value.status == 502  # no fallback for a model the client named
    with pytest.raises(ServeError) as err:
        routing.answer(ChatRequest("gpt-5", user("hi")))
    assert (err.value.status, err.value.param) == (404, "model")


def test_share_targets_use_rl_router_calibrate_offsets_on_the_same_rows(router):
    embedder = QueryEmbedder()  # the shipped vectors: these prompts are RouteLLM's
    prompts, _, source = training_rows(router.training["data"], 300)  # what from_training takes
    log_probs = router.log_probs(router_inputs(router, prompts, embedder.embed))
    targets = TargetOffsets(router, log_probs, None, None, source)
    for share in (0.2, 0.7):
        offsets = targets.offsets({"share": share, "model": "fake-large"})
        expected = fit_calibration(router, prompts, TargetConfig(share=share, model="fake-large"), source)
        assert offsets.tolist() == pytest.approx(expected.offsets)
    pool = build_pool(fake_pool_config())
    routing = PolicyRouting(router, pool, embedder.embed, words, 256, targets, ROUTER)
    answered = [
        routing.answer(ChatRequest(ROUTER, user(p), target={"share": 0.7, "model": "fake-large"})).model
        for p in prompts
    ]
    # served one by one, the calibration rows are routed exactly as `rl-router calibrate` reached them
    assert np.mean([m == "fake-large" for m in answered]) == pytest.approx(0.7, abs=1 / 300)
    assert np.mean([m == "fake-large" for m in answered]) == expected.achieved["route_share"]["fake-large"]
    with pytest.raises(ServeError) as err:  # no recorded dollars for fake candidates
        routing.answer(ChatRequest(ROUTER, user("x"), target={"cost_per_query": 0.001}))
    assert (err.value.status, err.value.param) == (400, "routing.target.cost_per_query")


def test_cost_targets_fit_on_recorded_dollars(tmp_path):
    router = load_router(make_policy_run(tmp_path / "run", []))  # the default replay candidates
    assert router.model_names == ["mixtral-8x7b", "gpt-4"]
    embedder = QueryEmbedder()
    targets = TargetOffsets.from_training(router, 300, embedder.embed)
    prompts, table, source = training_rows(router.training["data"], 300)
    target = 0.5 * float(targets.expected.max())
    expected = fit_calibration(router, prompts, TargetConfig(cost_per_query=target), source, table)
    assert targets.offsets({"cost_per_query": target}).tolist() == pytest.approx(expected.offsets)
    pool = build_pool(fake_pool_config(names=("mixtral-8x7b", "gpt-4")))
    routing = PolicyRouting(router, pool, embedder.embed, words, 256, targets, ROUTER)
    with pytest.raises(ServeError) as err:
        routing.answer(ChatRequest(ROUTER, user("x"), target={"cost_per_query": 1e-12}))
    assert (err.value.status, err.value.param) == (400, "routing.target.cost_per_query")
    assert "below" in err.value.message


@pytest.mark.parametrize("env", ["envs.agent_steps.AgentStepsEnv", "envs.memory_tiers.MemoryTiersEnv"])
def test_agent_steps_and_memory_tiers_routers_are_refused_clearly(run, tmp_path, env):
    config = (run / "config.yaml").read_text().replace("envs.multi_llm_qa.MultiLLMQAEnv", env)
    other = tmp_path / "run"
    other.mkdir()
    (other / "config.yaml").write_text(config)
    with pytest.raises(NotImplementedError, match=f"serving routers trained on {env} is not supported yet"):
        check_servable(other)
    with pytest.raises(NotImplementedError, match="not supported yet"):
        resolve(typed(compose("serve", [f"checkpoint={other}"])))
    export = tmp_path / "export"
    export.mkdir()
    (export / "router_config.json").write_text(json.dumps({"router_kind": env.split(".")[1]}))
    with pytest.raises(NotImplementedError, match=f"router_kind='{env.split('.')[1]}'"):
        check_servable(export)


def test_a_pool_must_serve_the_routers_candidates_live(run, tmp_path):
    with pytest.raises(ValueError, match=r"the pool serves \['mixtral-8x7b', 'gpt-4'\]"):
        resolve(typed(compose("serve", [f"checkpoint={run}", "pool=replay"])))
    replay_run = make_policy_run(tmp_path / "replay", [])  # records the replay pool
    with pytest.raises(ValueError, match="replay candidates"):
        resolve(typed(compose("serve", [f"checkpoint={replay_run}"])))
    assert [m["name"] for m in resolve(typed(compose("serve", [f"checkpoint={run}"])))["models"]] == [
        "fake-small",
        "fake-large",
    ]


def test_a_misspelt_key_fails_at_start_naming_it(run):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="prot"):
        compose("serve", [f"checkpoint={run}", "serve.prot=1"])
    with pytest.raises(ValueError, match="serve.port=0"):
        typed(compose("serve", [f"checkpoint={run}", "serve.port=0"]))


def test_concurrent_requests_to_a_candidate_share_pool_calls():
    config = fake_pool_config()
    config.models[1].fake.latency_s = 0.05
    batching = BatchingPool(build_pool(config))

    with ThreadPoolExecutor(16) as ex:
        calls = ex.map(lambda i: batching.generate([Request("fake-large", user(f"m{i}"))])[0], range(32))
        results = list(calls)
    assert [r.text for r in results] == [f"fake-large: m{i}" for i in range(32)]
    assert sum(batching.batch_sizes["fake-large"]) == 32 and max(batching.batch_sizes["fake-large"]) > 1
    batching.close()


def test_concurrent_callers_are_combined_in_their_own_threads_and_nobody_waits_forever():
    assert doctest.testmod(batching_module).failed == 0
    threads: list[str] = []

    def slow_square(xs):
        threads.append(threading.current_thread().name)
        if -1 in xs:
            raise ValueError("no negatives")
        threading.Event().wait(0.02)
        return [x * x for x in xs]

    combiner = Combiner(slow_square, max_batch=8)
    with ThreadPoolExecutor(16, thread_name_prefix="caller") as ex:
        results = list(ex.map(lambda i: combiner.call([i, i + 100]), range(40)))
    assert results == [[i * i, (i + 100) ** 2] for i in range(40)]
    assert sum(combiner.batch_sizes) == 80 and max(combiner.batch_sizes) == 8  # merged, capped
    assert all(name.startswith("caller") for name in threads)  # called in the callers' own threads
    with ThreadPoolExecutor(8) as ex:  # a raising call fails the callers in it, and the lead moves on
        outcomes = list(ex.map(lambda i: _outcome(combiner, [-1 if i % 4 == 0 else i]), range(32)))
    assert all(outcomes[i] == ("raised", None) for i in range(0, 32, 4))
    assert all(o == ("ok", [i * i]) for i, o in enumerate(outcomes) if o[0] == "ok")
    assert combiner.call([3]) == [9]  # nobody is left holding the lead


def _outcome(combiner, items):
    try:
        return "ok", combiner.call(items)
    except ValueError:
        return "raised", None


def test_the_embedder_batches_threads_and_matches_the_encoder():
    embedder = QueryEmbedder()
    texts = [f"a brand new question number {i} about serving" for i in range(24)]
    barrier = threading.Barrier(8)

    def embed(i: int) -> np.ndarray:
        barrier.wait()
        return embedder.embed(texts[i * 3 : i * 3 + 3])

    with ThreadPoolExecutor(8) as ex:
        vectors = np.concatenate(list(ex.map(embed, range(8))))
    direct = embedder.encoder.encode(texts, progress=False).astype(np.float16).astype(np.float32)
    assert np.allclose(vectors, direct, atol=2e-3)
    assert sum(embedder.batches) == 24 and len(embedder.batches) < 24
    assert embedder.count_tokens("hello world") == 2


def llm_router() -> LLMRouter:
    tok = tiny_tokenizer()
    descriptors = [m.descriptor() for m in fake_pool_config().models]
    return LLMRouter(tiny_model(tok), tok, descriptors, ProtocolSettings(max_turn_tokens=64))


def test_an_llm_router_plays_one_episode_whose_answer_is_the_reply():
    router = llm_router()
    pool = CountingPool(build_pool(fake_pool_config()))
    script = ScriptedRouter(router.tokenizer, route_then_answer("fake-small", "Paris"))
    routing = LLMRouting(router, pool, 256, ROUTER, generate=script)
    question = ROWS[0]["question"]
    reply = routing.answer(ChatRequest(ROUTER, user(question)))
    assert (reply.text, reply.model) == ("Paris", ROUTER)
    assert reply.routing["models"] == ["fake-small"] and reply.routing["routes"] == 1
    assert [r.messages[0]["content"] for r in pool.requests] == [question]
    # a budget below fake-small's worst case: the episode goes on, the candidate is never called
    poor = routing.answer(ChatRequest(ROUTER, user(question), max_usd=1e-9))
    assert poor.routing["refused_over_budget"] == ["fake-small"] and poor.routing["calls"] == []
    assert len(pool.requests) == 1


def test_an_llm_episode_without_an_answer_is_a_502():
    router = llm_router()
    script = ScriptedRouter(router.tokenizer, lambda q, turn, k=0: "<think>no tags at all")
    routing = LLMRouting(router, build_pool(fake_pool_config()), 256, ROUTER, generate=script)
    with pytest.raises(ServeError) as err:
        routing.answer(ChatRequest(ROUTER, user(ROWS[1]["question"])))
    assert (err.value.status, err.value.code) == (502, "no_answer")


def test_a_combiner_keeps_a_bounded_history_of_call_sizes():
    from rl_router.serve.batching import BATCH_HISTORY, Combiner

    echo = Combiner(lambda xs: xs)
    for i in range(BATCH_HISTORY + 10):
        assert echo.call([i]) == [i]
    assert len(echo.batch_sizes) == BATCH_HISTORY  # a long-lived server does not grow without end
