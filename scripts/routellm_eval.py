"""Score a trained policy router with RouteLLM's own evaluation code (``routellm.evals``).

Two modes:

* ``routellm_eval.py <run | export | repo id>``: the router's held-out rows (``--split test``, the
  data it was trained with) or every row of another RouteLLM-format directory (``--data-path DIR
  --split all``), per benchmark (MMLU, GSM8K), through RouteLLM's ``Controller``, ``MMLU`` / ``GSM8K``
  benchmark classes and ``generate_results`` (:mod:`rl_router.eval.routellm_harness`).
* ``routellm_eval.py --unseen-subjects 12``: the out-of-domain check. Picks that many MMLU subjects
  of the shipped data at random (``--seed``), trains ``experiment=default`` on GSM8K and the other
  subjects (``data.path`` = a copy without them), then scores the new router on the held-out subjects,
  every row of them, with RouteLLM's code. ``--split train`` scores only their training-split rows:
  test rows are assigned per subject, so those are the shipped data's test rows, and a choice made
  on other draws with ``--split train`` never reads a test row.

For each benchmark it prints RouteLLM's own output (thresholds, accuracies, its metrics table) and
then one line ``<benchmark>: routellm_apgr=... quantile_apgr=... rl_router_apgr=... rows=...``:
RouteLLM's printed APGR, ours recomputed on RouteLLM's 11 quantile thresholds (they must agree), and
ours at every threshold (what ``rl-router eval`` reports). Writes ``<out>/routellm_eval.json`` and
RouteLLM's plots ``<out>/<benchmark>.png``. The last line is ``routellm_apgr_mmlu=...
routellm_apgr_gsm8k=...`` for the benchmarks scored.

Launch:
    .venv/bin/python scripts/routellm_eval.py outputs/default/<date>_<time>
    .venv/bin/python scripts/routellm_eval.py <run> --data-path <RouteLLM-format dir> --split all
    .venv/bin/python scripts/routellm_eval.py --unseen-subjects 12 --seed 0
    .venv/bin/python scripts/routellm_eval.py --unseen-subjects 3 --train-override debug=tiny   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np

from rl_router.data.routellm import SHIPPED_DIR
from rl_router.data.splits import SPLITS
from rl_router.eval.routellm_harness import BENCHMARKS, run_routellm_eval
from rl_router.eval.run import eval_table
from rl_router.routers.load import load_router
from rl_router.run import RUN_CONFIG
from rl_router.trust import check_recorded


def split_subjects(count: int, seed: int, out: Path) -> tuple[Path, Path, list[str]]:
    """Copies of the shipped data: ``out/train_data`` without ``count`` random MMLU subjects (GSM8K
    kept), ``out/heldout_data`` with only them. Returns both directories and the held-out subjects."""
    files = sorted((SHIPPED_DIR / "mmlu").glob("mmlu_*.csv.gz"))
    subjects = [f.name.removeprefix("mmlu_").removesuffix(".csv.gz") for f in files]
    if not 1 <= count < len(subjects):
        raise SystemExit(
            f"--unseen-subjects {count}: choose 1 to {len(subjects) - 1} of the {len(subjects)} subjects"
        )
    held = sorted(np.random.default_rng(seed).choice(subjects, size=count, replace=False).tolist())
    train_dir, held_dir = out / "train_data", out / "heldout_data"
    for root in (train_dir, held_dir):
        (root / "mmlu").mkdir(parents=True)
        shutil.copy(SHIPPED_DIR / "mmlu" / "contaminated_prompts.jsonl", root / "mmlu")
    shutil.copytree(SHIPPED_DIR / "gsm8k", train_dir / "gsm8k")
    for file, subject in zip(files, subjects, strict=True):
        shutil.copy(file, (held_dir if subject in held else train_dir) / "mmlu")
    return train_dir, held_dir, held


def train_default(data_dir: Path, run_dir: Path, overrides: list[str]) -> None:
    """``rl-router train experiment=default`` on ``data_dir``, into ``run_dir`` (log beside it)."""
    cmd = [sys.executable, "-m", "rl_router.cli", "train", "experiment=default", "logger=none"]
    cmd += [f"data.path={data_dir}", f"hydra.run.dir={run_dir}", *overrides]
    print("$ " + " ".join(cmd), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with open(run_dir.parent / "train.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", nargs="?", help="a run directory, an exported folder or a Hub repo id")
    parser.add_argument(
        "--split",
        choices=[*SPLITS, "all"],
        help="which rows (default: test; all with --unseen-subjects)",
    )
    parser.add_argument("--data-path", help="score every row of this RouteLLM-format directory instead")
    parser.add_argument("--benchmarks", nargs="+", default=list(BENCHMARKS), choices=BENCHMARKS)
    parser.add_argument(
        "--num-results", type=int, default=10, help="RouteLLM's threshold bins (its default 10)"
    )
    parser.add_argument("--unseen-subjects", type=int, help="train on the other subjects, score these many")
    parser.add_argument("--seed", type=int, default=0, help="which subjects --unseen-subjects holds out")
    parser.add_argument("--out", help="output directory (default: <checkpoint>/routellm_eval)")
    parser.add_argument(
        "--train-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="for the --unseen-subjects run",
    )
    args = parser.parse_args()
    overrides = args.train_override

    held: list[str] = []
    if args.unseen_subjects is not None:
        if args.checkpoint or args.data_path:
            raise SystemExit("--unseen-subjects trains its own router: give no checkpoint or --data-path")
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        out = Path(args.out or f"outputs/routellm_unseen/{stamp}").resolve()
        out.mkdir(parents=True, exist_ok=True)
        train_dir, held_dir, held = split_subjects(args.unseen_subjects, args.seed, out)
        print(f"held-out subjects ({len(held)}): {', '.join(held)}", flush=True)
        checkpoint = str(out / "run")
        train_default(train_dir, Path(checkpoint), overrides)
        data_path, split, benchmarks = str(held_dir), args.split or "all", ["mmlu"]
    else:
        if not args.checkpoint:
            raise SystemExit("give a checkpoint (run, export or repo id), or --unseen-subjects N")
        if overrides:
            raise SystemExit(f"--train-override {overrides}: it goes with --unseen-subjects only")
        checkpoint, data_path, split, benchmarks = (
            args.checkpoint,
            args.data_path,
            args.split or "test",
            args.benchmarks,
        )
        out = Path(args.out or Path(checkpoint) / "routellm_eval")

    router = load_router(checkpoint)
    data_cfg = dict(router.training.get("data") or {})
    if not data_cfg:
        raise SystemExit(f"{checkpoint}: no data recorded with this router ({RUN_CONFIG})")
    check_recorded(data_cfg, "data", f"{checkpoint} (recorded training config)")
    if data_path is not None:  # every benchmark asked for that the directory holds
        root = Path(data_path)
        data_cfg["path"] = str(root.resolve())
        held_here = [b for b in benchmarks if (root / b).is_dir() or any(root.glob(f"{b}*.csv*"))]
        data_cfg["benchmarks"] = held_here
        if not data_cfg["benchmarks"]:
            raise SystemExit(f"--data-path {data_path}: no {benchmarks} files in RouteLLM's layout there")
    table = eval_table(data_cfg, split)
    present = {source.split("/", 1)[0] for source in table.sources}
    contaminated_from = Path(data_path) if data_path else SHIPPED_DIR

    results = []
    for benchmark in [b for b in benchmarks if b in present]:
        result = run_routellm_eval(
            router, table, out / benchmark, benchmark, args.num_results, contaminated_from
        )
        print(result.stdout, flush=True)
        print(
            f"{benchmark}: routellm_apgr={result.routellm['apgr']:.4f} "
            f"quantile_apgr={result.ours['quantile_apgr']:.4f} rl_router_apgr={result.ours['apgr']:.4f} "
            f"routellm_cpt50={result.routellm['cpt_50']:.2f}% rows={result.rows}",
            flush=True,
        )
        results.append(result)
    if not results:
        raise SystemExit(f"no {benchmarks} rows in the {split} split of {table.name}")
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "checkpoint": checkpoint,
        "split": split,
        "data_path": data_path,
        "unseen_subjects": held,
        "results": [r.as_dict() for r in results],
    }
    (out / "routellm_eval.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {out / 'routellm_eval.json'}")
    print(" ".join(f"routellm_apgr_{r.benchmark}={r.routellm['apgr']:.4f}" for r in results))


if __name__ == "__main__":
    main()
