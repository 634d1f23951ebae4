"""``AgentStepsEnv``: a tier per agent step, parsed actions, batched calls, hard budgets never overspent."""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pytest
from agent_steps_helpers import ROWS, CorridorGame, make_pool
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import envs.agent_steps as agent_steps_module
import envs.react_agent as react_agent
import envs.text_features as text_features
from envs.agent_steps import AgentStepsConfig, AgentStepsEnv
from envs.games.textworld_express import EASY_PARAMS, TextWorldExpressGame
from envs.spaces import TextSpace
from rewards.ledger import UnpricedModelError
from rl_router.pool.build import build_pool
from rl_router.pool.descriptors import ModelConfig, PoolConfig
from rl_router.rollout.env_factory import env_factory


def corridor_env(pool, rows=ROWS, **options) -> AgentStepsEnv:
    return AgentStepsEnv(pool, rows, game=CorridorGame(), **options)


def test_doctests():
    for module in (react_agent, text_features, agent_steps_module):
        assert doctest.testmod(module).failed == 0


def test_features_mode_passes_check_env():
    env = corridor_env(make_pool(["Action: wait"], ["Action: go forward"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unbounded Box: embeddings have no natural range
        check_env(env, skip_render_check=True)
    assert env.observation_space.shape == (2 * 64 + 8 + 2,)


def test_text_mode_passes_check_env_and_reads_the_tier_from_text():
    env = corridor_env(make_pool(["Action: wait"], ["Action: go forward"]), mode="text")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)
    assert isinstance(env.observation_space, TextSpace)
    obs, _ = env.reset(seed=0, options={"index": 0})
    assert "Walk to the end." in obs and "Tiers: 1 = small, 2 = large" in obs and obs.endswith("Tier:\n")
    _, _, _, _, info = env.step("Tier: 2")
    assert info["model"] == "large" and info["env_text"].startswith("> go forward") and info["malformed"] == 0
    _, _, _, _, info = env.step("I pick large for this one")  # prose is malformed: the cheapest tier
    assert info["model"] == "small" and info["malformed"] == 1
    _, _, terminated, _, info = env.step("")  # an empty reply ends the episode without a call
    assert terminated and info["model"] == "" and not info["budget_exhausted"]
    assert info["episode"]["steps"] == 2 and not info["episode"]["format_ok"]
    assert info["reward_terms"]["format"] == pytest.approx(-0.5 * 2 / 3)  # 2 malformed of 3 replies


def test_always_large_solves_and_is_scored_against_the_boundary():
    """Corridor seed 0 needs 2 forwards. Row boundary costs make c_hat of the episode exactly 0.5."""
    pool = make_pool(["Action: wait"], ["Action: go forward"])
    env = corridor_env(pool, rows=[dict(ROWS[0])], bopo={"lam": 0.4}, budget={"low": 8, "high": 8})
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(1)
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["model"] == "large" and info["action_valid"] and info["game_action"] == "go forward"
    step_usd = info["cost_usd"]
    assert step_usd == pytest.approx((info["input_tokens"] + info["output_tokens"]) * 8.0 / 1e6)
    cost = step_usd + env.pool.descriptors[1].cost_usd(*_tokens(env))
    env.examples[0].update(cost_small=cost - 1e-6, cost_large=cost + 1e-6)  # c_hat = 0.5
    _, reward, terminated, truncated, info = env.step(1)
    assert terminated and not truncated and info["success"]
    assert info["reward_terms"]["cost"] == pytest.approx(0.5, abs=1e-3)
    assert reward == pytest.approx(1.0 - 0.4 * 0.5, abs=1e-3)
    record = info["trajectory"]
    assert record["calls"] == {"small": 0, "large": 2} and record["steps"] == 2 and not record["over_budget"]


def _tokens(env: AgentStepsEnv) -> tuple[int, int]:
    result = env.pool.pool.generate([env.begin_step(1)])[0]
    env._pending = None
    return result.input_tokens, result.output_tokens


def test_an_invalid_reply_goes_to_the_game_as_written_and_is_counted():
    env = corridor_env(make_pool(["I do not know"], ["Action: go forward"]), max_steps=3)
    env.reset(seed=0, options={"index": 0})
    _, _, _, _, info = env.step(0)
    assert info["game_action"] == "I do not know" and not info["action_valid"]
    assert info["invalid_actions"] == 1 and env.state.observation == "Unknown action."
    _, _, _, _, info = env.step(0)
    _, reward, terminated, truncated, info = env.step(0)
    assert truncated and not terminated and info["invalid_actions"] == 3 and reward == 0.0


def test_expensive_call_cap_masks_the_large_tier_and_a_masked_pick_goes_small():
    env = corridor_env(make_pool(["Action: wait"], ["Action: wait"]), budget={"low": 1, "high": 1})
    _, info = env.reset(seed=0, options={"index": 2})
    assert info["action_mask"].tolist() == [True, True]
    _, _, _, _, info = env.step(1)
    assert info["model"] == "large" and info["action_mask"].tolist() == [True, False]
    _, _, _, _, info = env.step(1)  # masked: the env sends it to the cheapest affordable tier
    assert info["model"] == "small" and info["masked_actions"] == 1 and info["expensive_calls"] == 1


def test_a_dollar_budget_that_cannot_pay_ends_the_episode_without_a_call():
    pool = make_pool(["Action: wait"], ["Action: wait"])
    env = corridor_env(pool, budget={"kind": "dollars", "low": 1e-3, "high": 1e-3})
    env.reset(seed=0, options={"index": 0})
    steps = 0
    while True:
        _, _, terminated, truncated, info = env.step(1)
        steps += 1
        if terminated or truncated:
            break
    assert info["budget_exhausted"] and not info["over_budget"] and terminated
    assert info["trajectory"]["cost_usd"] <= 1e-3 and steps < 15
    assert sum(len(b) for b in pool.batches) == info["steps"]


def test_step_batch_sends_every_live_episode_in_one_pool_call():
    pool = make_pool(["Action: wait"], ["Action: go forward"])
    envs = [corridor_env(pool) for _ in range(3)]
    for i, env in enumerate(envs):
        env.reset(seed=0, options={"index": i})
    out = AgentStepsEnv.step_batch(envs, [0, 1, 1])
    assert len(pool.batches) == 1 and len(pool.batches[0]) == 3
    assert [info["model"] for *_, info in out] == ["small", "large", "large"]


def test_an_unpriced_tier_is_refused_and_config_errors_name_the_key():
    models = [ModelConfig(name="free"), ModelConfig(name="paid", price_in=1.0)]
    with pytest.raises(UnpricedModelError, match="free"):
        AgentStepsEnv(build_pool(PoolConfig(models=models, cache=False)), ROWS, game=CorridorGame())
    with pytest.raises(ValueError, match="env.mode"):
        AgentStepsConfig(mode="chat")
    with pytest.raises(ValueError, match="env.budget.low"):
        AgentStepsConfig(budget={"low": 3, "high": 1})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["dollars", "expensive_calls"]),
    cap=st.floats(0.01, 1.0),
    obey_mask=st.booleans(),
    p_large=st.floats(0.0, 1.0),
)
def test_no_random_policy_ever_overspends_its_budget(seed, kind, cap, obey_mask, p_large):
    """Random policies (some ignoring the mask), seeds and caps: 0 episodes over budget.

    Replies are long (up to 60 words, cut to max_action_tokens), so each call's cost varies."""
    words = ["Action: go forward " + "blah " * 50, "Action: wait", "Action: " + "x " * 60]
    pool = make_pool(words, words, price_large=20.0)
    low = cap * 2e-3 if kind == "dollars" else round(cap * 4)
    env = corridor_env(pool, budget={"kind": kind, "low": low, "high": low}, max_steps=8)
    rng = np.random.default_rng(seed)
    over = 0
    for episode in range(3):
        _, info = env.reset(seed=seed + episode)
        done = False
        while not done:
            mask = info["action_mask"]
            choice = int(rng.random() < p_large)
            if obey_mask and not mask[choice]:
                choice = int(np.flatnonzero(mask)[0])
            _, _, terminated, truncated, info = env.step(choice)
            done = terminated or truncated
        over += info["trajectory"]["over_budget"]
        assert info["trajectory"]["budget_used"] <= info["trajectory"]["budget_cap"] + 1e-12
    assert over == 0


