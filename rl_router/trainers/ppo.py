"""PPO for small policies over a Gymnasium vector env, in the shape of CleanRL's ``ppo.py``.

Configured by ``conf/trainer/ppo.yaml`` (:class:`PPOConfig`). :func:`train` reads top to bottom:
set up, then per update *rollout* (``num_steps`` steps of ``num_envs`` envs), *advantages* (GAE),
*update* (``update_epochs`` passes of clipped-objective minibatch SGD), *log* and *checkpoint*. The
maths lives in :mod:`rl_router.trainers.ppo_math`.

With a budget (``trainer.budget``, :class:`rewards.budget.BudgetConfig`) the objective is constrained,
``max E[reward] s.t. E[usage] <= target``, by a Lagrange multiplier: every step's reward becomes
``reward - lam * usage / target``, and after each rollout *budget* moves ``lam`` by dual ascent on
what the policy's greedy (argmax) decisions of the rollout used (:mod:`rewards.budget`; its state is
saved in every checkpoint). What "usage" is (dollars, or picks of one model) the caller says with
``budget_usage``.

With groups (``trainer.group_size = G > 1``, one-step episodes only) each block of ``G`` sub-envs is
seeded alike, so at every step they observe the same query and answer it with ``G`` sampled actions
(the replay pool can answer any of them); an action's advantage is its reward minus the block's mean
reward (GRPO's group baseline), which knows the query's difficulty without a critic. The trainer
checks at every step that a block's observations agree and its episodes ended.

Contract with the env:

* a vector env whose sub-envs reset in the same step they end
  (``autoreset_mode=SAME_STEP``; :func:`make_vec_env` builds one), so every transition in the
  rollout belongs to the policy and one-step episodes (routers as contextual bandits) waste nothing;
* a ``Discrete`` action space; optional ``info["action_mask"]`` (bool ``[A]`` per sub-env, True =
  valid), read after every reset and step, absent = all valid;
* truncated episodes are bootstrapped with ``gamma * V(final_obs)``; terminated ones are not.

Policies follow ``policy(obs[B, D], mask[B, A]) -> (logits[B, A], value[B])``
(:mod:`rl_router.policies`).
"""

from __future__ import annotations

import time
import warnings
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import RecordEpisodeStatistics
from torch import nn
from torch.distributions import Categorical
from tqdm.auto import tqdm

from rewards.budget import BudgetConfig, BudgetPenalty, LagrangeMultiplier
from rl_router import checkpoint as ckpt
from rl_router.loggers import JsonlLogger, Logger, NullLogger
from rl_router.run import METRICS, seed_everything, trim_jsonl
from rl_router.trainers.ppo_math import (
    clipped_policy_loss,
    clipped_value_loss,
    compute_gae,
    entropy_masked,
    explained_variance,
    group_advantages,
    normalize_advantages,
)

MetricsFn = Callable[[dict[str, Any]], dict[str, float]]
"""Called with the vector env's ``info`` after every step; returns metrics (full keys such as
``train/reward/cost`` or ``rollout/route_share/<model>``), averaged over the rollout and logged."""

UsageFn = Callable[[dict[str, Any], np.ndarray], np.ndarray]
"""With a budget: called with the vector env's ``info`` and the actions ``[N]`` after every step;
returns what each sub-env's step used of the budgeted resource, ``[N]`` (e.g. dollars, or 1 where the
capped model was picked)."""


