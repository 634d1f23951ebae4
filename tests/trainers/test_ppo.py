"""PPO trainer: config checks, a masked contextual bandit (router-shaped), logging, CartPole."""

from __future__ import annotations

import json
import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from rewards.budget import BudgetConfig
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


class PricedBandit(gym.Env):
    """A two-model router in miniature, its query's difficulty ``-obs[0]``.

    The cheap model (action 0) scores 1 on easy queries (``obs[0] > 0``) and less the harder a hard one
    is (``1 + obs[0]``); the strong one (action 1) scores 1 on hard queries, 0.5 on easy ones. Always
    taking the better model sends half the queries to the strong one; a budget of less sends the
    hardest. ``state_dict`` makes a resumed run go on exactly.
    """

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self._obs = np.zeros(3, dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._obs = self.np_random.uniform(-1, 1, size=3).astype(np.float32)
        return self._obs, {}

    def step(self, action):
        easy = self._obs[0] > 0
        reward = 1.0 + min(0.0, float(self._obs[0])) if action == 0 else (0.5 if easy else 1.0)
        return self._obs, reward, True, False, {"cost_usd": 0.001 if action == 1 else 0.0}

    def state_dict(self) -> dict:
        return {"rng": self.np_random.bit_generator.state, "obs": self._obs.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.np_random = np.random.Generator(np.random.PCG64())
        self.np_random.bit_generator.state = state["rng"]
        self._obs = np.asarray(state["obs"], dtype=np.float32)


def strong_picks(info: dict, actions: np.ndarray) -> np.ndarray:
    """Usage of a share budget on the strong model: 1 where it was picked."""
    return (actions == 1).astype(float)


def budget_run(
    tmp_path, share: float, total_steps: int = 3200, resume: bool = False, lambda_lr: float = 0.005, **kwargs
) -> tuple[dict, list[dict]]:
    torch.manual_seed(0)
    budget = BudgetConfig(share={"strong": share}, lambda_lr=lambda_lr)
    cfg = PPOConfig(
        lr=3e-3, num_envs=8, num_steps=4, total_steps=total_steps, num_minibatches=1, budget=budget, **kwargs
    )
    policy = RouterPolicy(obs_dim=3, num_actions=2, query_hidden=[32], score_hidden=[32], value_hidden=[32])
    envs = make_vec_env([PricedBandit for _ in range(8)])
    result = train(
        cfg, envs, policy, run_dir=tmp_path, progress=False, resume=resume, budget_usage=strong_picks
    )
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    return result, rows


def test_budget_multiplier_rises_while_overspending_and_the_policy_moves_to_the_budget(tmp_path):
    _, rows = budget_run(tmp_path, share=0.25)
    lam = [r["train/budget/lambda"] for r in rows]
    measured = [r["train/budget/measured"] for r in rows]
    assert max(lam) > 0.1  # the best models' 50% overspends a 25% budget: lam rises
    # lam rises exactly in the rollouts whose greedy share is over the budget, falls in the others,
    # by steps that anneal with the policy's learning rate
    scale = [r["train/optim/lr"] / 3e-3 for r in rows]
    for before, after, m, k in zip([0.0, *lam], lam, measured, scale, strict=False):
        assert after == pytest.approx(max(0.0, before + 0.005 * k * (m - 0.25) / 0.25))
    assert abs(np.mean(measured[-20:]) - 0.25) < 0.08  # the greedy share settles near the budget
    assert all(r["train/reward/budget"] <= 0 for r in rows)  # the penalty only ever takes away


def test_a_slack_budget_ends_with_a_zero_multiplier(tmp_path):
    _, rows = budget_run(tmp_path, share=0.75)
    lam = [r["train/budget/lambda"] for r in rows]
    assert lam[-1] == 0.0 and all(v == 0.0 for v in lam[-20:])  # the best models use 50% < 75%
    assert all(r["train/budget/measured"] < 0.75 for r in rows[-20:])


def test_resumed_budget_run_continues_the_multiplier_exactly(tmp_path):
    _, rows = budget_run(tmp_path, share=0.25, total_steps=1600, checkpoint_every=800)
    saved = json.loads((tmp_path / "checkpoints" / "step_0000000800" / "trainer_state.json").read_text())
    assert saved["budget"]["value"] == rows[24]["train/budget/lambda"]  # plain JSON, the step-800 lam
    shutil.rmtree(tmp_path / "checkpoints" / "step_0000001600")  # as if the run had stopped at step 800
    _, resumed = budget_run(tmp_path, share=0.25, total_steps=1600, checkpoint_every=800, resume=True)
    keys = ("train/budget/lambda", "train/budget/measured", "train/reward/budget", "train/loss/policy")
    assert [[r[k] for k in keys] for r in resumed] == [[r[k] for k in keys] for r in rows]


def test_a_budget_needs_its_usage_and_a_usage_needs_a_budget():
    budget = BudgetConfig(share={"strong": 0.25})
    cfg = PPOConfig(num_envs=2, num_steps=4, num_minibatches=1, total_steps=8, budget=budget)
    with pytest.raises(ValueError, match="no budget_usage"):
        train(cfg, make_vec_env([PricedBandit] * 2), ActorCritic(3, 2), progress=False)
    plain = PPOConfig(num_envs=2, num_steps=4, num_minibatches=1, total_steps=8)
    with pytest.raises(ValueError, match="trainer.budget is off"):
        train(
            plain,
            make_vec_env([PricedBandit] * 2),
            ActorCritic(3, 2),
            progress=False,
            budget_usage=strong_picks,
        )


class RecordingBandit(MaskedBandit):
    """:class:`MaskedBandit` that remembers every observation it was reset to."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[float]] = []

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options=options)
        self.seen.append(obs.tolist())
        return obs, info


def test_grouped_rollout_answers_each_query_with_several_actions_and_learns(tmp_path):
    torch.manual_seed(0)
    cfg = PPOConfig(
        lr=3e-3, num_envs=8, num_steps=4, total_steps=3200, num_minibatches=1, seed=0, group_size=4
    )
    envs = make_vec_env([RecordingBandit for _ in range(8)])
    policy = RouterPolicy(obs_dim=3, num_actions=3, query_hidden=[32], score_hidden=[32], value_hidden=[32])
    logger = ListLogger()
    train(cfg, envs, policy, run_dir=tmp_path, logger=logger, progress=False, metrics_fn=correct_share)

    seen = [env.seen for env in envs.envs]
    assert seen[0] == seen[1] == seen[2] == seen[3] and seen[4] == seen[5] == seen[6] == seen[7]
    assert seen[0] != seen[4]  # two groups, two query streams
    assert all(m["rollout/action_share/2"] == 0.0 for _, m in logger.rows)
    assert np.mean([m["train/reward/correct"] for _, m in logger.rows[-10:]]) > 0.9


def test_group_size_must_divide_num_envs_and_needs_one_step_episodes():
    with pytest.raises(
        ValueError, match="trainer.group_size=3 must be at least 1 and divide trainer.num_envs=8"
    ):
        PPOConfig(num_envs=8, num_steps=4, total_steps=64, num_minibatches=1, group_size=3)
    cfg = PPOConfig(num_envs=2, num_steps=8, total_steps=16, num_minibatches=1, group_size=2)
    envs = make_vec_env([lambda: gym.make("CartPole-v1") for _ in range(2)])
    with pytest.raises(
        ValueError, match="group_size=2: (sub-envs of one group observed different|an episode)"
    ):
        train(cfg, envs, ActorCritic(4, 2), progress=False)
