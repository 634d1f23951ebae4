"""Joint-ratio PPO: the joint log-probability, learning a fixed-horizon task, checkpoints and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rl_router import checkpoint as ckpt
from rl_router.policies.memory_tiers import MemoryTierPolicy
from rl_router.trainers.joint_ppo import JointPPOConfig, train

TARGET = [2, 0, 1, 2, 0]  # the joint action that pays most


class FiveSteps:
    """Five Discrete(3) decisions; the last step pays the share of decisions equal to TARGET."""

    action_space = spaces.Discrete(3)
    observation_space = spaces.Box(-1.0, 1.0, shape=(2 * 2 + 5,), dtype=np.float32)

    def __init__(self) -> None:
        self.t, self.hits, self.rng = 0, 0, np.random.default_rng(0)

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t, self.hits = 0, 0
        return self._obs(), {"action_mask": np.ones(3, dtype=np.int8)}

    def _obs(self):
        onehot = np.zeros(5, dtype=np.float32)
        onehot[min(self.t, 4)] = 1.0
        return np.concatenate([np.zeros(4, dtype=np.float32), onehot])

    @staticmethod
    def step_batch(envs, actions):
        out = []
        for env, action in zip(envs, actions, strict=True):
            env.hits += int(action == TARGET[env.t])
            env.t += 1
            done = env.t == 5
            out.append(
                (env._obs(), env.hits / 5 if done else 0.0, done, False, {"episode": {"hits": env.hits}})
            )
        return out

    def state_dict(self):
        return {"t": self.t}

    def load_state_dict(self, state):
        self.t = state["t"]

    def shared_state(self):
        return {}


def test_config_checks_name_the_field():
    with pytest.raises(ValueError, match="num_minibatches=3 does not divide"):
        JointPPOConfig(batch_episodes=32, num_minibatches=3)
    with pytest.raises(ValueError, match="total_episodes"):
        JointPPOConfig(batch_episodes=32, total_episodes=16)


def test_learns_the_best_joint_action(tmp_path):
    torch.manual_seed(0)
    cfg = JointPPOConfig(lr=3e-3, batch_episodes=16, total_episodes=16 * 40, update_epochs=4)
    envs = [FiveSteps() for _ in range(16)]
    policy = MemoryTierPolicy(obs_dim=9, num_actions=3, num_modules=5, hidden=[32])
    result = train(cfg, envs, policy, run_dir=tmp_path, progress=False)
    obs = torch.cat([torch.zeros(5, 4), torch.eye(5)], dim=1)
    assert policy(obs)[0].argmax(-1).tolist() == TARGET
    assert result["episodes"] == 640 and result["mean_return"] > 0.8
    assert ckpt.checkpoint_step(result["checkpoint"]) == 640


def test_resume_continues_from_the_checkpoint(tmp_path):
    cfg = JointPPOConfig(lr=1e-3, batch_episodes=8, total_episodes=32, checkpoint_every=16)
    policy = MemoryTierPolicy(obs_dim=9, num_actions=3, num_modules=5, hidden=[16])
    train(cfg, [FiveSteps() for _ in range(8)], policy, run_dir=tmp_path, progress=False)
    longer = JointPPOConfig(lr=1e-3, batch_episodes=8, total_episodes=48, checkpoint_every=16)
    again = MemoryTierPolicy(obs_dim=9, num_actions=3, num_modules=5, hidden=[16])
    result = train(
        longer, [FiveSteps() for _ in range(8)], again, run_dir=tmp_path, progress=False, resume=True
    )
    assert result["episodes"] == 48
    rows = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 6  # 4 updates, then 2 more after resuming at 32 episodes


class PricedFiveSteps(FiveSteps):
    """FiveSteps where tier 2 costs $1 a decision (TARGET uses it twice: $2 unconstrained)."""

    def reset(self, *, seed=None, options=None):
        self.spent = 0.0
        return super().reset(seed=seed, options=options)

    @staticmethod
    def step_batch(envs, actions):
        out = FiveSteps.step_batch(envs, actions)
        for env, action, (_, _, _, _, info) in zip(envs, actions, out, strict=True):
            env.spent += float(action == 2)
            info["episode"]["cost_usd"] = env.spent
        return out


def spent(infos):
    return np.array([info["episode"]["cost_usd"] for info in infos])


def test_a_budget_holds_spend_near_its_cap_and_lambda_is_checkpointed(tmp_path):
    from rewards.budget import BudgetConfig

    torch.manual_seed(0)
    budget = BudgetConfig(cost_per_query=1.0, lambda_lr=0.5)
    cfg = JointPPOConfig(
        lr=3e-3, batch_episodes=16, total_episodes=16 * 40, budget=budget, checkpoint_every=320
    )
    policy = MemoryTierPolicy(obs_dim=9, num_actions=3, num_modules=5, hidden=[32])
    envs = [PricedFiveSteps() for _ in range(16)]
    result = train(cfg, envs, policy, run_dir=tmp_path, progress=False, budget_usage=spent)
    assert result["train/budget/lambda"] > 0.0
    rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    late = np.mean([r["train/budget/measured"] for r in rows[-10:]])
    assert 0.75 < late < 1.25  # the $1 cap; unconstrained, the best joint action spends $2 (seed 0: 1.04)
    state = ckpt.load_checkpoint(result["checkpoint"], MemoryTierPolicy(9, 3, 5, hidden=[32]))
    assert state["budget"]["lambda"] == pytest.approx(result["train/budget/lambda"])
    with pytest.raises(ValueError, match="no budget_usage"):
        train(cfg, envs, policy, progress=False)
    with pytest.raises(ValueError, match="trained with trainer.budget"):
        train(JointPPOConfig(batch_episodes=16, total_episodes=16 * 41), envs, policy, run_dir=tmp_path,
              progress=False, resume=True)  # fmt: skip
