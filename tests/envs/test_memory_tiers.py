"""memory_tiers env on a fake pool: the contract, the reward, the ledger, caching and batching."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs.memory_modules import MODULES, ModuleRunner, TierModel, check_strategy, lines_of
from envs.memory_tiers import MemoryTiersConfig, MemoryTiersEnv
from rewards.ledger import UnpricedModelError
from rewards.locomo import locomo_f1
from rl_router.data.locomo import locomo_splits
from rl_router.pool import PoolConfig, build_pool


@pytest.fixture(scope="module")
def rows():
    return locomo_splits(per_conversation=4).test


def fake_pool(price: float = 0.88, cache_dir=None, answers=None):
    model = {"name": "smollm2-135m", "backend": "fake", "price_in": price, "price_out": price}
    if answers:
        model["fake"] = {"answers": answers}
    return build_pool(
        PoolConfig(models=[model], cache=cache_dir is not None, cache_dir=str(cache_dir or "/nonexistent"))
    )


def make_env(rows, pool=None, **kwargs):
    return MemoryTiersEnv(pool or fake_pool(), rows, encoder="hashing", **kwargs)


def play(env, tiers, index=0):
    env.reset(options={"index": index})
    out = None
    for t, tier in enumerate(tiers):
        out = env.step(tier)
        assert out[2] == (t == len(tiers) - 1)  # terminated only after the summary
        if t < len(tiers) - 1:
            assert out[1] == 0.0
    return out


def test_passes_check_env(rows):
    check_env(make_env(rows), skip_render_check=True)


def test_an_episode_is_five_decisions_scored_by_locomo_f1(rows):
    env = make_env(rows)
    obs, info = env.reset(options={"index": 1})
    assert obs.shape == env.observation_space.shape and info["module"] == "filter"
    assert obs[-5:].tolist() == [1, 0, 0, 0, 0]
    _, reward, terminated, truncated, info = play(env, [1, 0, 2, 1, 1], index=1)
    episode, row = info["episode"], rows[1]
    assert terminated and not truncated
    assert episode["tiers"] == ["mid", "low", "high", "mid", "mid"]
    expected = locomo_f1(
        [episode["answer"]], golden_answers=[row["golden_answers"]], category=[row["category"]]
    )
    assert episode["f1"] == pytest.approx(expected[0]) and reward == pytest.approx(expected[0])  # lam = 0
    assert set(episode["calls"]) == {*MODULES, "answer"}
    assert info["reward_terms"]["cost_usd"] == pytest.approx(-episode["cost_usd"])


def test_ledger_charges_each_module_at_its_tier_price(rows):
    env = make_env(rows)
    _, _, _, _, info = play(env, [0, 0, 0, 0, 2])
    usd = {c.tag: c.usd for c in env.ledger.entries}
    tokens = {c.tag: (c.input_tokens, c.output_tokens) for c in env.ledger.entries}
    for module in ("filter", "entity", "temporal", "topic"):
        assert usd[module] == pytest.approx(0.06 * sum(tokens[module]) / 1e6)  # heuristic tier
    assert usd["summary"] == pytest.approx(0.88 * sum(tokens["summary"]) / 1e6)  # the pool LLM
    assert info["episode"]["cost_usd"] == pytest.approx(sum(usd[m] for m in MODULES))


def test_an_unpriced_tier_model_fails_at_start_naming_it(rows):
    with pytest.raises(UnpricedModelError, match="smollm2-135m"):
        make_env(rows, pool=fake_pool(price=0.0))
    tiers = [
        {"kind": "heuristic", "model": "heuristic", "price": 0.0},
        {"kind": "encoder", "model": "minilm-encoder", "price": 0.18},
        {"kind": "llm", "model": "smollm2-135m"},
    ]
    with pytest.raises(UnpricedModelError, match="heuristic"):
        make_env(rows, tiers=tiers)
    with pytest.raises(ValueError, match="'gpt-9' is not in the pool"):
        make_env(rows, tiers=[tiers[0] | {"price": 0.06}, tiers[1], {"kind": "llm", "model": "gpt-9"}])


def test_a_repeated_module_call_is_a_cache_hit_yet_charged_the_same(rows, tmp_path):
    env = make_env(rows, pool=fake_pool(cache_dir=tmp_path))
    first = play(env, [2, 2, 2, 2, 2])[4]["episode"]
    first_usd = [(c.tag, c.usd) for c in env.ledger.entries]
    second = play(env, [2, 2, 2, 2, 2])[4]["episode"]
    assert sum(first["cache_hits"].values()) == 0
    assert second["cache_hits"] == {**dict.fromkeys(MODULES, 1), "answer": 1}  # LLM hits and local memo
    assert [(c.tag, c.usd) for c in env.ledger.entries] == first_usd
    assert first["cost_usd"] > 0 and second["cost_usd"] == pytest.approx(first["cost_usd"])
    assert second["f1"] == first["f1"]


def test_step_batch_sends_every_llm_call_of_a_step_in_one_pool_call(rows):
    pool = fake_pool()
    runner = ModuleRunner(pool, make_env(rows[:1], pool=pool).encode)
    envs = [make_env(rows, pool=pool, runner=runner) for _ in range(4)]
    for i, env in enumerate(envs):
        env.reset(options={"index": i})
    backend = pool.backends["smollm2-135m"]
    backend.batch_sizes.clear()
    MemoryTiersEnv.step_batch(envs, [2, 2, 0, 2])
    assert backend.batch_sizes == [3]


def test_lambda_adds_the_scaled_cost_term(rows):
    env = make_env(rows, lam=0.5, alpha=2.0)
    _, reward, _, _, info = play(env, [1, 1, 1, 1, 1])
    terms = info["reward_terms"]
    assert reward == pytest.approx(terms["f1"] + 0.5 * 2.0 * terms["cost"])
    assert terms["cost"] == 0.5  # one episode in the window: no spread


def test_upstream_tiers_change_what_downstream_modules_read(rows):
    env = make_env(rows)
    low = play(env, [0, 0, 0, 0, 0])[4]["episode"]["outputs"]
    mid = play(env, [1, 0, 0, 0, 0])[4]["episode"]["outputs"]
    assert low["memory"] == mid["memory"]  # retrieval is fixed
    assert low["filtered"] != mid["filtered"]
    assert all(line in mid["memory"].split("\n") for line in lines_of(mid["filtered"]))


def test_strategies_are_checked():
    check_strategy(
        "reasoning", [TierModel(model="q", prompt=p) for p in ("direct", "cot", "plan_act_reflect")]
    )
    with pytest.raises(ValueError, match="reasoning needs one model"):
        check_strategy("reasoning", [TierModel(model=m) for m in ("a", "b", "c")])
    with pytest.raises(ValueError, match="capacity needs three different"):
        check_strategy("capacity", [TierModel(model="a")] * 3)
    with pytest.raises(ValueError, match="judge_model"):
        MemoryTiersConfig(task_reward="judge")


def test_judge_scores_through_the_pool(rows):
    pool = build_pool(
        PoolConfig(
            models=[
                {"name": "smollm2-135m", "backend": "fake", "price_in": 0.88, "price_out": 0.88},
                {
                    "name": "judge",
                    "backend": "fake",
                    "price_in": 1.0,
                    "price_out": 1.0,
                    "fake": {"answers": ["yes"]},
                },
            ],
            cache=False,
        )
    )
    env = make_env(rows, pool=pool, task_reward="judge", judge_model="judge")
    _, reward, _, _, info = play(env, [0, 0, 0, 0, 0])
    assert info["reward_terms"]["judge"] == 1.0 and reward == 1.0
    assert info["episode"]["calls"]["judge"] == 1
    assert np.isfinite(info["episode"]["f1"])


@pytest.mark.slow
def test_real_tiers_play_an_episode(rows):
    """MiniLM for retrieval and the Mid tier, the zoo's SmolLM2-135M (transformers) for High."""
    pool = build_pool(
        PoolConfig(
            models=[
                {
                    "name": "smollm2-135m",
                    "backend": "hf",
                    "model": "smollm2-135m-instruct",
                    "price_in": 0.88,
                    "price_out": 0.88,
                    "sampling": {"max_tokens": 16},
                }
            ],
            cache=False,
        )
    )
    env = MemoryTiersEnv(pool, rows, encoder="minilm")
    _, _, terminated, _, info = play(env, [1, 1, 1, 1, 2])
    by_model = env.ledger.by_model()
    assert terminated and by_model["smollm2-135m"]["calls"] == 1
    assert 0 < by_model["smollm2-135m"]["output_tokens"] <= env.tiers[2].max_tokens  # the tier caps it
    assert by_model["minilm-encoder"]["calls"] == 4 and 0.0 <= info["episode"]["f1"] <= 1.0
    pool.close()


@pytest.mark.parametrize(
    "module",
    [
        "envs.memory_modules",
        "rl_router.data.locomo",
        "rl_router.eval.memory_tiers",
        "rl_router.policies.memory_tiers",
    ],
)
def test_doctests(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
