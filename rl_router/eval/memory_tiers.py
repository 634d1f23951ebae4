"""Evaluation of ``memory_tiers`` routers: F1 and dollars against fixed-tier baselines, and diversity.

:func:`evaluate` plays one greedy episode per row (a trained :class:`MemoryTierPolicy`, or a
:class:`FixedTiers` / :class:`UniformTiers` baseline) through the same rollout as training
(:func:`rl_router.rollout.episodes.play_episodes`) and :func:`summarize` reports:

* ``f1``: LoCoMo F1 in points (x100, as BudgetMem reports it), overall and per category;
* ``cost_usd``: module dollars per query (the cost the router is charged for), ``answer_cost_usd``
  the fixed answer model's;
* routing diversity over the rows: ``joint_entropy_bits`` (entropy of the joint 5-tier choice) and
  ``off_modal`` (share of queries whose choice differs from the most common one): BudgetMem found
  its choices nearly query-independent, which these two numbers expose.

The baselines are all-Low, all-Mid, all-High, random, and the best fixed tier per module
(:func:`best_fixed_per_module`: coordinate ascent from all-Mid on the rows it is given, validation
in the recipe). :func:`write_report` writes ``report.json``, ``report.md`` and ``pareto.png``.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.memory_modules import MODULES, TIERS
from rl_router.eval.pareto import pareto_frontier, plot_pareto
from rl_router.policies.memory_tiers import FixedTiers, UniformTiers
from rl_router.rollout.episodes import play_episodes

MakeEnvs = Callable[[Sequence[Mapping[str, Any]], int], list[Any]]  # (rows, n) -> n envs over the rows
Point = tuple[float, float]  # (cost_usd, f1)


def evaluate(
    make_envs: MakeEnvs,
    rows: Sequence[Mapping[str, Any]],
    policy: Any,
    greedy: bool = True,
    batch_size: int = 32,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One episode per row, ``batch_size`` at a time; returns each row's episode record, in order."""
    envs = make_envs(rows, min(batch_size, len(rows)))
    torch.manual_seed(seed)  # the random baseline samples
    records: list[dict[str, Any]] = []
    for start in range(0, len(rows), len(envs)):
        indices = list(range(start, min(start + len(envs), len(rows))))
        live = envs[: len(indices)]
        with torch.no_grad():
            batch = play_episodes(live, policy, greedy=greedy, options=[{"index": i} for i in indices])
        records += [dict(info["episode"]) for info in batch["infos"]]
    return records


def routing_diversity(choices: Sequence[Sequence[str]]) -> tuple[float, float]:
    """``(entropy of the joint choice in bits, share of rows off the modal choice)``.

    >>> routing_diversity([["low"] * 5, ["low"] * 5, ["high"] * 5, ["mid"] * 5])
    (1.5, 0.5)
    """
    counts = Counter(tuple(c) for c in choices)
    n = sum(counts.values())
    entropy = -sum(k / n * math.log2(k / n) for k in counts.values())
    return round(entropy + 0.0, 6), 1.0 - max(counts.values()) / n


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """F1 (points), dollars per query, per-category F1, tier shares per module, diversity."""
    f1 = np.asarray([r["f1"] for r in records], dtype=float)
    by_cat: dict[int, list[float]] = {}
    for r in records:
        by_cat.setdefault(int(r["category"]), []).append(float(r["f1"]))
    choices = [r["tiers"] for r in records]
    entropy, off_modal = routing_diversity(choices)
    shares = {
        m: {t: float(np.mean([c[i] == t for c in choices])) for t in TIERS} for i, m in enumerate(MODULES)
    }
    modal = Counter(tuple(c) for c in choices).most_common(1)[0][0]
    hits = sum(sum(r["cache_hits"].values()) for r in records)
    calls = sum(sum(r["calls"].values()) for r in records)
    return {
        "queries": len(records),
        "f1": 100.0 * float(f1.mean()),
        "f1_by_category": {str(c): 100.0 * float(np.mean(v)) for c, v in sorted(by_cat.items())},
        "cost_usd": float(np.mean([r["cost_usd"] for r in records])),
        "answer_cost_usd": float(np.mean([r["answer_cost_usd"] for r in records])),
        "tier_share": shares,
        "modal_choice": list(modal),
        "joint_entropy_bits": entropy,
        "off_modal": off_modal,
        "cache_hit_share": hits / max(calls, 1),
    }


def fixed_baselines() -> dict[str, Any]:
    """The query-independent baselines: all-Low, all-Mid, all-High (FixedTiers) and random."""
    n = len(MODULES)
    return {
        "all_low": FixedTiers([0] * n),
        "all_mid": FixedTiers([1] * n),
        "all_high": FixedTiers([2] * n),
        "random": UniformTiers(len(TIERS)),
    }


def best_fixed_per_module(
    score: Callable[[tuple[int, ...]], float], start: tuple[int, ...] | None = None
) -> tuple[tuple[int, ...], dict[tuple[int, ...], float]]:
    """One pass of coordinate ascent over modules: each module's best tier with the others held.

    Args:
        score: F1 of a fixed joint choice (on validation rows).
        start: The choice to start from (all-Mid).

    Returns:
        The best choice found and every choice scored on the way.

    >>> best_fixed_per_module(lambda c: -abs(c[0] - 2) - abs(c[3] - 0))[0]
    (2, 1, 1, 0, 1)
    """
    current = tuple(start) if start is not None else (1,) * len(MODULES)
    seen: dict[tuple[int, ...], float] = {current: score(current)}
    for m in range(len(current)):
        for tier in range(len(TIERS)):
            choice = current[:m] + (tier,) + current[m + 1 :]
            if choice not in seen:
                seen[choice] = score(choice)
        options = [current[:m] + (t,) + current[m + 1 :] for t in range(len(TIERS))]
        held = current
        current = max(options, key=lambda c: (seen[c], c == held))  # a tie keeps the current tier
    return current, seen


