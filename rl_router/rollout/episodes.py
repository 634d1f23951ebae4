"""Whole fixed-horizon episodes of many envs played together: the rollout of joint-ratio PPO and of
``memory_tiers`` evaluation alike (:func:`play_episodes`).

Every decision step of the batch goes through the env class's ``step_batch`` (one pool call per step
for all live episodes), so training, evaluation and the baselines share one code path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.distributions import Categorical


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
