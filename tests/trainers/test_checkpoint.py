"""Atomic checkpoints and exact resume: crash half-way, resume, same weights as a straight run."""

from __future__ import annotations

import json
import pickle
import threading

import gymnasium as gym
import numpy as np
import pytest
import torch

from rl_router import checkpoint as ckpt
from rl_router.policies.mlp import ActorCritic
from rl_router.trainers.ppo import PPOConfig, make_vec_env, train

torch.set_num_threads(1)

# 4 updates of 2 envs x 16 steps; a checkpoint every 2 updates.
CFG = PPOConfig(num_envs=2, num_steps=16, total_steps=128, num_minibatches=2, checkpoint_every=64, seed=3)


def cartpole_envs() -> gym.vector.SyncVectorEnv:
    return make_vec_env([lambda: gym.make("CartPole-v1") for _ in range(CFG.num_envs)])


def fresh_policy() -> ActorCritic:
    torch.manual_seed(123)
    return ActorCritic(4, 2, hidden_sizes=[16])


class CrashAt:
    """A logger that kills the run when it logs ``step`` (after the checkpoint before it)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def log(self, metrics: dict, step: int) -> None:
        if step >= self.step:
            raise RuntimeError("simulated crash")

    def finish(self) -> None:
        pass


def test_resume_after_a_crash_matches_a_straight_run(tmp_path):
    straight = fresh_policy()
    done = train(CFG, cartpole_envs(), straight, run_dir=tmp_path / "straight", progress=False)

    run_dir = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(CFG, cartpole_envs(), fresh_policy(), run_dir=run_dir, logger=CrashAt(96), progress=False)
    assert ckpt.latest_checkpoint(run_dir).name == "step_0000000064"
    (run_dir / "checkpoints" / ".tmp-step_0000000096-deadbeef").mkdir()  # a write the crash cut short
    (run_dir / "checkpoints" / ".tmp-step_0000000096-deadbeef" / "policy.safetensors").write_bytes(b"\0" * 7)

    # A new process: other weights and RNG state, fresh envs; resume must restore all of them.
    torch.manual_seed(999)
    resumed_policy = ActorCritic(4, 2, hidden_sizes=[16])
    resumed = train(CFG, cartpole_envs(), resumed_policy, run_dir=run_dir, progress=False, resume=True)

    assert resumed["global_step"] == done["global_step"] == 128
    assert resumed["mean_return"] == done["mean_return"]
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed_policy.state_dict()[key]), key
    # The crashed run wrote step 96 to metrics.jsonl before dying; the resumed run logs it again once.
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [32, 64, 96, 128]


def test_save_is_atomic_and_keeps_the_newest(tmp_path):
    policy = fresh_policy()
    opt = torch.optim.Adam(policy.parameters())
    for step in (10, 20, 30):
        ckpt.save_checkpoint(tmp_path, step, policy, opt, {"global_step": step, "update": step // 10}, keep=2)
    (tmp_path / "checkpoints" / ".tmp-step_0000000040-0000").mkdir()
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step_0000000020", "step_0000000030"]

    other = ActorCritic(4, 2, hidden_sizes=[16])
    state = ckpt.load_checkpoint(
        ckpt.latest_checkpoint(tmp_path), other, torch.optim.Adam(other.parameters())
    )
    assert state["global_step"] == 30
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in policy.state_dict().items())
    assert ckpt.latest_checkpoint(tmp_path / "nowhere") is None
    assert ckpt.checkpoint_step(ckpt.latest_checkpoint(tmp_path)) == 30


def test_a_failed_write_leaves_no_checkpoint(tmp_path):
    policy = fresh_policy()
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        ckpt.save_checkpoint(tmp_path, 5, policy, torch.optim.Adam(policy.parameters()), {"bad": lambda: 0})
    assert ckpt.list_checkpoints(tmp_path) == []
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_rng_state_round_trip():
    state = ckpt.rng_state()
    first = torch.rand(3)
    ckpt.set_rng_state(state)
    assert torch.equal(first, torch.rand(3))


class LockedEnv(gym.Env):
    """An env holding something that cannot be pickled (like a pool with live connections)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, shape=(4,))
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.np_random.uniform(-1, 1, size=4).astype("float32"), {}

    def step(self, action):
        return self.reset()[0], float(action), True, False, {}


def test_unpicklable_envs_are_reseeded_on_resume(tmp_path):
    envs = make_vec_env([LockedEnv, LockedEnv])
    assert ckpt.env_state(envs) is None
    train(CFG, envs, fresh_policy(), run_dir=tmp_path, progress=False)
    more = PPOConfig(**{**CFG.__dict__, "total_steps": 192})
    with pytest.warns(UserWarning, match="re-seeding the envs"):
        result = train(
            more,
            make_vec_env([LockedEnv, LockedEnv]),
            fresh_policy(),
            run_dir=tmp_path,
            resume=True,
            progress=False,
        )
    assert result["global_step"] == 192


class LivePool:
    """A candidate pool with a live resource (a lock) that cannot be pickled."""

    descriptors: list = []

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0

    def generate(self, requests):
        self.calls += len(requests)
        return []

    def close(self) -> None:
        pass


class QueryOrderEnv(gym.Env):
    """Router-shaped: one-step episodes over a dataset visited in a seeded order; holds the pool."""

    observation_space = gym.spaces.Box(-1.0, 1.0, shape=(4,))
    action_space = gym.spaces.Discrete(2)

    def __init__(self, pool: LivePool) -> None:
        self.pool = pool
        self.data = np.random.default_rng(0).uniform(-1, 1, size=(50, 4)).astype(np.float32)
        self.order, self.cursor = np.arange(50), 50

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if self.cursor >= len(self.order):
            self.order, self.cursor = self.np_random.permutation(50), 0
        self.row = self.data[self.order[self.cursor]]
        self.cursor += 1
        return self.row, {}

    def step(self, action):
        self.pool.generate([action])
        return self.row, float((self.row[0] > 0) == action), True, False, {}


def test_envs_holding_a_pool_resume_their_data_order_exactly(tmp_path):
    def run(run_dir, policy, logger=None, resume=False):
        pool = LivePool()
        envs = make_vec_env([lambda: QueryOrderEnv(pool) for _ in range(CFG.num_envs)])
        result = train(CFG, envs, policy, run_dir=run_dir, logger=logger, progress=False, resume=resume)
        assert all(env.unwrapped.pool is pool for env in envs.unwrapped.envs)  # re-bound to the live pool
        return result

    straight = fresh_policy()
    run(tmp_path / "straight", straight)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "crashed", fresh_policy(), logger=CrashAt(96))
    resumed = ActorCritic(4, 2, hidden_sizes=[16])
    run(tmp_path / "crashed", resumed, resume=True)
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