@dataclass
class PPOConfig:
    """Hyperparameters of :func:`train` (Hydra schema ``trainer/ppo_schema``).

    Defaults are CleanRL's for CartPole; ``conf/trainer/ppo.yaml`` holds the router defaults.
    """

    lr: float = 2.5e-4  # Adam learning rate
    num_envs: int = 4  # parallel sub-envs; must equal the vector env's num_envs
    num_steps: int = 128  # steps per sub-env per rollout; batch = num_envs * num_steps
    total_steps: int = 500_000  # environment steps (summed over sub-envs) for the whole run
    gamma: float = 0.99  # discount; no effect on one-step episodes, matters for multi-step envs
    gae_lambda: float = 0.95  # GAE lambda
    clip_coef: float = 0.2  # PPO ratio clip epsilon
    clip_vloss: bool = True  # also clip the value update around the rollout's values
    vf_coef: float = 0.5  # weight of the value loss
    ent_coef: float = 0.01  # weight of the entropy bonus
    max_grad_norm: float = 0.5  # global gradient-norm clip
    update_epochs: int = 4  # passes over each rollout batch
    num_minibatches: int = 4  # minibatches per pass; must divide the batch
    norm_adv: bool = True  # normalise advantages per minibatch
    anneal_lr: bool = True  # decay the learning rate linearly to 0 over the run
    checkpoint_every: int = 0  # environment steps between checkpoints (whole updates); 0: only at the end
    keep_checkpoints: int = 3  # newest checkpoints kept on disk
    seed: int = 0  # seeds python, numpy, torch, the minibatch order and the first env reset
    # sub-envs per query: > 1 seeds each block of group_size sub-envs alike, so they answer the same
    # query with group_size sampled actions, and the block's mean reward is the baseline (GRPO's)
    # in place of the critic's value; one-step episodes only (select-mode routers)
    group_size: int = 1
    budget: BudgetConfig = field(default_factory=BudgetConfig)  # a cap on spend (Lagrangian); off by default

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        return self.total_steps // self.batch_size

    def __post_init__(self) -> None:
        for name in ("num_envs", "num_steps", "update_epochs", "num_minibatches", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"trainer.{name}={getattr(self, name)}: must be at least 1")
        if self.group_size < 1 or self.num_envs % self.group_size:
            raise ValueError(
                f"trainer.group_size={self.group_size} must be at least 1 and divide "
                f"trainer.num_envs={self.num_envs}"
            )
        if self.lr <= 0:
            raise ValueError(f"trainer.lr={self.lr}: must be positive, e.g. 3e-4")
        if self.batch_size % self.num_minibatches:
            raise ValueError(
                f"trainer.num_minibatches={self.num_minibatches} does not divide the batch "
                f"num_envs * num_steps = {self.batch_size}: change num_minibatches or num_steps"
            )
        if self.total_steps < self.batch_size:
            raise ValueError(
                f"trainer.total_steps={self.total_steps} is less than one batch ({self.batch_size}): "
                "raise total_steps or lower num_envs * num_steps"
            )
        if not (0.0 <= self.gamma <= 1.0 and 0.0 <= self.gae_lambda <= 1.0):
            raise ValueError(f"trainer.gamma={self.gamma}, gae_lambda={self.gae_lambda}: both lie in [0, 1]")
        if self.clip_coef <= 0:
            raise ValueError(f"trainer.clip_coef={self.clip_coef}: must be positive, e.g. 0.2")
        if self.max_grad_norm <= 0:
            raise ValueError(f"trainer.max_grad_norm={self.max_grad_norm}: must be positive, e.g. 0.5")
        if self.checkpoint_every < 0:
            raise ValueError(
                f"trainer.checkpoint_every={self.checkpoint_every}: use 0 (end only) or a step count"
            )


def make_vec_env(env_fns: Sequence[Callable[[], gym.Env]]) -> gym.vector.SyncVectorEnv:
    """A :class:`~gymnasium.vector.SyncVectorEnv` with the same-step autoreset :func:`train` needs."""
    return gym.vector.SyncVectorEnv(env_fns, autoreset_mode=AutoresetMode.SAME_STEP)


def action_mask(info: dict[str, Any], num_envs: int, num_actions: int) -> torch.Tensor:
    """``[N, A]`` bool mask from a vector info; sub-envs that sent no ``action_mask`` allow all."""
    mask = np.ones((num_envs, num_actions), dtype=bool)
    if "action_mask" in info:
        present = info.get("_action_mask", np.ones(num_envs, dtype=bool))
        mask[present] = np.asarray(info["action_mask"], dtype=bool)[present]
    return torch.from_numpy(mask)


