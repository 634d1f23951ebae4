"""Play ``agent_steps`` episodes with any tier policy, every live episode's step in one pool call.

Boundary rollouts (always-small, always-large), the baselines (random, First-Large-k) and a trained
compact router all play through :func:`play_episodes`: ``num_envs`` envs in lockstep, each taking
the next task row when its episode ends, stepped together through the env class's ``step_batch``
hook (:func:`rl_router.rollout.driver.step_envs`). A policy is ``policy(obs, info, env) -> action``.

>>> always(1)(None, {"action_mask": [True, True]}, None)
1
>>> first_large(2, small=0, large=1)(None, {"action_mask": [True, True]}, type("E", (), {"steps": 3})())
0
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rl_router.rollout.driver import step_envs

Policy = Callable[[Any, Mapping[str, Any], Any], int]


def _allowed(tier: int, info: Mapping[str, Any]) -> int:
    """``tier`` if the budget allows it, else the first allowed tier (pool order: cheapest first)."""
    mask = np.asarray(info.get("action_mask", []), dtype=bool)
    if mask.size == 0 or mask[tier]:
        return tier
    return int(np.flatnonzero(mask)[0])


def always(tier: int) -> Policy:
    """A boundary policy: always ``tier`` (when the budget allows)."""
    return lambda obs, info, env: _allowed(tier, info)


def first_large(k: int, small: int = 0, large: int = 1) -> Policy:
    """The First-Large-k heuristic: the first ``k`` steps large, then small."""
    return lambda obs, info, env: _allowed(large if env.steps < k else small, info)


def random_policy(seed: int = 0, p_large: float = 0.5, small: int = 0, large: int = 1) -> Policy:
    """Large with probability ``p_large`` at every step, drawn from (seed, task id, step): the same
    choices however many episodes play together."""

    def act(obs: Any, info: Mapping[str, Any], env: Any) -> int:
        key = [seed, zlib.crc32(str(env.row.get("id")).encode()), int(env.steps)]
        return _allowed(large if np.random.default_rng(key).random() < p_large else small, info)

    return act


def play_episodes(
    make_env: Callable[[], Any],
    rows: Sequence[Mapping[str, Any]],
    policy: Policy,
    num_envs: int = 8,
    repeats: int = 1,
    seed: int = 0,
    envs: Sequence[Any] | None = None,
) -> list[dict[str, Any]]:
    """One episode per (row, repeat), ``num_envs`` at a time; returns the episode records in row order.

    Args:
        make_env: Builds an env over ``rows`` (e.g. ``lambda: env_factory(cfg, pool=pool)(rows)``).
        rows: The task rows; episode ``j`` of repeat ``r`` plays ``rows[j]``.
        policy: ``policy(obs, info, env) -> action``.
        num_envs: Episodes played together (one JVM each).
        repeats: Episodes per row (K of the boundary rollouts).
        seed: Base seed of each episode's reset (the budget draw).
        envs: Envs over ``rows`` to play on (reused across calls, left open); None: ``num_envs`` new
            ones from ``make_env``, closed at the end.

    Returns:
        ``info["trajectory"]`` of every episode, plus ``repeat``; ordered by repeat, then row.
    """
    jobs = [(r, j) for r in range(repeats) for j in range(len(rows))]
    owned = envs is None
    envs = [make_env() for _ in range(min(num_envs, len(jobs)))] if envs is None else list(envs)
    records: dict[tuple[int, int], dict[str, Any]] = {}
    live: dict[int, tuple[tuple[int, int], Any, Mapping[str, Any]]] = {}
    queue = iter(jobs)
    try:

        def start(slot: int) -> None:
            job = next(queue, None)
            if job is None:
                return
            r, j = job
            obs, info = envs[slot].reset(seed=seed + r * len(rows) + j, options={"index": j})
            live[slot] = (job, obs, info)

        for slot in range(len(envs)):
            start(slot)
        while live:
            slots = sorted(live)
            actions = [policy(live[s][1], live[s][2], envs[s]) for s in slots]
            steps = step_envs([envs[s] for s in slots], actions)
            for s, (obs, _, terminated, truncated, info) in zip(slots, steps, strict=True):
                job = live[s][0]
                if terminated or truncated:
                    records[job] = {**info["trajectory"], "repeat": job[0]}
                    del live[s]
                    start(s)
                else:
                    live[s] = (job, obs, info)
    finally:
        for env in envs if owned else ():
            env.close()
    return [records[job] for job in jobs]


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Success rate, mean dollars, mean steps, large-call share and over-budget count of episodes.

    >>> summarize([{"success": True, "cost_usd": 2.0, "steps": 2, "tiers": ["s", "l"], "over_budget": False,
    ...             "invalid_actions": 1}])["success"]
    1.0
    """
    if not records:
        return {"episodes": 0}
    calls = [t for r in records for t in r["tiers"]]
    names = sorted(set(calls))
    return {
        "episodes": len(records),
        "success": float(np.mean([r["success"] for r in records])),
        "cost_usd": float(np.mean([r["cost_usd"] for r in records])),
        "steps": float(np.mean([r["steps"] for r in records])),
        "invalid_share": float(sum(r["invalid_actions"] for r in records) / max(len(calls), 1)),
        "over_budget": int(sum(bool(r["over_budget"]) for r in records)),
        **{f"share/{n}": calls.count(n) / len(calls) for n in names},
    }
