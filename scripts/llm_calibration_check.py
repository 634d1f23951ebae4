"""Does an LLM router's calibration hold on questions it was not fitted on?

For each target share, ``rl-router calibrate`` fits the router's offsets on its run's TRAINING
questions (``rl_router.eval.calibrate.run_calibrate``, exactly the CLI), then the calibrated router
routes the run's HELD-OUT questions (greedy first turns, ``LLMRouter.route``; no candidate is
called, so no pool starts). Prints, per target, the share of routed first turns that go to the
target model on the fitted rows and on the held-out rows, with the held-out error in points. The
last line reads::

    targets=<t1,t2,…> heldout_shares=<s1,s2,…> max_error_points=<x> routed=<k>/<n>

The calibration file written last is removed again, so the run is left as it was (pass
``--keep`` to keep it).

Launch (a trained run of experiment=router_r1_tiny; ~8 min per target on 2 cores, 66 + 33 questions):
    .venv/bin/python scripts/llm_calibration_check.py outputs/bench_router_r1_tiny/<date>_<time>
    .venv/bin/python scripts/llm_calibration_check.py <run> --targets 0.3 0.7 --model smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a trained LLM-router run directory")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.2, 0.5, 0.8], help="target shares")
    parser.add_argument("--model", default=None, help="target model (default: the most expensive)")
    parser.add_argument("--keep", action="store_true", help="keep the last calibration.json in the run")
    return parser.parse_args()


def heldout_questions(run: Path) -> list[str]:
    """The run's held-out questions: those its recipe evaluated (``trainer.eval_data`` when set)."""
    from omegaconf import OmegaConf

    from rl_router.eval.run import qa_rows

    cfg = OmegaConf.load(run / "config.yaml")
    trainer = cfg.trainer
    rows = qa_rows(cfg.data, "test", eval_data=trainer.get("eval_data"), limit=trainer.get("eval_limit"))
    return [row["question"] for row in rows]


def main() -> None:
    args = parse_args()
    from rl_router import load_router
    from rl_router.cli import compose_config
    from rl_router.eval.calibrate import run_calibrate
    from rl_router.routers.calibration import CALIBRATION

    questions = heldout_questions(args.run)
    if (args.run / CALIBRATION).exists():
        raise SystemExit(f"{args.run / CALIBRATION} exists: move it away first (this check writes its own)")
    shares, rows = [], []
    for target in args.targets:
        overrides = [f"checkpoint={args.run.resolve()}", f"target.share={target}"]
        if args.model:
            overrides.append(f"target.model={args.model}")
        calibration = run_calibrate(compose_config("calibrate", overrides))
        model = calibration.target["model"]
        router = load_router(args.run)
        routes = router.route(questions)
        routed = [r for r in routes if r in router.model_names]
        share = sum(r == model for r in routed) / max(len(routed), 1)
        shares.append(share)
        rows.append((target, calibration.achieved["route_share"][model], share, len(routed), Counter(routes)))
        print(
            f"target {model} share {target:.2f}: fitted rows {rows[-1][1]:.3f}, held-out {share:.3f} "
            f"({(share - target) * 100:+.1f} points; {len(routed)}/{len(questions)} first turns routed; "
            f"{dict(rows[-1][4])})",
            flush=True,
        )
    if not args.keep:
        (args.run / CALIBRATION).unlink(missing_ok=True)
    print("\n| target share | fitted rows | held-out | error (points) |\n|---|---|---|---|")
    for target, fitted, share, _, _ in rows:
        print(f"| {target:.2f} | {fitted:.3f} | {share:.3f} | {(share - target) * 100:+.1f} |")
    worst = max(abs(s - t) for s, t in zip(shares, args.targets, strict=True)) * 100
    print(
        f"targets={','.join(f'{t:g}' for t in args.targets)} "
        f"heldout_shares={','.join(f'{s:.3f}' for s in shares)} max_error_points={worst:.1f} "
        f"routed={rows[-1][3]}/{len(questions)}"
    )


if __name__ == "__main__":
    main()
