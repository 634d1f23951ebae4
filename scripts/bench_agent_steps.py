"""Bench ``agent_steps``: train the tier router, score it on held-out (test-fold) seeds, print the bench line.

Launch: nice -n 10 .venv/bin/python scripts/bench_agent_steps.py [hydra overrides ...]
        nice -n 10 .venv/bin/python scripts/bench_agent_steps.py --run outputs/agent_steps/<run>  (re-print)

Runs ``rl-router train experiment=agent_steps`` with the overrides (e.g. ``pool=fake`` for a smoke
run, ``env.bopo.reference_baseline=false`` for the ablation) and prints, last::

    always_small_sr=<> always_large_sr=<> first_large_sr=<> random_sr=<> router_sr=<>
    router_cost_ratio=<> over_budget=<n>                    (one line)

``router_cost_ratio`` is the router's dollars per task over always-large's; ``first_large_sr`` is
First-Large-k at the router's cost (the largest k costing no more). Targets: router within 3 points
of always-large at <= 0.70 of its cost, above First-Large at matched cost, over_budget=0.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="an agent_steps run directory: print its bench line only")
    parser.add_argument("overrides", nargs="*", help="hydra overrides for experiment=agent_steps")
    args = parser.parse_args()
    if args.run:
        report = json.loads((Path(args.run) / "report.json").read_text())
    else:
        from hydra import compose, initialize_config_dir
        from omegaconf import OmegaConf

        from rl_router.cli import conf_dir, run_dir_resolver
        from rl_router.recipes.agent_steps_ppo import train
        from rl_router.registry import register_configs

        register_configs()
        OmegaConf.register_new_resolver("rl_run_dir", run_dir_resolver, use_cache=True)
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose(config_name="config", overrides=["experiment=agent_steps", *args.overrides])
        run_dir = Path(cfg.output_root) / cfg.name / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        report = train(cfg, run_dir, progress=True)["report"]
        print(f"run directory: {run_dir}")
    shares = {k[6:]: round(v, 3) for k, v in report["policies"]["router"].items() if k.startswith("share/")}
    print(f"# router tier shares {shares}")
    print(report["bench"])


if __name__ == "__main__":
    main()
