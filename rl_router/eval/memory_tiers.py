"""Evaluation of ``memory_tiers`` routers: F1 and dollars against fixed-tier baselines, and diversity.

:func:`evaluate` plays one greedy episode per row (a trained :class:`MemoryTierPolicy`, or a
:class:`FixedTiers` / :class:`UniformTiers` baseline) through the same rollout as training
(:func:`rl_router.rollout.episodes.play_episodes`) and :func:`summarize` reports:

* ``f1``: LoCoMo F1 in points (x100, as BudgetMem reports it), overall and per category;
* ``cost_usd`` (also ``dollars_per_query``): module dollars per query (the cost the router is
  charged for), ``answer_cost_usd`` the fixed answer model's;
* ``route_share``: the share of module decisions at each tier (what a share target of
  ``rl-router calibrate`` sets), ``tier_share`` the same per module;
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
    cost = float(np.mean([r["cost_usd"] for r in records]))
    return {
        "queries": len(records),
        "f1": 100.0 * float(f1.mean()),
        "f1_by_category": {str(c): 100.0 * float(np.mean(v)) for c, v in sorted(by_cat.items())},
        "cost_usd": cost,
        "dollars_per_query": cost,  # the name a calibration's cost target is read against
        "route_share": {t: float(np.mean([c.count(t) / len(c) for c in choices])) for t in TIERS},
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


def dollar_price(baselines: Mapping[str, Point]) -> float:
    """F1 points one dollar per query is worth: the slope from all-Low to the best fixed baseline.

    ``baselines`` maps names (``all_low`` among them) to ``(cost_usd, f1)``, on validation rows. A
    lambda point is then read as the price ``lam * slope`` (:func:`selection_score`): at ``lam = 1``
    all-Low and the best fixed baseline score alike. 0 when no baseline beats all-Low.

    >>> dollar_price({"all_low": (1.0, 3.0), "all_mid": (3.0, 7.0), "all_high": (9.0, 6.0)})
    2.0
    """
    low_cost, low_f1 = baselines["all_low"]
    cost, f1 = max(baselines.values(), key=lambda p: (p[1], -p[0]))
    return max(f1 - low_f1, 0.0) / (cost - low_cost) if cost > low_cost else 0.0


def selection_score(point: Point, lam: float, price: float) -> float:
    """What a lambda run's checkpoints are chosen by on validation: ``F1 - lam * price * dollars``.

    >>> selection_score((2.0, 7.0), lam=0.5, price=2.0)
    5.0
    """
    cost, f1 = point
    return f1 - lam * price * cost


def diversity_point(sweep: Mapping[str, Mapping[str, Any]], router: Mapping[str, Any], within: float = 2.0):
    """``(name, summary)`` of the most diverse sweep point whose F1 is within ``within`` of ``router``'s.

    The issue's diversity target: some lambda whose F1 is within 2 points of the lambda=0 router;
    the share off the modal choice is reported there (ties: the first in sweep order).

    >>> sweep = {"lam=0": {"f1": 7.0, "off_modal": 0.1}, "lam=0.3": {"f1": 5.5, "off_modal": 0.4},
    ...          "lam=0.5": {"f1": 4.0, "off_modal": 0.6}}
    >>> diversity_point(sweep, sweep["lam=0"])[0]
    'lam=0.3'
    """
    near = {k: s for k, s in sweep.items() if s["f1"] >= router["f1"] - within - 1e-9}
    return max(near.items(), key=lambda kv: kv[1]["off_modal"])


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
    if "target" in router:  # a calibrated router: what it reached next to what it was set to
        shares = ", ".join(f"{t} {v:.3f}" for t, v in router["route_share"].items())
        lines.append(
            f"\nOperating point (calibration.json): target {json.dumps(router['target'])}; reached "
            f"${router['dollars_per_query']:.4g} per query, route share {shares}"
        )
    (out / "report.md").write_text("# memory_tiers evaluation\n\n" + "\n".join(lines) + "\n")
    return report


LOCOMO_SPLITS = "rl_router.data.locomo.locomo_splits"


def locomo_rows(data: Mapping[str, Any], split: str, where: str) -> list[dict[str, Any]]:
    """The LoCoMo rows of ``split`` (``all``: every split) of a recorded data config, read only
    through :func:`rl_router.data.locomo.locomo_splits` (another data target is refused)."""
    from rl_router.data.locomo import locomo_splits
    from rl_router.trust import UntrustedConfigError

    fields = dict(data)
    if fields.pop("_target_", None) != LOCOMO_SPLITS:
        raise UntrustedConfigError(f"{where}: memory_tiers reads its rows with {LOCOMO_SPLITS} only")
    parts = locomo_splits(**fields)
    return [dict(r) for p in (parts if split == "all" else [getattr(parts, split)]) for r in p]


def run_memory_tiers_eval(
    checkpoint: str | Path,
    out_dir: str | Path,
    split: str = "test",
    pool_cfg: Any = None,
    log_file: Path | None = None,
    trust_recorded_pool: bool = False,
    calibration: bool = True,
) -> dict[str, Any]:
    """``rl-router eval`` of a memory_tiers run: its newest checkpoint against the baselines on ``split``.

    The recorded config is read as data: rows only through :func:`locomo_rows`, the env through the
    env factory's schemas, the policy as a :class:`MemoryTierPolicy` of the recorded sizes
    (:func:`rl_router.routers.load.load_router`), the pool after :mod:`rl_router.trust`'s checks. A
    ``calibration.json`` of the run (``rl-router calibrate``) is applied unless ``calibration`` is
    False; the report's router then holds ``target`` next to what it reached (``dollars_per_query``,
    ``route_share``).
    """
    from rl_router.pool.build import build_pool_from
    from rl_router.rollout.episodes import EnvMaker
    from rl_router.routers.load import load_router
    from rl_router.trust import check_recorded_pool

    router = load_router(checkpoint)
    where = f"{checkpoint} (recorded training config)"
    rows = locomo_rows(router.training["data"], split, where)
    if pool_cfg is None:
        pool_cfg = router.training["pool"]
        if not trust_recorded_pool:
            check_recorded_pool(pool_cfg, "pool", where)
    if not calibration:
        router.calibration = None
    batch = int(router.training["trainer"].get("batch_episodes", 32))
    with build_pool_from(pool_cfg, log_file) as pool:
        make = EnvMaker(router.training["env"], pool)
        scored = summarize(evaluate(make.eval_envs, rows, router.tier_policy(), batch_size=batch))
        baselines = {
            name: summarize(evaluate(make.eval_envs, rows, p, greedy=name != "random", batch_size=batch))
            for name, p in fixed_baselines().items()
        }
    if router.calibration is not None:
        fit = router.calibration
        scored |= {
            "target": fit.target,
            "calibration": {"fitted_on": fit.fitted_on, "achieved": fit.achieved},
        }
    extra = {
        "checkpoint": router.checkpoint.name,
        "split": split,
        "lam": float(router.training["env"].get("lam", 0.0)),
    }
    return write_report(out_dir, scored, baselines, extra=extra)
