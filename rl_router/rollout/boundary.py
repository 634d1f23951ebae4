"""Boundary-guided training data for ``agent_steps``: the difficulty taxonomy and the warm-start sample.

1. :func:`boundary_rollouts`: always-small and always-large play every training task K times.
2. :func:`taxonomy`: per task, each boundary policy's success rate and mean cost, and its stratum
   (Easy / Hard / Intractable, :func:`rewards.boundary.difficulty`). The recipe saves it as
   ``boundary.json`` / ``boundary.md`` in the run and adds ``success_small``, ``success_large``,
   ``cost_small``, ``cost_large`` to the training rows (what the env's BoPO reward reads).
3. :func:`sft_sample`: a stratified sample of the cheapest successful trajectories: always-small's
   on Easy tasks, the cheapest successful one (here always-large's) on Hard tasks, and the cheap
   (always-small) one on Intractable tasks, where spending cannot buy success.
4. :func:`tier_demonstrations`: replays those tier sequences to collect ``(observation, mask, tier)``
   for behaviour cloning (greedy candidates and the response cache make the replay exact and cheap).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewards.boundary import DIFFICULTIES, EASY, HARD, difficulty
from rl_router.rollout.agent_episodes import always, play_episodes

log = logging.getLogger(__name__)
BOUNDARY_JSON, BOUNDARY_MD, SFT_JSONL = "boundary.json", "boundary.md", "sft.jsonl"


def boundary_rollouts(
    make_env: Callable[[], Any],
    rows: Sequence[Mapping[str, Any]],
    num_tiers: int,
    repeats: int,
    num_envs: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Records of always-small (tier 0) and always-large (the last tier), ``repeats`` per row."""
    small = play_episodes(make_env, rows, always(0), num_envs, repeats)
    large = play_episodes(make_env, rows, always(num_tiers - 1), num_envs, repeats)
    return small, large


