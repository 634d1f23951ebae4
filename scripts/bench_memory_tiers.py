"""Benchmark memory_tiers: fixed-tier baselines, a lambda sweep of joint-PPO routers, frontier, diversity.

Launch: nice -n 10 .venv/bin/python scripts/bench_memory_tiers.py [hydra overrides ...]
        e.g. pool=memory_tiers_fake env.encoder=minilm data.per_conversation=8 --lams 0 0.1 0.5
        --report outputs/bench_memory_tiers/report.json   (print the last line of a finished run again)

Composes ``experiment=memory_tiers`` plus the overrides, then on the test conversations (8-9) scores
all-Low, all-Mid, all-High, random and the best fixed tier per module (coordinate ascent on the
validation conversations), trains one router per lambda (BudgetMem's grid by default) and scores
each greedily. Each lambda's training length is chosen on validation: it trains
``trainer.total_episodes`` in stages of ``--select-every`` episodes and keeps the stage whose
validation point scores best by ``F1 - lam * price * dollars`` (``price``: F1 per dollar from
all-Low to the best fixed baseline, on validation; :func:`~rl_router.eval.memory_tiers.dollar_price`).
Writes ``<out>/report.json``, ``report.md`` and ``pareto.png`` (F1 vs $ per query, the sweep as a
curve) and prints, last::

    all_low_f1=<> all_mid_f1=<> all_high_f1=<> router_f1=<> router_cost_ratio=<> frontier_points=<n>
    dominated_baselines=<k>/<m> routing_diversity=<x>

``router_*`` is the lambda=0 router (cost relative to all-High); ``dominated_baselines`` counts the
fixed-tier baselines some lambda point matches or beats in F1 at no more than their cost;
``routing_diversity`` is the share of test queries off the modal joint choice at the most diverse
lambda whose F1 is within 2 points of the lambda=0 router's (the line before names it).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import shutil
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from envs.memory_modules import MODULES, TIERS
from rl_router.cli import conf_dir
from rl_router.config import typed
from rl_router.eval.memory_tiers import (
    best_fixed_per_module,
    diversity_point,
    dollar_price,
    evaluate,
    fixed_baselines,
    matched_baselines,
    selection_score,
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
    parser.add_argument("--select-every", type=int, default=256, help="episodes per stage chosen among")
    parser.add_argument("--out", default="outputs/bench_memory_tiers")
    parser.add_argument("--report", help="print the last line again from this report.json, and stop")
    args = parser.parse_args()
    if args.report:
        print(summary_line(json.loads(Path(args.report).read_text())))
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
    validation = {k: score(p, val_rows) for k, p in fixed_baselines().items() if k != "random"}
    price = dollar_price({k: (v["cost_usd"], v["f1"]) for k, v in validation.items()})
    print(f"validation price of a dollar: {price:.4g} F1 points", flush=True)
    stages = range(args.select_every, trainer_cfg.total_episodes + 1, args.select_every)
    sweep = {}
    for lam in args.lams:
        shutil.rmtree(out / f"lam_{lam:g}", ignore_errors=True)  # a stage resumes the newest checkpoint
        seed_everything(trainer_cfg.seed)
        envs = make(train_rows, batch, lam=lam)
        obs_dim = int(envs[0].observation_space.shape[0])
        policy = build_memory_policy(typed(cfg.policy), obs_dim, len(TIERS), len(MODULES))
        best, chosen = None, {}
        for stage, total in enumerate(stages):  # one run, resumed from its checkpoint at each stage
            stage_cfg = dataclasses.replace(trainer_cfg, total_episodes=total)
            joint_ppo.train(
                stage_cfg, envs, policy, run_dir=out / f"lam_{lam:g}", progress=False, resume=stage > 0
            )
            val = score(policy.eval(), val_rows)
            value = (selection_score((val["cost_usd"], val["f1"]), lam, price), -lam * val["cost_usd"])
            if best is None or value > best:  # equal scores: the cheaper at lam > 0, else the earlier
                best, chosen = (
                    value,
                    {"state": copy.deepcopy(policy.state_dict()), "episodes": total, "val": val},
                )
            policy.train()
        policy.load_state_dict(chosen["state"])
        s = score(policy.eval(), test_rows)
        val = chosen["val"]
        sweep[f"lam={lam:g}"] = s | {
            "episodes": chosen["episodes"],
            "validation": [val["cost_usd"], val["f1"]],
        }
        print(
            f"lam={lam:g}: f1={s['f1']:.2f} cost={s['cost_usd']:.3g} off_modal={s['off_modal']:.2f} "
            f"entropy={s['joint_entropy_bits']:.2f} modal={s['modal_choice']} episodes={chosen['episodes']} "
            f"(validation f1={val['f1']:.2f} cost={val['cost_usd']:.3g}; {time.time() - start:.0f}s)",
            flush=True,
        )
    pool.close()

    # ---------------------------------------------------------------- report
    router = sweep.get("lam=0", next(iter(sweep.values())))
    fixed = {k: (b["cost_usd"], b["f1"]) for k, b in baselines.items() if k != "random"}
    matched = matched_baselines(fixed, {k: (s["cost_usd"], s["f1"]) for k, s in sweep.items()})
    extra = {
        "validation_scores": {str(k): v for k, v in seen.items()},
        "matched_baselines": matched,
        "dollar_price": price,
    }
    report = write_report(out, router, baselines, sweep, extra=extra)
    print(f"report: {out}/report.md, {out}/pareto.png; {time.time() - start:.0f}s")
    print(summary_line(report))


def summary_line(report: dict) -> str:
    """The last two lines, from a report.json this script wrote."""
    baselines, sweep = report["baselines"], report["sweep"]
    router = sweep.get("lam=0", next(iter(sweep.values())))
    fixed = {k: (b["cost_usd"], b["f1"]) for k, b in baselines.items() if k != "random"}
    points = {k: (s["cost_usd"], s["f1"]) for k, s in sweep.items()}
    matched = matched_baselines(fixed, points)
    frontier = [n for n in pareto_frontier(points | fixed) if n in points]
    name, point = diversity_point(sweep, router)
    high = baselines["all_high"]
    return (
        f"routing_diversity at {name} (f1={point['f1']:.2f}, within 2 of lambda=0's {router['f1']:.2f})\n"
        f"all_low_f1={baselines['all_low']['f1']:.2f} all_mid_f1={baselines['all_mid']['f1']:.2f} "
        f"all_high_f1={high['f1']:.2f} router_f1={router['f1']:.2f} "
        f"router_cost_ratio={router['cost_usd'] / high['cost_usd']:.3f} frontier_points={len(frontier)} "
        f"dominated_baselines={len(matched)}/{len(fixed)} routing_diversity={point['off_modal']:.2f}"
    )


if __name__ == "__main__":
    main()