def test_env_factory_builds_it_from_a_recorded_mapping():
    pool = make_pool(["Action: wait"], ["Action: go forward"])
    cfg = {"_target_": "envs.agent_steps.AgentStepsEnv", "max_steps": 4, "budget": {"low": 1, "high": 2}}
    env = env_factory(cfg, pool=pool)(
        [{"id": "coin/0", "game": "coin", "seed": 0, "params": EASY_PARAMS["coin"]}]
    )
    try:
        obs, info = env.reset(seed=0)
        assert obs.shape == env.observation_space.shape and info["budget_cap"] in (1.0, 2.0)
    finally:
        env.close()
    assert env.game.closed
    with pytest.raises(ValueError, match="not fields"):
        env_factory({**cfg, "max_step": 3}, pool=pool)


def test_on_textworld_express_the_agent_plays_the_action_it_names():
    """A real TWX game: the candidate answers "Action: 1", the first listed valid action."""
    pool = make_pool(["Action: 1"], ["Action: 1"])
    rows = [{"id": f"coin/{s}", "game": "coin", "seed": s, "params": EASY_PARAMS["coin"]} for s in range(2)]
    with TextWorldExpressGame() as game:
        env = AgentStepsEnv(pool, rows, game=game, max_steps=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check_env(env, skip_render_check=True)
        env.reset(seed=0, options={"index": 0})
        first = env.state.valid_actions[0]
        _, _, _, _, info = env.step(0)
        assert info["game_action"] == first and info["action_valid"] and info["invalid_actions"] == 0
        env.close()
        assert not game.closed  # an injected game belongs to its caller