def boundary_stage(
    make_env: Callable[[], Any],
    rows: Sequence[Mapping[str, Any]],
    num_tiers: int,
    repeats: int,
    threshold: float,
    num_envs: int,
    run_dir: Path,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """A recipe's boundary step: the boundary rollouts, the taxonomy saved in the run
    (:data:`BOUNDARY_JSON`, :data:`BOUNDARY_MD`) and logged, and the training rows with their boundary.

    Returns:
        ``(rows with boundary, taxonomy table, always-small records, always-large records)``.
    """
    small, large = boundary_rollouts(make_env, rows, num_tiers, repeats, num_envs)
    table = taxonomy(rows, small, large, threshold)
    (run_dir / BOUNDARY_JSON).write_text(
        json.dumps({"table": table, "small": small, "large": large}, indent=1)
    )
    (run_dir / BOUNDARY_MD).write_text(taxonomy_markdown(table))
    counts = {d: sum(t["difficulty"] == d for t in table) for d in DIFFICULTIES}
    log.info("boundary taxonomy of %d training tasks: %s", len(table), counts)
    return with_boundary(rows, table), table, small, large


def taxonomy(
    rows: Sequence[Mapping[str, Any]],
    small: Sequence[Mapping[str, Any]],
    large: Sequence[Mapping[str, Any]],
    threshold: float = 0.5,
) -> list[dict[str, Any]]:
    """One entry per row: ``id``, ``game``, ``success_small/large``, ``cost_small/large``, ``difficulty``.

    >>> rows = [{"id": "a", "game": "coin"}]
    >>> s = [{"id": "a", "success": False, "cost_usd": 1.0}]
    >>> l = [{"id": "a", "success": True, "cost_usd": 4.0}]
    >>> taxonomy(rows, s, l)[0]["difficulty"]
    'hard'
    """
    table = []
    for row in rows:
        mine_s = [r for r in small if r["id"] == row["id"]]
        mine_l = [r for r in large if r["id"] == row["id"]]
        s_ok, l_ok = [float(r["success"]) for r in mine_s], [float(r["success"]) for r in mine_l]
        table.append(
            {
                "id": row["id"],
                "game": row.get("game"),
                "success_small": float(np.mean(s_ok)),
                "success_large": float(np.mean(l_ok)),
                "cost_small": float(np.mean([r["cost_usd"] for r in mine_s])),
                "cost_large": float(np.mean([r["cost_usd"] for r in mine_l])),
                "difficulty": difficulty(s_ok, l_ok, threshold),
            }
        )
    return table


def with_boundary(
    rows: Sequence[Mapping[str, Any]], table: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The rows with their boundary keys (what :class:`envs.agent_steps.AgentStepsEnv` scores against)."""
    by_id = {t["id"]: t for t in table}
    keys = ("success_small", "success_large", "cost_small", "cost_large", "difficulty")
    return [{**row, **{k: by_id[row["id"]][k] for k in keys}} for row in rows]


def taxonomy_markdown(table: Sequence[Mapping[str, Any]]) -> str:
    """``boundary.md``: strata counts per game, then one line per task."""
    games = list(dict.fromkeys(t["game"] for t in table))
    lines = ["# Boundary taxonomy (always-small vs always-large, training tasks)", ""]
    lines += ["| game | " + " | ".join(DIFFICULTIES) + " | small sr | large sr |", "|---" * 6 + "|"]
    for game in games:
        mine = [t for t in table if t["game"] == game]
        counts = [sum(t["difficulty"] == d for t in mine) for d in DIFFICULTIES]
        s = np.mean([t["success_small"] for t in mine])
        lg = np.mean([t["success_large"] for t in mine])
        lines.append(f"| {game} | " + " | ".join(map(str, counts)) + f" | {s:.2f} | {lg:.2f} |")
    lines += ["", "| task | difficulty | small sr | large sr | C_S | C_L |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {t['id']} | {t['difficulty']} | {t['success_small']:.2f} | {t['success_large']:.2f} | "
        f"{t['cost_small']:.3g} | {t['cost_large']:.3g} |"
        for t in table
    ]
    return "\n".join(lines) + "\n"


def sft_sample(
    table: Sequence[Mapping[str, Any]],
    small: Sequence[Mapping[str, Any]],
    large: Sequence[Mapping[str, Any]],
    per_stratum: int,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Up to ``per_stratum`` tasks per stratum, each with its cheapest fitting trajectory's tiers.

    >>> t = [{"id": "a", "difficulty": "hard"}]
    >>> s = [{"id": "a", "success": False, "cost_usd": 1.0, "tiers": ["s"]}]
    >>> l = [{"id": "a", "success": True, "cost_usd": 4.0, "tiers": ["l", "l"]}]
    >>> sft_sample(t, s, l, 4, np.random.default_rng(0))[0]["tiers"]
    ['l', 'l']
    """
    out = []
    for stratum in DIFFICULTIES:
        tasks = [t for t in table if t["difficulty"] == stratum]
        chosen = rng.permutation(len(tasks))[:per_stratum]
        for i in sorted(chosen):
            task = tasks[int(i)]
            pool = [r for r in (*small, *large) if r["id"] == task["id"]]
            if stratum in (EASY, HARD):
                pool = [r for r in pool if r["success"]]
            else:
                pool = [r for r in small if r["id"] == task["id"]]
            best = min(pool, key=lambda r: (r["cost_usd"], r.get("steps", 0)))
            out.append({"id": task["id"], "difficulty": stratum, "tiers": list(best["tiers"])})
    return out


def tier_demonstrations(
    make_env: Callable[[], Any],
    rows: Sequence[Mapping[str, Any]],
    sample: Sequence[Mapping[str, Any]],
    model_names: Sequence[str],
    num_envs: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replay each sampled tier sequence; return ``obs [N, D]``, ``masks [N, A]`` (bool), ``tiers [N]``."""
    by_id = {row["id"]: row for row in rows}
    chosen = [by_id[s["id"]] for s in sample]
    plans = {s["id"]: [model_names.index(t) for t in s["tiers"]] for s in sample}
    seen: list[tuple[np.ndarray, np.ndarray, int]] = []

    def replay(obs: Any, info: Mapping[str, Any], env: Any) -> int:
        plan = plans[env.row["id"]]
        tier = plan[min(env.steps, len(plan) - 1)] if plan else 0
        mask = np.asarray(info["action_mask"], dtype=bool)
        tier = tier if mask[tier] else int(np.flatnonzero(mask)[0])
        seen.append((np.asarray(obs, dtype=np.float32), mask, tier))
        return tier

    if chosen:
        play_episodes(make_env, chosen, replay, num_envs)
    if not seen:
        return np.zeros((0, 0), np.float32), np.zeros((0, len(model_names)), bool), np.zeros(0, np.int64)
    obs, masks, tiers = zip(*seen, strict=True)
    return np.stack(obs), np.stack(masks), np.asarray(tiers, dtype=np.int64)
