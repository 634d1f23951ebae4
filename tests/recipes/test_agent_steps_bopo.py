"""`experiment=agent_steps_bopo` (GPU cluster) as far as a CPU goes: it composes, its pools and data build,
and its env steps ScienceWorld with a fake pool; the slow tier plays lifespan tasks with real zoo models."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate

from envs.agent_steps import AgentStepsEnv
from envs.games.scienceworld import task_names
from rl_router.config import typed
from rl_router.pool.build import build_pool
from rl_router.pool.descriptors import ModelConfig, PoolConfig
from rl_router.pool.fake import FakeOptions
from rl_router.recipes import recipe_for
from rl_router.recipes.agent_steps_ppo import train
from rl_router.rollout.agent_episodes import always, play_episodes
from rl_router.rollout.env_factory import env_factory
from rl_router.routers.policy import pool_descriptors

LIFESPAN = ["lifespan-longest-lived", "lifespan-shortest-lived", "lifespan-longest-lived-then-shortest-lived"]


@pytest.mark.parametrize("pool", ["agent_steps_bopo", "agent_steps_bopo_api"])
def test_gpu_config_composes_with_both_tier_pairs(compose, pool):
    cfg = compose(["experiment=agent_steps_bopo", f"pool={pool}"])
    env, trainer = typed(cfg.env), typed(cfg.trainer)
    assert recipe_for(cfg) is train
    assert env.suite == "scienceworld" and (env.budget.low, env.budget.high) == (5, 15)
    assert trainer.num_envs * trainer.num_steps % trainer.num_minibatches == 0
    descriptors = pool_descriptors(cfg.pool)
    assert len(descriptors) == 2 and descriptors[0].price_in < descriptors[1].price_in
    models = typed(cfg.pool).models
    if pool == "agent_steps_bopo":
        assert [m.num_gpus for m in models] == [1, 4] and models[1].vllm.tensor_parallel_size == 4
    else:
        assert [m.model for m in models] == ["gpt-4.1-mini", "gpt-4.1"]
    assert sorted(g["name"] for g in cfg.data.games) == sorted(task_names())


def test_gpu_data_covers_all_30_tasks_with_disjoint_folds_and_steps_scienceworld(compose):
    cfg = compose(
        [
            "experiment=agent_steps_bopo",
            "data.train_per_game=1",
            "data.validation_per_game=1",
            "data.test_per_game=1",
        ]
    )
    train_rows, val_rows, test_rows = instantiate(cfg.data)
    assert len(train_rows) == len(val_rows) == len(test_rows) == 30
    assert {r["game"] for r in train_rows} == set(task_names())
    for a, b in ((train_rows, val_rows), (train_rows, test_rows), (val_rows, test_rows)):
        assert not {(r["game"], r["seed"]) for r in a} & {(r["game"], r["seed"]) for r in b}

    fake = [
        ModelConfig(
            name=m.name, price_in=m.price_in, price_out=m.price_out, fake=FakeOptions(answers=["Action: 1"])
        )
        for m in typed(cfg.pool).models
    ]
    pool = build_pool(PoolConfig(models=fake, cache=False))
    lifespan = [r for r in train_rows if r["game"] == "lifespan-longest-lived"]
    env = env_factory(cfg.env, pool=pool)(lifespan)
    try:
        obs, info = env.reset(seed=0)
        assert obs.shape == (2 * 256 + 8 + 2,) and info["budget_cap"] in range(5, 16)
        listed = env._messages[-1]["content"].split("Valid actions:\n")[1].splitlines()
        assert len(env.state.valid_actions) > 80 and sum(line[:1].isdigit() for line in listed) == 80
        _, _, _, _, info = env.step(1)
        assert info["model"] == "qwen2.5-72b-instruct" and info["action_valid"]
        assert info["game_action"] == env.history[-1][0]
    finally:
        env.close()
    assert env.game.closed


@pytest.mark.slow
def test_lifespan_tasks_in_easy_mode_with_the_zoo_tiers():
    """Both zoo models (transformers backend) play the three lifespan tasks, variation 0, easy mode."""
    models = [
        ModelConfig(
            name="smollm2-135m", backend="hf", model="smollm2-135m-instruct", price_in=0.01, price_out=0.01
        ),
        ModelConfig(
            name="qwen2.5-coder-0.5b",
            backend="hf",
            model="qwen2.5-coder-0.5b-instruct",
            price_in=0.04,
            price_out=0.04,
        ),
    ]
    rows = [{"id": f"{t}/0", "game": t, "seed": 0, "params": "easy"} for t in LIFESPAN]
    with build_pool(PoolConfig(models=models, cache=False)) as pool:
        options = {"suite": "scienceworld", "max_steps": 6, "budget": {"low": 6, "high": 6}}
        for tier in (0, 1):
            records = play_episodes(
                lambda: AgentStepsEnv(pool, rows, **options), rows, always(tier), num_envs=3
            )
            for r in records:
                assert 1 <= r["steps"] <= 6 and not r["over_budget"]
                assert r["success"] or r["failure"] or r["steps"] == 6
                assert r["calls"][pool.descriptors[tier].name] == r["steps"]
