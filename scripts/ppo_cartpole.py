"""Prove our PPO on Gymnasium CartPole-v1 before trusting it on routers.

Trains :class:`~rl_router.policies.mlp.ActorCritic` with :func:`rl_router.trainers.ppo.train` for
150k environment steps and passes when the mean return of the last 20 episodes is at least 475
(the maximum is 500). The last line printed is ``mean_return=<x>``; the exit status is 0 on a pass.

Launch:
    python scripts/ppo_cartpole.py --seed 0
    python scripts/ppo_cartpole.py --seed 1 --run-dir outputs/cartpole   # also metrics.jsonl + checkpoints

Hyperparameters follow RL Baselines3 Zoo's tuned CartPole PPO (8 envs x 32 steps, 20 epochs,
gamma 0.98, GAE lambda 0.8, lr 1e-3 decayed to 0, no entropy bonus) rather than CleanRL's defaults,
which need ~500k steps.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import torch

from rl_router.policies.mlp import ActorCritic
from rl_router.trainers.ppo import PPOConfig, make_vec_env, train

TARGET = 475.0


def cartpole_config(seed: int, total_steps: int) -> PPOConfig:
    """The tuned CartPole settings (see the module docstring)."""
    return PPOConfig(
        lr=1e-3,
        num_envs=8,
        num_steps=32,
        total_steps=total_steps,
        gamma=0.98,
        gae_lambda=0.8,
        clip_coef=0.2,
        ent_coef=0.0,
        update_epochs=20,
        num_minibatches=1,
        anneal_lr=True,
        seed=seed,
    )


class PrintLogger:
    """Prints the mean episode return every 10k steps (instead of the progress bar)."""

    def __init__(self) -> None:
        self.next_print = 10_000

    def log(self, metrics: dict[str, float], step: int) -> None:
        if step >= self.next_print and "train/episode/return" in metrics:
            print(f"step={step} episode_return={metrics['train/episode/return']:.1f}", flush=True)
            self.next_print += 10_000

    def finish(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--total-steps", type=int, default=150_000)
    parser.add_argument("--run-dir", type=Path, default=None, help="write metrics.jsonl and checkpoints here")
    parser.add_argument("--no-progress", action="store_true", help="print one line per 10k steps instead")
    args = parser.parse_args()

    torch.set_num_threads(1)  # tiny networks: threads cost more than they save
    cfg = cartpole_config(args.seed, args.total_steps)
    envs = make_vec_env([lambda: gym.make("CartPole-v1") for _ in range(cfg.num_envs)])
    torch.manual_seed(cfg.seed)
    policy = ActorCritic(obs_dim=4, num_actions=2, hidden_sizes=[64, 64])

    start = time.time()
    result = train(
        cfg,
        envs,
        policy,
        run_dir=args.run_dir,
        logger=PrintLogger() if args.no_progress else None,
        progress=not args.no_progress,
    )
    envs.close()
    wall = time.time() - start
    passed = result["mean_return"] >= TARGET
    print(f"seed={args.seed} steps={result['global_step']} wall_s={wall:.1f} pass={passed}")
    print(f"mean_return={result['mean_return']:.1f}")
    raise SystemExit(0 if passed else 1)


if __name__ == "__main__":
    main()
