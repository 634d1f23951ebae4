"""PPO with ONE joint ratio over an episode's decisions (BudgetMem's update for ``memory_tiers``).

An episode of ``memory_tiers`` is five decisions (a tier per module) and one terminal reward. BudgetMem
treats the five as one joint action ``a = (a_1 .. a_5)`` with ``log pi(a) = sum_t log pi(a_t | s_t)``
and clips the joint ratio ``pi(a) / pi_old(a)``. Our per-step PPO (:mod:`rl_router.trainers.ppo`)
would clip each decision's ratio on its own: with ``gamma = lambda = 1`` every step's advantage is
``R - V(s_t)``, but a product of five ratios each within ``1 +- eps`` can move the joint policy by up
to ``(1 + eps)^5`` (+149% at eps 0.2), so it is not the same trust region. Hence this small trainer:

* *rollout*: ``batch_episodes`` envs play whole episodes together, one batched
  ``step_batch`` (one pool call) per decision;
* *advantages*: ``A = R - V(s_1)``: the episode's reward against the critic's value of its first
  state (the query before any module ran);
* *update*: ``update_epochs`` passes of minibatches of episodes; the clipped surrogate on the
  joint log-probability (:func:`rl_router.trainers.ppo_math.clipped_policy_loss` on summed
  log-probs), the clipped value loss on ``V(s_1)``, and the mean per-decision entropy;
* *log* / *checkpoint*: as the step PPO (``metrics.jsonl``, atomic ``checkpoints/step_N`` named by
  episodes played).

With a budget (``trainer.budget.cost_per_query``, :class:`rewards.budget.BudgetConfig`) the episode's
return becomes ``R - lam * usage / target`` (:class:`rewards.budget.BudgetPenalty`) and ``lam`` takes a
projected dual-ascent step after each rollout on the rollout's mean usage (*budget_usage* says what
each episode used, e.g. its dollars). The measure is the sampled episodes', as in the GRPO bridge;
``lam`` is checkpointed.

Envs follow ``envs.memory_tiers``: a fixed horizon, ``Discrete`` actions, ``info["action_mask"]``,
the reward on the last step, and a ``step_batch(envs, actions)`` static method.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical
from tqdm.auto import tqdm

from rewards.budget import BudgetConfig, BudgetPenalty, dual_ascent
from rl_router import checkpoint as ckpt
from rl_router.loggers import JsonlLogger, Logger, NullLogger
from rl_router.rollout.episodes import play_episodes
from rl_router.run import METRICS, seed_everything, trim_jsonl
from rl_router.trainers.ppo_math import (
    clipped_policy_loss,
    clipped_value_loss,
    entropy_masked,
    explained_variance,
    normalize_advantages,
)

EpisodeFn = Callable[[list[dict[str, Any]]], dict[str, float]]
"""Called with the rollout's final infos; returns extra metrics (full keys) to log."""
UsageFn = Callable[[list[dict[str, Any]]], np.ndarray]
"""With a budget: called with the rollout's final infos; returns what each episode used, ``[N]``."""


@dataclass
class JointPPOConfig:
    """Hyperparameters of :func:`train` (Hydra schema ``trainer/joint_ppo_schema``); BudgetMem's defaults."""

    lr: float = 3e-4  # Adam learning rate (BudgetMem: 3e-4)
    batch_episodes: int = 32  # episodes (queries) per rollout, played together (BudgetMem: 32)
    total_episodes: int = 2048  # episodes for the whole run
    update_epochs: int = 4  # passes over each rollout (BudgetMem: 4)
    num_minibatches: int = 1  # minibatches of episodes per pass; must divide batch_episodes
    clip_coef: float = 0.2  # joint-ratio clip epsilon (BudgetMem: 0.2)
    clip_vloss: bool = True  # clip the value update around the rollout's values
    vf_coef: float = 0.5  # weight of the value loss
    ent_coef: float = 0.01  # weight of the mean per-decision entropy (BudgetMem: 0.01)
    max_grad_norm: float = 0.5  # global gradient-norm clip (BudgetMem: 0.5)
    norm_adv: bool = True  # normalise advantages per minibatch
    anneal_lr: bool = False  # decay the learning rate linearly to 0 over the run
    checkpoint_every: int = 0  # episodes between checkpoints (whole rollouts); 0: only at the end
    keep_checkpoints: int = 2  # newest checkpoints kept on disk
    seed: int = 0  # seeds python, numpy, torch, the minibatch order and the envs' first reset
    budget: BudgetConfig = field(default_factory=BudgetConfig)  # a cap on mean spend (Lagrangian); off

    @property
    def num_updates(self) -> int:
        return self.total_episodes // self.batch_episodes

    def __post_init__(self) -> None:
        for name in ("batch_episodes", "update_epochs", "num_minibatches", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"trainer.{name}={getattr(self, name)}: must be at least 1")
        if self.lr <= 0:
            raise ValueError(f"trainer.lr={self.lr}: must be positive, e.g. 3e-4")
        if self.batch_episodes % self.num_minibatches:
            raise ValueError(
                f"trainer.num_minibatches={self.num_minibatches} does not divide trainer.batch_episodes="
                f"{self.batch_episodes}"
            )
        if self.total_episodes < self.batch_episodes:
            raise ValueError(
                f"trainer.total_episodes={self.total_episodes} is less than one rollout "
                f"(batch_episodes={self.batch_episodes})"
            )
        if self.clip_coef <= 0 or self.max_grad_norm <= 0:
            raise ValueError("trainer.clip_coef and trainer.max_grad_norm must be positive (0.2, 0.5)")
        if self.checkpoint_every < 0:
            raise ValueError(f"trainer.checkpoint_every={self.checkpoint_every}: use 0 (end only) or more")


