"""agent_steps rollouts: lockstep play with one pool call per step, baselines, taxonomy, warm-start sample."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from agent_steps_helpers import ROWS, CorridorGame, make_pool

import rl_router.eval.agent_steps_eval as agent_steps_eval
import rl_router.rollout.agent_episodes as agent_episodes
import rl_router.rollout.boundary as boundary
import rl_router.trainers.behaviour_cloning as behaviour_cloning
from envs.agent_steps import AgentStepsEnv
from rl_router.eval.agent_steps_eval import first_large_at
from rl_router.rollout.agent_episodes import always, first_large, play_episodes, random_policy
from rl_router.rollout.batched_vector import BatchedSyncVectorEnv
from rl_router.rollout.boundary import sft_sample, taxonomy, tier_demonstrations


@pytest.mark.parametrize("module", [agent_episodes, boundary, agent_steps_eval, behaviour_cloning])
def test_doctests(module):
    assert doctest.testmod(module).failed == 0


def corridor(pool, rows=ROWS, **options):
    return lambda: AgentStepsEnv(pool, rows, game=CorridorGame(), **options)


def test_play_episodes_batches_every_live_episode_and_keeps_row_order():
    pool = make_pool(["Action: wait"], ["Action: go forward"])
    records = play_episodes(corridor(pool), ROWS, always(1), num_envs=3, repeats=2)
    assert [(r["id"], r["repeat"]) for r in records] == [(row["id"], k) for k in (0, 1) for row in ROWS]
    assert all(r["success"] and r["steps"] == 2 + i % 3 for i, r in enumerate(records[:3]))
    assert len(pool.batches[0]) == 3  # the first step of the three episodes: one call


def test_first_large_k_and_random_baselines():
    pool = make_pool(["Action: wait"], ["Action: go forward"])
    records = play_episodes(corridor(pool, max_steps=4), ROWS, first_large(2), num_envs=3)
    assert [r["tiers"][:3] for r in records] == [["large", "large"]] + [["large", "large", "small"]] * 2
    a = play_episodes(corridor(pool, max_steps=4), ROWS, random_policy(7), num_envs=1)
    b = play_episodes(corridor(pool, max_steps=4), ROWS, random_policy(7), num_envs=3)
    assert [r["tiers"] for r in a] == [r["tiers"] for r in b]  # the same choices whatever the batching


def test_batched_vector_env_makes_one_pool_call_per_step():
    pool = make_pool(["Action: wait"], ["Action: go forward"])
    envs = BatchedSyncVectorEnv([corridor(pool)] * 4)
    envs.reset(seed=0)
    pool.batches.clear()
    for _ in range(5):  # episodes end and reset inside these steps (same-step autoreset)
        _, _, terminated, _, info = envs.step(np.array([1, 1, 0, 1]))
    assert [len(b) for b in pool.batches] == [4] * 5
    envs.close()


def test_taxonomy_warm_start_sample_and_demonstrations():
    pool = make_pool(["Action: wait"], ["Action: go forward"])
    small = play_episodes(corridor(pool, max_steps=3), ROWS, always(0), num_envs=3)
    large = play_episodes(corridor(pool, max_steps=3), ROWS, always(1), num_envs=3)
    table = taxonomy(ROWS, small, large)
    # corridor lengths 2, 3, 4 with 3 steps: large wins the first two, nothing wins the third
    assert [t["difficulty"] for t in table] == ["hard", "hard", "intractable"]
    assert all(t["cost_small"] < t["cost_large"] for t in table)
    sample = sft_sample(table, small, large, per_stratum=4, rng=np.random.default_rng(0))
    assert {s["id"]: s["tiers"] for s in sample} == {
        "corridor/0": ["large"] * 2,
        "corridor/1": ["large"] * 3,
        "corridor/2": ["small"] * 3,
    }
    obs, masks, tiers = tier_demonstrations(corridor(pool, max_steps=3), ROWS, sample, ["small", "large"], 3)
    assert obs.shape[0] == masks.shape[0] == len(tiers) == 8 and sorted(tiers.tolist()) == [0] * 3 + [1] * 5


def test_first_large_at_matched_cost_takes_the_largest_k_within_the_cost():
    report = {
        "always_small": {"cost_usd": 1.0, "success": 0.1},
        "first_large_1": {"cost_usd": 2.0, "success": 0.2},
        "first_large_3": {"cost_usd": 4.0, "success": 0.4},
    }
    assert first_large_at(report, 3.0)[0] == 1 and first_large_at(report, 0.5)[0] == 0
