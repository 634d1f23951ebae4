"""Router-R1 on a CPU, end to end: SFT warm start, then GRPO, then the held-out comparison.

Runs ``experiment=router_r1_tiny``: a SmolLM2-135M-Instruct router learns Router-R1's protocol
(SFT on synthesised trajectories), then GRPO (TRL) routes between two live candidates served by
vLLM CPU (SmolLM2-135M and Qwen2.5-Coder-0.5B) on capitals + arithmetic. Prints the reward curve
(one line per GRPO step), then, on the held-out split, the format-valid rate, accuracy, dollars
and calls per question of the trained router, of each single candidate, of the oracle (per question
the cheapest candidate that answers it right) and of random routing (``rl_router.eval.llm_eval``; the
full report is in ``<run>/eval/``). The last line reads::

    format_valid=<x> router_acc=<x> best_single_acc=<x> router_cost_ratio=<x> oracle_cost_ratio=<x>

(``router_cost_ratio``: the router's dollars per question over the most accurate single candidate's.)

Launch (the full run: 30 SFT steps, 20 GRPO steps, ~30-45 min on 2 idle cores; the first start also
builds the zoo cache and compiles two vLLM CPU engines):
    .venv/bin/python scripts/bench_router_r1_tiny.py
Smoke (minutes):
    .venv/bin/python scripts/bench_router_r1_tiny.py --sft-steps 2 --grpo-steps 1 \
        --questions 4 --eval-questions 4
Extra Hydra overrides go last, e.g. ``trainer.lr=2e-5 env.alpha=0.8``.
"""

from __future__ import annotations

import argparse
import math
import time
from datetime import datetime
from pathlib import Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sft-steps",
        type=int,
        default=None,
        help="SFT warm-start steps (default: 30; 0 with --pool fake, whose canned replies state no answer)",
    )
    parser.add_argument("--grpo-steps", type=int, default=20, help="GRPO optimizer steps")
    parser.add_argument("--questions", type=int, default=None, help="training questions (default: all 77)")
    parser.add_argument(
        "--eval-questions", type=int, default=None, help="held-out questions (default: all 33)"
    )
    parser.add_argument("--pool", default="local", help="pool option: local (vLLM CPU) or fake (no models)")
    parser.add_argument("--out", default="outputs/bench_router_r1_tiny", help="parent of the run directory")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.sft_steps is None:
        # The warm start imitates replies that state a golden answer; the fake pool's never do.
        args.sft_steps = 0 if args.pool == "fake" else 30
    from rl_router.cli import compose_config
    from rl_router.recipes.llm_router_grpo import train as train_llm_router

    overrides = [
        "experiment=router_r1_tiny",
        f"pool={args.pool}",
        "logger=none",
        "name=bench_router_r1_tiny",
        f"trainer.sft_steps={args.sft_steps}",
        f"trainer.max_steps={args.grpo_steps}",
        f"trainer.train_limit={'null' if args.questions is None else args.questions}",
        f"trainer.eval_limit={'null' if args.eval_questions is None else args.eval_questions}",
        *args.overrides,
    ]
    cfg = compose_config("config", overrides)
    run_dir = Path(args.out) / f"{datetime.now():%Y-%m-%d_%H-%M-%S}"
    started = time.perf_counter()
    result = train_llm_router(cfg, run_dir)
    minutes = (time.perf_counter() - started) / 60

    print("\nreward curve (GRPO step: mean reward, format-valid, accuracy, $/question, calls, rollout s)")
    for row in result["history"]:
        if "train/reward/total" in row:
            print(
                f"  {row['step']:3d}: {row['train/reward/total']:+.3f}  "
                f"format {row.get('rollout/format_valid', math.nan):.2f}  "
                f"acc {row.get('rollout/accuracy', math.nan):.2f}  "
                f"$ {row.get('rollout/cost_usd', math.nan):.2e}  "
                f"calls {row.get('rollout/calls', math.nan):.2f}  "
                f"{row.get('rollout/seconds', math.nan):.0f}s"
            )
    report = result["report"]
    router, best = report["router"], report["single"][report["best_single"]]
    print(f"\nheld-out ({router['questions']} questions):")
    print(f"  {'policy':<28}{'format':>8}{'acc':>8}{'$ / q':>12}{'calls / q':>11}")
    rows = [("trained router", router)] + [(f"only {m}", r) for m, r in report["single"].items()]
    if result["warm_start_report"] is not None:
        rows.insert(1, ("SFT warm start only", result["warm_start_report"]["router"]))
    rows += [("oracle (cheapest right)", report["oracle"]), ("random", report["random"])]
    for name, r in rows:
        valid = "n/a" if r["format_valid"] is None else f"{r['format_valid']:.3f}"
        print(
            f"  {name:<28}{valid:>8}{r['accuracy']:>8.3f}"
            f"{r['dollars_per_question']:>12.3e}{r['calls_per_question']:>11.2f}"
        )
    shares = ", ".join(f"{m} {s:.2f}" for m, s in router["route_share"].items())
    print(f"  router route shares: {shares}")
    print(f"  oracle cost ratio {ratio(report['oracle_cost_ratio'])} (per question the cheapest right model)")
    errors = router.get("candidate_errors", 0)
    if errors:  # a dead or failing candidate is an error observation: the numbers above count it as wrong
        print(f"  WARNING: {errors} candidate call(s) of the router failed (see the run's run.log)")
    print(f"wall time {minutes:.1f} min; run directory {result['run_dir']}")
    print(
        f"format_valid={router['format_valid']:.3f} router_acc={router['accuracy']:.3f} "
        f"best_single_acc={best['accuracy']:.3f} router_cost_ratio={ratio(report['router_cost_ratio'])} "
        f"oracle_cost_ratio={ratio(report['oracle_cost_ratio'])}"
    )


def ratio(value: float | None) -> str:
    """A cost ratio to three places, or n/a where the best single candidate cost nothing."""
    return "n/a" if value is None else f"{value:.3f}"


if __name__ == "__main__":  # vLLM CPU engines start spawned workers that re-import this module
    main()