def reset_seeds(cfg: PPOConfig, base: int) -> list[int]:
    """Per-sub-env reset seeds: ``base + i`` for each sub-env, or ``base + i // group_size`` with
    groups, so a group's sub-envs draw their queries in the same order."""
    return [base + i // cfg.group_size for i in range(cfg.num_envs)]


def check_groups(obs: torch.Tensor, dones: torch.Tensor, group_size: int, step: int) -> None:
    """Raise unless every group of sub-envs observed one query at rollout step ``step`` and ended there.

    Args:
        obs: ``[N, D]`` the observations the actions of ``step`` answered.
        dones: ``[N]`` 1.0 where the episode ended at ``step``.
    """
    grouped = obs.reshape(obs.shape[0] // group_size, group_size, -1)
    if not bool((grouped == grouped[:, :1]).all()):
        raise ValueError(
            f"trainer.group_size={group_size}: sub-envs of one group observed different queries at "
            f"rollout step {step}; a grouped rollout needs an env whose query order depends only on "
            "its seed (multi_llm_qa select mode)"
        )
    if not bool((dones == 1).all()):
        raise ValueError(
            f"trainer.group_size={group_size}: an episode did not end after one step (rollout step "
            f"{step}); the group baseline is for one-step episodes only: use group_size=1"
        )


def _obs(x: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float32)


def train(
    cfg: PPOConfig,
    envs: gym.vector.VectorEnv,
    policy: nn.Module,
    run_dir: Path | None = None,
    logger: Logger | None = None,
    progress: bool = True,
    resume: bool = False,
    metrics_fn: MetricsFn | None = None,
    trust_pickles: bool = False,
    budget_usage: UsageFn | None = None,
) -> dict[str, Any]:
    """Train ``policy`` with PPO on ``envs`` for ``cfg.total_steps`` environment steps.

    Args:
        cfg: hyperparameters.
        envs: a vector env with same-step autoreset (see the module docstring). Do not wrap it in
            ``RecordEpisodeStatistics``: :func:`train` does, for the episode returns it logs.
        policy: ``policy(obs, mask) -> (logits, value)``; trained in place.
        run_dir: where ``metrics.jsonl`` and ``checkpoints/`` go; None writes nothing.
        logger: receives every metrics dict (``.log(metrics, step)``); None: none.
        progress: show a tqdm bar with the mean return and the ``metrics_fn`` values.
        resume: continue from the newest checkpoint in ``run_dir`` (weights, optimizer, step counter,
            RNGs and, for sub-envs with ``state_dict``/``load_state_dict``, env state; others are
            re-seeded with a warning); starts fresh when there is none.
        metrics_fn: extra per-step metrics from the env's info (cost, route shares, reward terms).
        trust_pickles: let ``resume`` read a checkpoint of an older version, which is a pickle and
            runs code when loaded (:func:`rl_router.checkpoint.load_checkpoint`): only for runs you
            wrote yourself. Without it such a checkpoint is refused.
        budget_usage: what each step used of ``cfg.budget``'s resource; needed exactly when a
            budget is set.

    Returns:
        The last logged metrics plus ``global_step``, ``mean_return`` (over the last 20 episodes)
        and ``checkpoint`` (path of the final checkpoint, or None).
    """
    # ---------------------------------------------------------------- setup
    if envs.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
        raise ValueError(
            "train() needs a vector env with autoreset_mode=SAME_STEP; build it with "
            "rl_router.trainers.ppo.make_vec_env(env_fns)"
        )
    if not isinstance(envs.single_action_space, gym.spaces.Discrete):
        raise ValueError(f"PPO here needs a Discrete action space, got {envs.single_action_space}")
    if envs.num_envs != cfg.num_envs:
        raise ValueError(f"trainer.num_envs={cfg.num_envs} but the vector env has {envs.num_envs} sub-envs")
    if resume and run_dir is None:
        raise ValueError("resume=True needs the run_dir to resume from")
    if cfg.budget.enabled != (budget_usage is not None):
        raise ValueError(
            "trainer.budget is set but train() got no budget_usage to measure it"
            if cfg.budget.enabled
            else "train() got a budget_usage but trainer.budget is off: set cost_per_query or share"
        )
    envs = RecordEpisodeStatistics(envs)
    logger = logger or NullLogger()
    latest = ckpt.latest_checkpoint(run_dir) if resume else None
    if latest is not None:
        trim_jsonl(Path(run_dir) / METRICS, ckpt.checkpoint_step(latest))
    jsonl = JsonlLogger(Path(run_dir) / METRICS) if run_dir is not None else None
    n_envs, n_steps, n_actions = cfg.num_envs, cfg.num_steps, int(envs.single_action_space.n)
    obs_shape = envs.single_observation_space.shape
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.lr, eps=1e-5)

    obs = torch.zeros((n_steps, n_envs, *obs_shape))
    masks = torch.zeros((n_steps, n_envs, n_actions), dtype=torch.bool)
    actions = torch.zeros((n_steps, n_envs), dtype=torch.long)
    logprobs = torch.zeros((n_steps, n_envs))
    rewards = torch.zeros((n_steps, n_envs))
    dones = torch.zeros((n_steps, n_envs))
    values = torch.zeros((n_steps, n_envs))
    greedy = torch.zeros((n_steps, n_envs), dtype=torch.long)  # argmax actions: the budget's measure
    usage = np.zeros((n_steps, n_envs))  # what each step used of the budget
    lam = penalty = None
    if cfg.budget.enabled:
        lam = LagrangeMultiplier(cfg.budget.target, cfg.budget.lambda_lr, n_actions)
        penalty = BudgetPenalty(cfg.budget.target)

    if latest is None:
        seed_everything(cfg.seed)
        shuffle_rng = np.random.default_rng(cfg.seed)
        global_step, start_update, recent = 0, 1, []
        next_obs_np, info = envs.reset(seed=reset_seeds(cfg, cfg.seed))
        next_obs, next_mask = _obs(next_obs_np), action_mask(info, n_envs, n_actions)
    else:
        state = ckpt.load_checkpoint(latest, policy, optimizer, trust_pickles=trust_pickles)
        ckpt.set_rng_state(state["rng"])
        shuffle_rng = np.random.default_rng()
        shuffle_rng.bit_generator.state = state["shuffle_rng"]
        global_step, start_update, recent = state["global_step"], state["update"] + 1, state["recent_returns"]
        if lam is not None:
            if state.get("budget") is None:
                raise ValueError(f"{latest} was trained without trainer.budget: resume it without one")
            lam.load_state_dict(state["budget"])
        if state["env_state"] is not None:
            ckpt.restore_env_state(envs, state["env_state"])
            next_obs, next_mask = state["next_obs"], state["next_mask"]
            envs.episode_returns, envs.episode_lengths, envs.prev_dones = state["episode_stats"]
        else:
            why = ckpt.env_state_problem(envs) or "a pickled checkpoint of an older version"
            warnings.warn(f"the env state was not checkpointed ({why}); re-seeding the envs", stacklevel=2)
            next_obs_np, info = envs.reset(seed=reset_seeds(cfg, cfg.seed + global_step))
            next_obs, next_mask = _obs(next_obs_np), action_mask(info, n_envs, n_actions)

    recent_returns: deque[float] = deque(recent, maxlen=20)  # episode returns behind mean_return
    metrics: dict[str, Any] = {}
    saved: Path | None = latest
    bar = tqdm(total=cfg.num_updates * cfg.batch_size, initial=global_step, disable=not progress, unit="step")
    start_time, start_step = time.time(), global_step

    for update in range(start_update, cfg.num_updates + 1):
        if cfg.anneal_lr:
            optimizer.param_groups[0]["lr"] = cfg.lr * (1.0 - (update - 1.0) / cfg.num_updates)

        # ------------------------------------------------------------ rollout
        episode_returns, episode_lengths = [], []
        extra: dict[str, list[float]] = defaultdict(list)
        for t in range(n_steps):
            obs[t], masks[t] = next_obs, next_mask
            with torch.no_grad():
                logits, value = policy(next_obs, next_mask)
                dist = Categorical(logits=logits)
                action = dist.sample()
            actions[t], logprobs[t], values[t] = action, dist.log_prob(action), value
            greedy[t] = logits.argmax(-1)

            next_obs_np, reward, terminated, truncated, info = envs.step(action.numpy())
            global_step += n_envs
            reward = torch.as_tensor(reward, dtype=torch.float32)
            if lam is not None:  # the Lagrangian's reward: outcome - lam * usage / target
                usage[t] = budget_usage(info, action.numpy())
                term = torch.as_tensor(penalty([None] * n_envs, usage[t], lam.value), dtype=torch.float32)
                reward += term
                extra["train/reward/budget"].append(float(term.mean()))
            # A time limit is not a real end: bootstrap from the observation it cut off.
            cut = np.flatnonzero(truncated & ~terminated)
            if len(cut):
                final_obs = _obs(np.stack([info["final_obs"][i] for i in cut]))
                with torch.no_grad():
                    reward[cut] += cfg.gamma * policy(final_obs, None)[1]
            rewards[t], dones[t] = reward, torch.as_tensor(terminated | truncated, dtype=torch.float32)
            if cfg.group_size > 1:
                check_groups(obs[t], dones[t], cfg.group_size, t)
            next_obs, next_mask = _obs(next_obs_np), action_mask(info, n_envs, n_actions)

            if "_episode" in info:
                ended = info["_episode"]
                episode_returns += info["episode"]["r"][ended].tolist()
                episode_lengths += info["episode"]["l"][ended].tolist()
            if metrics_fn is not None:
                for key, value in metrics_fn(info).items():
                    extra[key].append(float(value))

        # ------------------------------------------------------------ budget
        if lam is not None:  # dual ascent on what this rollout spent; the next rollout pays the new lam
            lr_scale = optimizer.param_groups[0]["lr"] / cfg.lr  # lam's step anneals with the policy's
            budget_metrics = lam.step(usage, actions.numpy(), greedy.numpy(), lr_scale)

        # ------------------------------------------------------------ advantages
        with torch.no_grad():
            last_value = policy(next_obs, next_mask)[1]
        advantages, returns = compute_gae(rewards, values, dones, last_value, cfg.gamma, cfg.gae_lambda)
        if cfg.group_size > 1:  # the group's mean reward is the baseline; the critic still learns r
            advantages = group_advantages(rewards, cfg.group_size)

        # ------------------------------------------------------------ update
        b_obs = obs.reshape(cfg.batch_size, *obs_shape)
        b_masks = masks.reshape(cfg.batch_size, n_actions)
        b_actions, b_logprobs = actions.reshape(-1), logprobs.reshape(-1)
        b_adv, b_returns, b_values = advantages.reshape(-1), returns.reshape(-1), values.reshape(-1)
        stats: dict[str, list[float]] = defaultdict(list)
        for _ in range(cfg.update_epochs):
            order = torch.from_numpy(shuffle_rng.permutation(cfg.batch_size))
            for mb in order.split(cfg.minibatch_size):
                logits, new_value = policy(b_obs[mb], b_masks[mb])
                new_logp = Categorical(logits=logits).log_prob(b_actions[mb])
                entropy = entropy_masked(logits, b_masks[mb]).mean()
                adv = normalize_advantages(b_adv[mb]) if cfg.norm_adv else b_adv[mb]
                pg_loss, clip_frac, approx_kl = clipped_policy_loss(
                    new_logp, b_logprobs[mb], adv, cfg.clip_coef
                )
                v_clip = cfg.clip_coef if cfg.clip_vloss else None
                v_loss = clipped_value_loss(new_value, b_values[mb], b_returns[mb], v_clip)
                loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss

                optimizer.zero_grad()
                loss.backward()
                grad_norm = nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
                optimizer.step()
                for key, value in (
                    ("loss/policy", pg_loss),
                    ("loss/value", v_loss),
                    ("loss/entropy", entropy),
                    ("ppo/approx_kl", approx_kl),
                    ("ppo/clip_frac", clip_frac),
                    ("optim/grad_norm", grad_norm),
                ):
                    stats[key].append(value.item())

        # ------------------------------------------------------------ log
        recent_returns.extend(episode_returns)
        metrics = {f"train/{key}": float(np.mean(vals)) for key, vals in stats.items()}
        metrics["train/ppo/explained_variance"] = explained_variance(b_values, b_returns)
        metrics["train/optim/lr"] = optimizer.param_groups[0]["lr"]
        metrics["train/perf/sps"] = (global_step - start_step) / max(time.time() - start_time, 1e-9)
        if episode_returns:
            metrics["train/episode/return"] = float(np.mean(episode_returns))
            metrics["train/episode/length"] = float(np.mean(episode_lengths))
        metrics["train/episode/count"] = len(episode_returns)
        shares = np.bincount(actions.flatten().numpy(), minlength=n_actions) / cfg.batch_size
        metrics.update({f"rollout/action_share/{a}": float(s) for a, s in enumerate(shares)})
        metrics.update({key: float(np.mean(vals)) for key, vals in extra.items()})
        if lam is not None:
            metrics.update({f"train/budget/{key}": value for key, value in budget_metrics.items()})
        if jsonl is not None:
            jsonl.log(metrics, global_step)
        logger.log(metrics, global_step)
        bar.update(cfg.batch_size)
        postfix = {"return": float(np.mean(recent_returns)) if recent_returns else float("nan")}
        postfix.update({key.rsplit("/", 1)[-1]: float(np.mean(vals)) for key, vals in extra.items()})
        bar.set_postfix(postfix, refresh=False)

        # ------------------------------------------------------------ checkpoint
        every = cfg.checkpoint_every
        crossed = every > 0 and global_step // every > (global_step - cfg.batch_size) // every
        if run_dir is not None and (crossed or update == cfg.num_updates):
            trainer_state = {
                "global_step": global_step,
                "update": update,
                "rng": ckpt.rng_state(),
                "shuffle_rng": shuffle_rng.bit_generator.state,
                "env_state": ckpt.env_state(envs),
                "next_obs": next_obs,
                "next_mask": next_mask,
                "episode_stats": (envs.episode_returns, envs.episode_lengths, envs.prev_dones),
                "recent_returns": list(recent_returns),
                "budget": None if lam is None else lam.state_dict(),
                "config": asdict(cfg),
            }
            saved = ckpt.save_checkpoint(
                run_dir, global_step, policy, optimizer, trainer_state, cfg.keep_checkpoints
            )

    bar.close()
    if jsonl is not None:
        jsonl.finish()
    mean_return = float(np.mean(recent_returns)) if recent_returns else float("nan")
    return {**metrics, "global_step": global_step, "mean_return": mean_return, "checkpoint": saved}
