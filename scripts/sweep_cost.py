"""Cost-quality sweep: one router per budget (or per cost weight alpha), collected into one frontier.

Runs ``rl-router train --multirun trainer.budget.cost_per_query=<b1>,<b2>,... hydra.sweep.dir=<out>
[overrides]`` (``--alphas``: ``env.alpha=<a1>,...`` instead; Hydra multirun through the real CLI, the
basic launcher training the jobs one after another into ``<out>/<job number>/``), then reads every
job's ``config.yaml`` and ``report.json`` (held-out test rows, greedy decisions, no calibration) and
writes:

* ``<out>/frontier.png``: accuracy vs $/query, each router a point labelled with its setting, the
  sweep as a line, and the baselines (random, single models, oracle) of one report;
* ``<out>/sweep.json``: a list of ``{"setting", "accuracy", "dollars_per_query", "route_share", ...}``
  entries, one per run, with APGR, CPT(50%), the strong (priciest) model's share and each run's
  validation APGR and accuracy; ``<out>/baselines.json``: name -> ``[dollars_per_query, accuracy]``;
* ``<out>/sweep.md``: the same table, the run the validation APGR would choose (choices are made on
  validation only; the test columns are what gets reported), and the frontier checks: distinct
  points, $/query rising with the setting, and each point against the straight line between the
  cheapest and the priciest single model.

The last line printed is ``sweep_json=<path>``.

Launch:
    .venv/bin/python scripts/sweep_cost.py                     # the default budgets, experiment=budget
    .venv/bin/python scripts/sweep_cost.py --budgets 0.001 0.002 --out outputs/sweep_tiny debug=tiny
    .venv/bin/python scripts/sweep_cost.py --alphas 0.2 0.6 0.9 logger=none
    .venv/bin/python scripts/sweep_cost.py --collect-only outputs/sweep_cost/<date>_<time>  # redraw only
Positional arguments are Hydra overrides passed to every run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from rl_router.eval.pareto import plot_pareto
from rl_router.routers.policy import pool_descriptors
from rl_router.run import RUN_CONFIG, VALIDATION_DIR

# $ per query, about 20% ... 80% of always-GPT-4's $0.0034 on the default experiment's rows
DEFAULT_BUDGETS = (0.0007, 0.0012, 0.0017, 0.0022, 0.0027)
# Budget runs train conf/experiment/budget.yaml: the default experiment with 128-query rollouts, lr 1e-3 and
# 10 epochs (why: that file's header)
BUDGET_EXPERIMENT = "experiment=budget"


def run_sweep(key: str, values: list[float], out: Path, overrides: list[str]) -> None:
    """Train one router per value of ``key`` with ``rl-router train --multirun`` into ``out/<job number>``."""
    grid = ",".join(f"{v:g}" for v in values)
    cmd = [sys.executable, "-m", "rl_router.cli", "train", "--multirun", f"{key}={grid}"]
    cmd += [f"hydra.sweep.dir={out}", *overrides]
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def setting_of(cfg: Any) -> dict[str, float]:
    """What a run of the sweep varied: its budget, else its alpha."""
    budget = cfg.trainer.get("budget") or {}
    if budget.get("cost_per_query") is not None:
        return {"trainer.budget.cost_per_query": float(budget.cost_per_query)}
    share = {m: x for m, x in (budget.get("share") or {}).items() if x is not None}  # None: a placeholder
    if share:
        return {f"trainer.budget.share.{m}": float(x) for m, x in share.items()}
    return {"env.alpha": float(cfg.env.alpha)}


def label(setting: dict[str, float]) -> str:
    return ", ".join(f"{key.rsplit('.', 1)[-1]}={value:g}" for key, value in setting.items())


def collect_sweep(sweep_dir: Path) -> tuple[list[dict[str, Any]], dict[str, tuple[float, float]]]:
    """Every finished run of a multirun directory (sorted by setting), and one report's baselines."""
    rows, baselines = [], {}
    jobs = [p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    for run in sorted(jobs, key=lambda p: int(p.name)):
        if not (run / RUN_CONFIG).is_file() or not (run / "report.json").is_file():
            print(f"skipping {run}: no {RUN_CONFIG} or report.json (unfinished or failed run)")
            continue
        cfg = OmegaConf.load(run / RUN_CONFIG)
        overall = json.loads((run / "report.json").read_text())["overall"]
        val_file = run / VALIDATION_DIR / "report.json"
        val = json.loads(val_file.read_text())["overall"]["router"] if val_file.is_file() else {}
        router = overall["router"]
        strong = max(pool_descriptors(cfg.pool), key=lambda d: d.price_in + d.price_out).name
        rows.append(
            {
                "setting": setting_of(cfg),
                "accuracy": router["accuracy"],
                "dollars_per_query": router["dollars_per_query"],
                "route_share": router["route_share"],
                "apgr": router.get("apgr"),
                "cpt50": router.get("cpt50"),
                "strong_model": strong,
                "strong_share": router["route_share"][strong],
                "val_apgr": val.get("apgr"),
                "val_accuracy": val.get("accuracy"),
                "run": run.name,
            }
        )
        if not baselines:
            others = {name: row for name, row in overall.items() if name != "router"}
            baselines = {name: (row["dollars_per_query"], row["accuracy"]) for name, row in others.items()}
    return sorted(rows, key=lambda r: (sorted(r["setting"].items()), int(r["run"]))), baselines


def frontier_checks(rows: list[dict[str, Any]], baselines: dict[str, tuple[float, float]]) -> list[str]:
    """Distinct points, $/query rising with the setting, and each point against the single-model line."""
    dollars = np.diff([r["dollars_per_query"] for r in rows])
    by_cost = sorted(rows, key=lambda r: r["dollars_per_query"])
    lines = [
        f"distinct operating points: {len({(r['dollars_per_query'], r['accuracy']) for r in rows})}",
        f"$/query strictly monotone in the setting: {bool(np.all(dollars > 0) or np.all(dollars < 0))}",
        f"accuracy rises with $/query: {bool(np.all(np.diff([r['accuracy'] for r in by_cost]) >= 0))}",
    ]
    singles = sorted(v for k, v in baselines.items() if k.startswith("single/"))
    if len(singles) >= 2:
        (d0, a0), (d1, a1) = singles[0], singles[-1]
        margins = [r["accuracy"] - (a0 + (a1 - a0) * (r["dollars_per_query"] - d0) / (d1 - d0)) for r in rows]
        above = sum(m >= 0 for m in margins)
        lines.append(
            f"on or above the single-model line: {above}/{len(rows)} (accuracy margins "
            + ", ".join(f"{m:+.4f}" for m in margins)
            + ")"
        )
    return lines


def sweep_markdown(rows: list[dict[str, Any]], baselines: dict[str, tuple[float, float]]) -> str:
    """The sweep table in markdown, the validation choice and the frontier checks."""
    strong = rows[0]["strong_model"] if rows else "strong"
    lines = [
        f"| setting | test accuracy | $ / query | test APGR | CPT(50%) | share to {strong} "
        "| val APGR | val accuracy | run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        apgr, cpt50, val_apgr, val_acc = (
            ("n/a" if r.get(k) is None else f"{r[k]:.3f}")
            for k in ("apgr", "cpt50", "val_apgr", "val_accuracy")
        )
        lines.append(
            f"| {label(r['setting'])} | {r['accuracy']:.4f} | {r['dollars_per_query']:.6f} | {apgr} | "
            f"{cpt50} | {r['strong_share']:.3f} | {val_apgr} | {val_acc} | {r['run']} |"
        )
    scored = [r for r in rows if r.get("val_apgr") is not None]
    if scored:
        best = max(scored, key=lambda r: r["val_apgr"])
        lines += ["", f"chosen on validation APGR: {label(best['setting'])} (run {best['run']})"]
    return "\n".join([*lines, "", *frontier_checks(rows, baselines)]) + "\n"


def write_outputs(
    rows: list[dict[str, Any]], baselines: dict[str, tuple[float, float]], out: Path
) -> dict[str, Path]:
    """Write ``frontier.png``, ``sweep.md``, ``sweep.json`` and ``baselines.json`` into ``out``."""
    points = {label(r["setting"]): (r["dollars_per_query"], r["accuracy"]) for r in rows}
    points.update(baselines)
    curve = ([r["dollars_per_query"] for r in rows], [r["accuracy"] for r in rows])
    names = {"png": "frontier.png", "md": "sweep.md", "json": "sweep.json", "baselines": "baselines.json"}
    paths = {kind: out / name for kind, name in names.items()}
    plot_pareto(
        points,
        curve,
        paths["png"],
        title=f"cost-quality sweep ({len(rows)} routers)",
        xlabel="$ per query (list price)",
        ylabel="held-out accuracy",
        curve_label="routers, by setting",
    )
    paths["md"].write_text(sweep_markdown(rows, baselines))
    paths["json"].write_text(json.dumps(rows, indent=2))
    paths["baselines"].write_text(json.dumps(baselines, indent=2))
    return paths


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    grid = parser.add_mutually_exclusive_group()
    grid.add_argument("--budgets", type=float, nargs="+", help=f"$ per query (default {DEFAULT_BUDGETS})")
    grid.add_argument("--alphas", type=float, nargs="+", help="sweep Router-R1's alpha instead of a budget")
    parser.add_argument("--out", type=Path, help="multirun directory (default: outputs/sweep_cost/<time>)")
    parser.add_argument("--collect-only", type=Path, help="train nothing; collect this multirun directory")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run, e.g. debug=tiny")
    args = parser.parse_args(argv)

    if args.collect_only is not None:
        out = args.collect_only
    else:
        out = args.out or Path("outputs/sweep_cost") / f"{datetime.now():%Y-%m-%d_%H-%M-%S}"
        if args.alphas:
            run_sweep("env.alpha", args.alphas, out.resolve(), args.overrides)
        else:
            budgets = args.budgets or list(DEFAULT_BUDGETS)
            run_sweep(
                "trainer.budget.cost_per_query", budgets, out.resolve(), [BUDGET_EXPERIMENT, *args.overrides]
            )
    rows, baselines = collect_sweep(out)
    if not rows:
        raise SystemExit(f"no finished run (config.yaml + report.json) under {out}/<job number>/")
    paths = write_outputs(rows, baselines, out)
    print(sweep_markdown(rows, baselines))
    print("\n".join(f"{kind}: {path}" for kind, path in paths.items() if kind != "json"))
    print(f"sweep_json={paths['json']}")
    return paths


if __name__ == "__main__":
    main()