def matched_baselines(baselines: Mapping[str, Point], points: Mapping[str, Point]) -> list[str]:
    """Baselines some point matches or beats in F1 at no more than their cost.

    >>> matched_baselines({"low": (1.0, 10.0), "high": (5.0, 30.0)}, {"lam=0": (4.0, 31.0)})
    ['high']
    """
    return [
        name
        for name, (cost, f1) in baselines.items()
        if any(c <= cost * (1 + 1e-9) and q >= f1 for c, q in points.values())
    ]


def write_report(
    out_dir: str | Path,
    router: Mapping[str, Any],
    baselines: Mapping[str, Mapping[str, Any]],
    sweep: Mapping[str, Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``report.json``, ``report.md`` and ``pareto.png`` (F1 vs $ per query) in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    points = {"router": (router["cost_usd"], router["f1"])}
    points |= {name: (b["cost_usd"], b["f1"]) for name, b in baselines.items()}
    curve = None
    if sweep:
        curve = ([s["cost_usd"] for s in sweep.values()], [s["f1"] for s in sweep.values()])
    plot_pareto(
        points,
        curve,
        out / "pareto.png",
        title="memory_tiers: LoCoMo F1 vs module cost",
        xlabel="module cost per query (USD)",
        ylabel="F1 (points)",
        curve_label="lambda sweep",
    )
    report = {
        "router": dict(router),
        "baselines": {k: dict(v) for k, v in baselines.items()},
        "sweep": {k: dict(v) for k, v in (sweep or {}).items()},
        "frontier": pareto_frontier(points),
        **dict(extra or {}),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    lines = ["| run | F1 | $ / query | joint entropy (bits) | off modal |", "|---|---|---|---|---|"]
    for name, s in [("router", router), *baselines.items(), *(sweep or {}).items()]:
        diversity = f"{s['joint_entropy_bits']:.2f} | {s['off_modal']:.2f}"
        lines.append(f"| {name} | {s['f1']:.2f} | {s['cost_usd']:.3g} | {diversity} |")
    (out / "report.md").write_text("# memory_tiers evaluation\n\n" + "\n".join(lines) + "\n")
    return report


MEMORY_TIERS_ENV = "envs.memory_tiers.MemoryTiersEnv"
LOCOMO_SPLITS = "rl_router.data.locomo.locomo_splits"


def run_memory_tiers_eval(
    checkpoint: str | Path,
    out_dir: str | Path,
    split: str = "test",
    pool_cfg: Any = None,
    log_file: Path | None = None,
    trust_recorded_pool: bool = False,
) -> dict[str, Any]:
    """``rl-router eval`` of a memory_tiers run: its newest checkpoint against the baselines on ``split``.

    The recorded config is read as data: rows only through :func:`rl_router.data.locomo.locomo_splits`
    (another data target is refused), the env through the env factory's schemas, the policy as a
    :class:`MemoryTierPolicy` of the recorded sizes, the pool after :mod:`rl_router.trust`'s checks.
    """
    from omegaconf import OmegaConf

    from rl_router import checkpoint as ckpt
    from rl_router.data.locomo import locomo_splits
    from rl_router.policies.memory_tiers import MemoryTierPolicyConfig, build_memory_policy
    from rl_router.pool.build import build_pool_from
    from rl_router.rollout.episodes import EnvMaker
    from rl_router.run import load_run_config
    from rl_router.trust import UntrustedConfigError, check_recorded_pool

    run = load_run_config(checkpoint)
    where = f"{checkpoint} (recorded training config)"
    data = OmegaConf.to_container(run.data, resolve=True)
    if data.pop("_target_", None) != LOCOMO_SPLITS:
        raise UntrustedConfigError(f"{where}: memory_tiers reads its rows with {LOCOMO_SPLITS} only")
    parts = locomo_splits(**data)
    rows = [r for p in (parts if split == "all" else [getattr(parts, split)]) for r in p]
    policy_fields = OmegaConf.to_container(run.policy, resolve=True)
    policy_fields.pop("_target_", None)
    if pool_cfg is None:
        pool_cfg = OmegaConf.to_container(run.pool, resolve=False)
        if not trust_recorded_pool:
            check_recorded_pool(pool_cfg, "pool", where)
    latest = ckpt.latest_checkpoint(checkpoint)
    if latest is None:
        raise FileNotFoundError(f"{checkpoint} holds no checkpoint (checkpoints/step_*)")
    batch = int(run.trainer.get("batch_episodes", 32))
    with build_pool_from(pool_cfg, log_file) as pool:
        make = EnvMaker(run.env, pool)
        obs_dim = int(make.eval_envs(rows[:1], 1)[0].observation_space.shape[0])
        policy_cfg = MemoryTierPolicyConfig(**policy_fields)
        policy = build_memory_policy(policy_cfg, obs_dim, len(TIERS), len(MODULES))
        ckpt.load_policy_weights(latest, policy)
        router = summarize(evaluate(make.eval_envs, rows, policy.eval(), batch_size=batch))
        baselines = {
            name: summarize(evaluate(make.eval_envs, rows, p, greedy=name != "random", batch_size=batch))
            for name, p in fixed_baselines().items()
        }
    extra = {"checkpoint": Path(latest).name, "split": split, "lam": float(run.env.get("lam", 0.0))}
    return write_report(out_dir, router, baselines, extra=extra)
