"""Whole fixed-horizon episodes of many envs played together: the rollout of joint-ratio PPO and of
``memory_tiers`` evaluation alike (:func:`play_episodes`).

Every decision step of the batch goes through the env class's ``step_batch`` (one pool call per step
for all live episodes), so training, evaluation and the baselines share one code path.
:class:`EnvMaker` builds the ``memory_tiers`` envs they play, for the recipe, ``rl-router eval`` and
the bench alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.distributions import Categorical

from envs.memory_modules import ModuleRunner
from envs.memory_tiers import MemoryTiersConfig, MemoryTiersEnv, make_encoder
from rewards.cost import PercentileCostNormalizer, ScaleMatcher
from rl_router.config import construct
from rl_router.rollout.env_factory import env_schema


def _mask(info: dict[str, Any], n: int) -> np.ndarray:
    return np.asarray(info.get("action_mask", np.ones(n)), dtype=bool)


def play_episodes(
    envs: Sequence[Any], policy: Any, greedy: bool = False, options: Sequence[dict | None] | None = None
) -> dict[str, Any]:
    """Play one episode in every env together; the rollout of :func:`train`, and greedy evaluation.

    Args:
        envs: Envs of one class with ``step_batch`` and a fixed horizon.
        policy: ``policy(obs, mask) -> (logits, value)``.
        greedy: Take the argmax tier instead of sampling.
        options: Per-env ``reset`` options (e.g. ``{"index": i}``); None: each env's next row.

    Returns:
        ``obs [H, N, D]``, ``masks [H, N, A]``, ``actions [H, N]``, ``logprobs [H, N]``, ``values
        [N]`` (of the first state), ``rewards [N]`` (the episodes' returns) and ``infos`` (each env's
        last info).
    """
    n, num_actions = len(envs), int(envs[0].action_space.n)
    step_batch = type(envs[0]).step_batch
    first = [env.reset(options=(options[i] if options else None)) for i, env in enumerate(envs)]
    obs_now = np.stack([o for o, _ in first])
    mask_now = np.stack([_mask(info, num_actions) for _, info in first])
    obs, masks, actions, logprobs = [], [], [], []
    values = None
    returns = np.zeros(n)
    done = np.zeros(n, dtype=bool)
    infos: list[dict[str, Any]] = [{} for _ in envs]
    while not done.all():
        if done.any():
            raise ValueError(
                "episodes of one rollout ended at different steps: the trainer needs a fixed horizon"
            )
        o, m = torch.as_tensor(obs_now, dtype=torch.float32), torch.as_tensor(mask_now)
        with torch.no_grad():
            logits, value = policy(o, m)
        dist = Categorical(logits=logits)
        action = logits.argmax(-1) if greedy else dist.sample()
        if values is None:
            values = value
        obs.append(o)
        masks.append(m)
        actions.append(action)
        logprobs.append(dist.log_prob(action))
        steps = step_batch(list(envs), action.tolist())
        obs_now = np.stack([s[0] for s in steps])
        mask_now = np.stack([_mask(s[4], num_actions) for s in steps])
        for i, (_, reward, terminated, truncated, info) in enumerate(steps):
            returns[i] += reward
            done[i] = terminated or truncated
            infos[i] = info
    return {
        "obs": torch.stack(obs),
        "masks": torch.stack(masks),
        "actions": torch.stack(actions),
        "logprobs": torch.stack(logprobs),
        "values": values,
        "rewards": torch.as_tensor(returns, dtype=torch.float32),
        "infos": infos,
    }


class EnvMaker:
    """Builds envs of one config that share the pool, the cost window, alpha, the encoder and runner.

    Args:
        env_cfg: The env config (checked against ``ENV_SCHEMAS`` by :func:`env_schema`).
        pool: The candidate pool.
    """

    def __init__(self, env_cfg: Any, pool: Any) -> None:
        self.cfg: MemoryTiersConfig = env_schema(env_cfg)
        self.pool = pool
        self.runner = ModuleRunner(pool, make_encoder(self.cfg.encoder))

    def __call__(
        self,
        rows: Sequence[Mapping[str, Any]],
        n: int,
        *,
        lam: float | None = None,
        shuffle: bool | None = None,
    ) -> list[MemoryTiersEnv]:
        cfg = self.cfg
        if lam is not None or shuffle is not None:
            cfg = dataclasses.replace(
                cfg, lam=cfg.lam if lam is None else lam, shuffle=cfg.shuffle if shuffle is None else shuffle
            )
        normalizer = PercentileCostNormalizer(window=cfg.cost_window)
        scale = ScaleMatcher(window=cfg.cost_window)
        runtime = {"pool": self.pool, "normalizer": normalizer, "scale": scale, "runner": self.runner}
        return [construct(cfg, examples=rows, **runtime) for _ in range(n)]

    def eval_envs(self, rows: Sequence[Mapping[str, Any]], n: int) -> list[MemoryTiersEnv]:
        """Envs for evaluation: dataset order (rows are picked by index anyway)."""
        return self(rows, n, shuffle=False)
