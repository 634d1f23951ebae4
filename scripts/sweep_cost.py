"""Cost-quality sweep: one router per cost weight alpha, collected into one frontier plot and table.

Runs ``rl-router train --multirun env.alpha=<a1>,<a2>,... hydra.sweep.dir=<out> [overrides]`` (Hydra
multirun through the real CLI; the basic launcher trains the jobs one after another into
``<out>/<job number>/``), then reads every job's ``config.yaml`` and ``report.json`` and writes:

* ``<out>/frontier.png``: accuracy vs $/query on the held-out split, each router a point labelled
  with its alpha, the sweep as a line, and the baselines (random, single models, oracle) of one report;
* ``<out>/sweep.md`` and ``<out>/sweep.json``: alpha, test accuracy, $/query, APGR, CPT(50%) and the
  route share of the strong (priciest) model, one row per run, beside each run's validation APGR and
  accuracy; the last line names the run the validation APGR would choose (choices are made on
  validation only; the test columns are what gets reported).

Launch:
    .venv/bin/python scripts/sweep_cost.py --alphas 0 0.6 0.7 0.8 0.9 experiment=default logger=none
    .venv/bin/python scripts/sweep_cost.py --alphas 0.2 0.9 --out outputs/sweep_tiny debug=tiny data.limit=300
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

from omegaconf import OmegaConf

from rl_router.eval.pareto import plot_pareto
from rl_router.routers.policy import pool_descriptors
from rl_router.run import RUN_CONFIG, VALIDATION_DIR

DEFAULT_ALPHAS = (0.0, 0.6, 0.7, 0.8, 0.9)  # Router-R1's grid


def run_sweep(alphas: list[float], out: Path, overrides: list[str]) -> None:
    """Train one router per alpha with ``rl-router train --multirun`` into ``out/<job number>``."""
    grid = ",".join(f"{a:g}" for a in alphas)
    cmd = [sys.executable, "-m", "rl_router.cli", "train", "--multirun", f"env.alpha={grid}"]
    cmd += [f"hydra.sweep.dir={out}", *overrides]
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def collect_sweep(sweep_dir: Path) -> tuple[list[dict[str, Any]], dict[str, tuple[float, float]]]:
    """Read every finished run of a multirun directory.

    Returns:
        ``(rows, baselines)``: one row per run with a ``report.json`` (sorted by alpha) holding
        alpha, accuracy, dollars_per_query, apgr, cpt50, strong_model, strong_share and run; and
        the baselines of the first report, name -> ``(dollars_per_query, accuracy)``.
    """
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
                "alpha": float(cfg.env.alpha),
                "accuracy": router["accuracy"],
                "dollars_per_query": router["dollars_per_query"],
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
    return sorted(rows, key=lambda r: (r["alpha"], int(r["run"]))), baselines


def sweep_markdown(rows: list[dict[str, Any]]) -> str:
    """The sweep table in markdown."""
    strong = rows[0]["strong_model"] if rows else "strong"
    lines = [
        f"| alpha | test accuracy | $ / query | test APGR | CPT(50%) | share to {strong} "
        "| val APGR | val accuracy | run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        apgr, cpt50, val_apgr, val_acc = (
            ("n/a" if r.get(k) is None else f"{r[k]:.3f}")
            for k in ("apgr", "cpt50", "val_apgr", "val_accuracy")
        )
        lines.append(
            f"| {r['alpha']:g} | {r['accuracy']:.4f} | {r['dollars_per_query']:.6f} | {apgr} | {cpt50} | "
            f"{r['strong_share']:.3f} | {val_apgr} | {val_acc} | {r['run']} |"
        )
    scored = [r for r in rows if r.get("val_apgr") is not None]
    if scored:
        best = max(scored, key=lambda r: r["val_apgr"])
        lines += ["", f"chosen on validation APGR: alpha={best['alpha']:g} (run {best['run']})"]
    return "\n".join(lines) + "\n"


def write_outputs(
    rows: list[dict[str, Any]], baselines: dict[str, tuple[float, float]], out: Path
) -> dict[str, Path]:
    """Write ``frontier.png``, ``sweep.md`` and ``sweep.json`` into ``out``."""
    points = {f"alpha={r['alpha']:g}": (r["dollars_per_query"], r["accuracy"]) for r in rows}
    points.update(baselines)
    curve = ([r["dollars_per_query"] for r in rows], [r["accuracy"] for r in rows])
    paths = {"png": out / "frontier.png", "md": out / "sweep.md", "json": out / "sweep.json"}
    plot_pareto(
        points,
        curve,
        paths["png"],
        title=f"cost-quality sweep over alpha ({len(rows)} routers)",
        xlabel="$ per query (list price)",
        ylabel="held-out accuracy",
        curve_label="routers, by alpha",
    )
    paths["md"].write_text(sweep_markdown(rows))
    paths["json"].write_text(json.dumps({"rows": rows, "baselines": baselines}, indent=2))
    return paths


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alphas", type=float, nargs="+", default=list(DEFAULT_ALPHAS), help="alpha grid")
    parser.add_argument("--out", type=Path, help="multirun directory (default: outputs/sweep_cost/<time>)")
    parser.add_argument("--collect-only", type=Path, help="train nothing; collect this multirun directory")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run, e.g. debug=tiny")
    args = parser.parse_args(argv)

    if args.collect_only is not None:
        out = args.collect_only
    else:
        out = args.out or Path("outputs/sweep_cost") / f"{datetime.now():%Y-%m-%d_%H-%M-%S}"
        run_sweep(args.alphas, out.resolve(), args.overrides)
    rows, baselines = collect_sweep(out)
    if not rows:
        raise SystemExit(f"no finished run (config.yaml + report.json) under {out}/<job number>/")
    paths = write_outputs(rows, baselines, out)
    print(sweep_markdown(rows))
    print("\n".join(f"{kind}: {path}" for kind, path in paths.items()))
    return paths


if __name__ == "__main__":
    main()
