"""PPO trainer: config checks, a masked contextual bandit (router-shaped), logging, CartPole."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from rl_router.cli import conf_dir
from rl_router.policies.mlp import ActorCritic
from rl_router.policies.router_policy import RouterPolicy
from rl_router.trainers.ppo import PPOConfig, action_mask, make_vec_env, train

torch.set_num_threads(1)


class MaskedBandit(gym.Env):
    """One-step episodes, like router envs: the sign of ``obs[0]`` says whether action 0 or 1 pays 1.

    Action 2 would pay 10 but is always masked, so a trainer that honours masks never takes it.
    """

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
        self.action_space = spaces.Discrete(3)
        self._obs = np.zeros(3, dtype=np.float32)

    def _info(self) -> dict:
        return {"action_mask": np.array([True, True, False])}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._obs = self.np_random.uniform(-1, 1, size=3).astype(np.float32)
        return self._obs, self._info()

    def step(self, action):
        best = 0 if self._obs[0] > 0 else 1
        reward = 10.0 if action == 2 else float(action == best)
        return self._obs, reward, True, False, {**self._info(), "correct": float(action == best)}


def bandit_envs(n: int) -> gym.vector.SyncVectorEnv:
    return make_vec_env([MaskedBandit for _ in range(n)])


class ListLogger:
    def __init__(self) -> None:
        self.rows: list[tuple[int, dict]] = []

    def log(self, metrics: dict, step: int) -> None:
        self.rows.append((step, dict(metrics)))

    def finish(self) -> None:
        pass


def correct_share(info: dict) -> dict[str, float]:
    final = info["final_info"]
    return {"train/reward/correct": float(np.mean(final["correct"][final["_correct"]]))}


def test_config_checks_say_what_to_change():
    with pytest.raises(ValueError, match="does not divide the batch num_envs \\* num_steps = 12"):
        PPOConfig(num_envs=3, num_steps=4, num_minibatches=5, total_steps=100)
    with pytest.raises(ValueError, match="raise total_steps"):
        PPOConfig(num_envs=4, num_steps=8, total_steps=16)
    with pytest.raises(ValueError, match="trainer.lr"):
        PPOConfig(lr=0.0)
    cfg = PPOConfig(num_envs=4, num_steps=8, num_minibatches=2, total_steps=100)
    assert (cfg.batch_size, cfg.minibatch_size, cfg.num_updates) == (32, 16, 3)


def test_action_mask_from_vector_info():
    assert action_mask({}, 2, 3).all()
    info = {
        "action_mask": np.array([[1, 0, 1], [0, 0, 0]], dtype=bool),
        "_action_mask": np.array([True, False]),
    }
    assert action_mask(info, 2, 3).tolist() == [[True, False, True], [True, True, True]]


def test_rejects_next_step_autoreset_and_wrong_num_envs():
    cfg = PPOConfig(num_envs=2, num_steps=4, num_minibatches=1, total_steps=8)
    envs = gym.vector.SyncVectorEnv([MaskedBandit, MaskedBandit])  # default NEXT_STEP autoreset
    with pytest.raises(ValueError, match="make_vec_env"):
        train(cfg, envs, ActorCritic(3, 3), progress=False)
    with pytest.raises(ValueError, match="trainer.num_envs=2 but the vector env has 3"):
        train(cfg, bandit_envs(3), ActorCritic(3, 3), progress=False)


def test_learns_a_masked_contextual_bandit_with_one_step_episodes(tmp_path):
    torch.manual_seed(0)
    cfg = PPOConfig(lr=3e-3, num_envs=8, num_steps=4, total_steps=3200, num_minibatches=1, seed=0)
    policy = RouterPolicy(obs_dim=3, num_actions=3, query_hidden=[32], score_hidden=[32], value_hidden=[32])
    logger = ListLogger()
    result = train(
        cfg, bandit_envs(8), policy, run_dir=tmp_path, logger=logger, progress=False, metrics_fn=correct_share
    )

    assert result["global_step"] == 3200
    assert all(m["rollout/action_share/2"] == 0.0 for _, m in logger.rows)  # masked: never taken
    assert all(m["train/episode/count"] == 32 for _, m in logger.rows)  # every step ends an episode
    assert np.mean([m["train/reward/correct"] for _, m in logger.rows[-10:]]) > 0.9
    obs = torch.tensor([[0.8, 0.0, 0.0], [-0.8, 0.0, 0.0]])
    assert policy.prob_of(obs, 0)[0] > 0.8 and policy.prob_of(obs, 1)[1] > 0.8

    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == cfg.num_updates == len(logger.rows)
    assert (
        lines[-1]["step"] == 3200 and "train/loss/policy" in lines[-1] and "train/reward/correct" in lines[-1]
    )
    assert result["checkpoint"].name == "step_0000003200"


def test_cartpole_improves_clearly_over_random():
    # A random policy averages ~22 on CartPole-v1.
    cfg = PPOConfig(
        lr=1e-3, num_envs=8, num_steps=32, total_steps=20_480, gamma=0.98, gae_lambda=0.8,
        ent_coef=0.0, update_epochs=20, num_minibatches=1, seed=0,
    )  # fmt: skip
    envs = make_vec_env([lambda: gym.make("CartPole-v1") for _ in range(cfg.num_envs)])
    torch.manual_seed(0)
    result = train(cfg, envs, ActorCritic(4, 2), progress=False)
    assert result["mean_return"] > 100


def test_ppo_yaml_composes_against_its_schema(tmp_path):
    ConfigStore.instance().store(group="trainer", name="ppo_schema", node=PPOConfig)
    (tmp_path / "root.yaml").write_text("defaults:\n  - _self_\n  - trainer: ppo\nseed: 7\n")
    (tmp_path / "trainer").mkdir()
    (tmp_path / "trainer" / "ppo.yaml").write_text((conf_dir() / "trainer" / "ppo.yaml").read_text())
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        cfg = compose(config_name="root")
        with pytest.raises(Exception, match="not_a_key"):
            compose(config_name="root", overrides=["trainer.not_a_key=1"])
        with pytest.raises(ValueError, match="does not divide"):
            OmegaConf.to_object(compose(config_name="root", overrides=["trainer.num_minibatches=5"]).trainer)
    trainer = OmegaConf.to_object(cfg.trainer)
    assert isinstance(trainer, PPOConfig)
    got = (trainer.lr, trainer.clip_coef, trainer.update_epochs, trainer.ent_coef, trainer.max_grad_norm)
    assert got == (3e-4, 0.2, 4, 0.01, 0.5)
    assert trainer.batch_size == 32 and trainer.seed == 7