def train(
    cfg: JointPPOConfig,
    envs: Sequence[Any],
    policy: nn.Module,
    run_dir: Path | None = None,
    logger: Logger | None = None,
    progress: bool = True,
    resume: bool = False,
    episode_metrics: EpisodeFn | None = None,
    budget_usage: UsageFn | None = None,
) -> dict[str, Any]:
    """Train ``policy`` on ``cfg.total_episodes`` episodes of ``envs`` (``cfg.batch_episodes`` of them).

    ``budget_usage`` is needed exactly when ``cfg.budget`` is set (see the module docstring).

    Returns:
        The last logged metrics plus ``episodes``, ``mean_return`` and ``checkpoint`` (the final one).
    """
    # ---------------------------------------------------------------- setup
    if len(envs) != cfg.batch_episodes:
        raise ValueError(f"trainer.batch_episodes={cfg.batch_episodes} but {len(envs)} envs were built")
    if cfg.budget.enabled != (budget_usage is not None):
        raise ValueError(
            "trainer.budget is set but train() got no budget_usage to measure it"
            if cfg.budget.enabled
            else "train() got a budget_usage but trainer.budget is off: set trainer.budget.cost_per_query"
        )
    penalty = BudgetPenalty(cfg.budget.target) if cfg.budget.enabled else None
    multiplier = 0.0  # the budget's lam
    logger = logger or NullLogger()
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.lr, eps=1e-5)
    latest = ckpt.latest_checkpoint(run_dir) if resume and run_dir is not None else None
    if latest is None:
        seed_everything(cfg.seed)
        shuffle_rng = np.random.default_rng(cfg.seed)
        episodes, start_update = 0, 1
        for i, env in enumerate(envs):
            env.reset(seed=cfg.seed + i)  # seeds each copy's data order
    else:
        state = ckpt.load_checkpoint(latest, policy, optimizer)
        ckpt.set_rng_state(state["rng"])
        shuffle_rng = np.random.default_rng()
        shuffle_rng.bit_generator.state = state["shuffle_rng"]
        episodes, start_update = state["episodes"], state["update"] + 1
        for env, env_state in zip(envs, state["env_state"], strict=True):
            env.load_state_dict(env_state)
        for key, obj in envs[0].shared_state().items():
            obj.load_state_dict(state["shared"][key])
        if (state.get("budget") is None) == cfg.budget.enabled:
            raise ValueError(
                f"{latest} was trained {'without' if state.get('budget') is None else 'with'} "
                f"trainer.budget: resume it {'without one' if state.get('budget') is None else 'with it'}"
            )
        multiplier = float(state["budget"]["lambda"]) if cfg.budget.enabled else 0.0
        trim_jsonl(Path(run_dir) / METRICS, episodes)
    jsonl = JsonlLogger(Path(run_dir) / METRICS) if run_dir is not None else None
    metrics: dict[str, Any] = {}
    recent: list[float] = []
    saved = latest
    bar = tqdm(total=cfg.num_updates * cfg.batch_episodes, initial=episodes, disable=not progress, unit="ep")
    start_time, start_episodes = time.time(), episodes

    for update in range(start_update, cfg.num_updates + 1):
        if cfg.anneal_lr:
            optimizer.param_groups[0]["lr"] = cfg.lr * (1.0 - (update - 1.0) / cfg.num_updates)

        # ------------------------------------------------------------ rollout
        batch = play_episodes(envs, policy)
        episodes += len(envs)
        obs, masks, actions = batch["obs"], batch["masks"], batch["actions"]  # [H, N, ...]
        old_joint = batch["logprobs"].sum(0)  # [N]: log pi_old of the joint action
        returns, old_values = batch["rewards"], batch["values"]  # [N]
        budget_metrics: dict[str, float] = {}
        if penalty is not None and budget_usage is not None:
            usage = np.asarray(budget_usage(batch["infos"]), dtype=np.float64)  # [N]
            term = penalty([""] * len(usage), usage=usage.tolist(), multiplier=multiplier)
            returns = returns + torch.tensor(term, dtype=returns.dtype)
            multiplier = dual_ascent(multiplier, float(usage.mean()), cfg.budget.target, cfg.budget.lambda_lr)
            budget_metrics = {
                "train/budget/lambda": multiplier,
                "train/budget/measured": float(usage.mean()),
                "train/reward/budget": float(np.mean(term)),
            }

        # ------------------------------------------------------------ advantages
        advantages = returns - old_values  # one advantage per episode, against V(s_1)

        # ------------------------------------------------------------ update
        stats: dict[str, list[float]] = defaultdict(list)
        horizon, n = actions.shape
        for _ in range(cfg.update_epochs):
            order = torch.from_numpy(shuffle_rng.permutation(n))
            for mb in order.split(n // cfg.num_minibatches):
                flat_obs = obs[:, mb].reshape(horizon * len(mb), -1)
                flat_mask = masks[:, mb].reshape(horizon * len(mb), -1)
                logits, value = policy(flat_obs, flat_mask)
                logp = Categorical(logits=logits).log_prob(actions[:, mb].reshape(-1))
                new_joint = logp.reshape(horizon, len(mb)).sum(0)  # [B]
                new_v1 = value.reshape(horizon, len(mb))[0]  # [B]: V(s_1)
                entropy = entropy_masked(logits, flat_mask).mean()
                adv = normalize_advantages(advantages[mb]) if cfg.norm_adv else advantages[mb]
                pg_loss, clip_frac, approx_kl = clipped_policy_loss(
                    new_joint, old_joint[mb], adv, cfg.clip_coef
                )
                v_clip = cfg.clip_coef if cfg.clip_vloss else None
                v_loss = clipped_value_loss(new_v1, old_values[mb], returns[mb], v_clip)
                loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss
                optimizer.zero_grad()
                loss.backward()
                grad_norm = nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
                optimizer.step()
                for key, value_ in (
                    ("loss/policy", pg_loss),
                    ("loss/value", v_loss),
                    ("loss/entropy", entropy),
                    ("ppo/approx_kl", approx_kl),
                    ("ppo/clip_frac", clip_frac),
                    ("optim/grad_norm", grad_norm),
                ):
                    stats[key].append(float(value_.detach()))

        # ------------------------------------------------------------ log
        recent = (recent + returns.tolist())[-200:]
        metrics = {f"train/{key}": float(np.mean(v)) for key, v in stats.items()}
        metrics["train/ppo/explained_variance"] = explained_variance(old_values, returns)
        metrics["train/optim/lr"] = optimizer.param_groups[0]["lr"]
        metrics["train/episode/return"] = float(returns.mean())
        metrics["train/perf/episodes_per_s"] = (episodes - start_episodes) / max(
            time.time() - start_time, 1e-9
        )
        metrics.update(budget_metrics)
        if episode_metrics is not None:
            metrics.update(episode_metrics(batch["infos"]))
        if jsonl is not None:
            jsonl.log(metrics, episodes)
        logger.log(metrics, episodes)
        bar.update(len(envs))
        bar.set_postfix(
            {k.rsplit("/", 1)[-1]: round(v, 4) for k, v in metrics.items() if "reward" in k}, refresh=False
        )

        # ------------------------------------------------------------ checkpoint
        every = cfg.checkpoint_every
        crossed = every > 0 and episodes // every > (episodes - len(envs)) // every
        if run_dir is not None and (crossed or update == cfg.num_updates):
            trainer_state = {
                "episodes": episodes,
                "update": update,
                "rng": ckpt.rng_state(),
                "shuffle_rng": shuffle_rng.bit_generator.state,
                "env_state": [env.state_dict() for env in envs],
                "shared": {k: obj.state_dict() for k, obj in envs[0].shared_state().items()},
                "config": asdict(cfg),
                "budget": {"lambda": multiplier} if cfg.budget.enabled else None,
            }
            saved = ckpt.save_checkpoint(
                run_dir, episodes, policy, optimizer, trainer_state, cfg.keep_checkpoints
            )

    bar.close()
    if jsonl is not None:
        jsonl.finish()
    mean_return = float(np.mean(recent)) if recent else float("nan")
    return {**metrics, "episodes": episodes, "mean_return": mean_return, "checkpoint": saved}
