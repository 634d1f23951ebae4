"""Benchmark memory_tiers: fixed-tier baselines, a lambda sweep of joint-PPO routers, frontier, diversity.

Launch: nice -n 10 .venv/bin/python scripts/bench_memory_tiers.py [hydra overrides ...]
        e.g. pool=memory_tiers_fake env.encoder=minilm data.per_conversation=8 --lams 0 0.1 0.5
        --report outputs/bench_memory_tiers/report.json   (print the last line of a finished run again)

Composes ``experiment=memory_tiers`` plus the overrides, then on the test conversations (8-9) scores
all-Low, all-Mid, all-High, random and the best fixed tier per module (coordinate ascent on the
validation conversations), trains one router per lambda (BudgetMem's grid by default) and scores
each greedily. Writes ``<out>/report.json``, ``report.md`` and ``pareto.png`` (F1 vs $ per query,
the sweep as a curve) and prints, last::

    all_low_f1=<> all_mid_f1=<> all_high_f1=<> router_f1=<> router_cost_ratio=<> frontier_points=<n>
    dominated_baselines=<k>/<m> routing_diversity=<x>

``router_*`` is the lambda=0 router (cost relative to all-High); ``dominated_baselines`` counts the
fixed-tier baselines some lambda point matches or beats in F1 at no more than their cost;
``routing_diversity`` is the share of test queries off the modal joint choice at ``--diversity-lam``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from envs.memory_modules import MODULES, TIERS
from rl_router.cli import conf_dir
from rl_router.config import typed
from rl_router.eval.memory_tiers import (
    best_fixed_per_module,
    evaluate,
    fixed_baselines,
    matched_baselines,
    summarize,
    write_report,
)
from rl_router.eval.pareto import pareto_frontier
from rl_router.policies.memory_tiers import FixedTiers, build_memory_policy
from rl_router.recipes.memory_tiers_ppo import EnvMaker
from rl_router.registry import register_configs
from rl_router.run import seed_everything
from rl_router.trainers import joint_ppo

LAMS = (0.0, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9)  # BudgetMem's grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="hydra overrides on top of experiment=memory_tiers")
    parser.add_argument("--lams", type=float, nargs="+", default=list(LAMS))
    parser.add_argument("--diversity-lam", type=float, default=0.3, help="lambda whose diversity is printed")
    parser.add_argument("--out", default="outputs/bench_memory_tiers")
    parser.add_argument("--report", help="print the last line again from this report.json, and stop")
    args = parser.parse_args()
    if args.report:
        print(summary_line(json.loads(Path(args.report).read_text()), args.diversity_lam))
        return
    start = time.time()
    out = Path(args.out)

    register_configs()
    with initialize_config_dir(str(conf_dir()), version_base=None):
        cfg = compose("config", overrides=["experiment=memory_tiers", "logger=none", *args.overrides])
    trainer_cfg: joint_ppo.JointPPOConfig = typed(cfg.trainer)
    train_rows, val_rows, test_rows = instantiate(cfg.data)
    pool = instantiate(cfg.pool)
    make = EnvMaker(cfg.env, pool)
    batch = trainer_cfg.batch_episodes
    print(f"rows: train {len(train_rows)} validation {len(val_rows)} test {len(test_rows)}", flush=True)

    def score(policy, rows, greedy=True):
        return summarize(evaluate(make.eval_envs, rows, policy, greedy=greedy, batch_size=batch))

    # ---------------------------------------------------------------- baselines
    baselines = {name: score(p, test_rows, greedy=name != "random") for name, p in fixed_baselines().items()}
    best, seen = best_fixed_per_module(lambda c: score(FixedTiers(list(c)), val_rows)["f1"])
    baselines["best_fixed"] = score(FixedTiers(list(best)), test_rows) | {"choice": [TIERS[t] for t in best]}
    for name, b in baselines.items():
        print(f"{name}: f1={b['f1']:.2f} cost={b['cost_usd']:.3g} ({time.time() - start:.0f}s)", flush=True)

    # ---------------------------------------------------------------- lambda sweep
    sweep = {}
    for lam in args.lams:
        seed_everything(trainer_cfg.seed)
        envs = make(train_rows, batch, lam=lam)
        obs_dim = int(envs[0].observation_space.shape[0])
        policy = build_memory_policy(typed(cfg.policy), obs_dim, len(TIERS), len(MODULES))
        joint_ppo.train(trainer_cfg, envs, policy, run_dir=out / f"lam_{lam:g}", progress=False)
        sweep[f"lam={lam:g}"] = score(policy.eval(), test_rows)
        s = sweep[f"lam={lam:g}"]
        print(
            f"lam={lam:g}: f1={s['f1']:.2f} cost={s['cost_usd']:.3g} off_modal={s['off_modal']:.2f} "
            f"entropy={s['joint_entropy_bits']:.2f} modal={s['modal_choice']} ({time.time() - start:.0f}s)",
            flush=True,
        )
    pool.close()

    # ---------------------------------------------------------------- report
    router = sweep.get("lam=0", next(iter(sweep.values())))
    fixed = {k: (b["cost_usd"], b["f1"]) for k, b in baselines.items() if k != "random"}
    matched = matched_baselines(fixed, {k: (s["cost_usd"], s["f1"]) for k, s in sweep.items()})
    extra = {"validation_scores": {str(k): v for k, v in seen.items()}, "matched_baselines": matched}
    report = write_report(out, router, baselines, sweep, extra=extra)
    print(f"report: {out}/report.md, {out}/pareto.png; {time.time() - start:.0f}s")
    print(summary_line(report, args.diversity_lam))


def summary_line(report: dict, diversity_lam: float) -> str:
    """The last line, from a report.json this script wrote."""
    baselines, sweep = report["baselines"], report["sweep"]
    router = sweep.get("lam=0", next(iter(sweep.values())))
    fixed = {k: (b["cost_usd"], b["f1"]) for k, b in baselines.items() if k != "random"}
    points = {k: (s["cost_usd"], s["f1"]) for k, s in sweep.items()}
    matched = matched_baselines(fixed, points)
    frontier = [n for n in pareto_frontier(points | fixed) if n in points]
    diversity = sweep.get(f"lam={diversity_lam:g}", router)["off_modal"]
    high = baselines["all_high"]
    return (
        f"all_low_f1={baselines['all_low']['f1']:.2f} all_mid_f1={baselines['all_mid']['f1']:.2f} "
        f"all_high_f1={high['f1']:.2f} router_f1={router['f1']:.2f} "
        f"router_cost_ratio={router['cost_usd'] / high['cost_usd']:.3f} frontier_points={len(frontier)} "
        f"dominated_baselines={len(matched)}/{len(fixed)} routing_diversity={diversity:.2f}"
    )


if __name__ == "__main__":
    main()
