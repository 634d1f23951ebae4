"""``rl-router eval checkpoint=<run dir> [split=all] [data=routellm data.path=<dir>]``.

A trained router against its baselines.

Rebuilds the router of a training run (:func:`rl_router.router.load_router`), loads the run's data
config (or the data option given to eval), and scores the router on the held-out split (or on every
row with ``split=all``, e.g. a new directory of RouteLLM-format CSVs). Writes ``report.json``,
``report.md`` and ``pareto.png`` into ``out_dir`` (default ``<checkpoint>/eval``).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rl_router.config import construct, typed
from rl_router.data.routing_table import RoutingTable, RoutingTableDataConfig, concat_tables
from rl_router.eval.table_eval import evaluate_router_on_table
from rl_router.router import load_router, load_run_config


def eval_table(data_cfg: DictConfig, split: str) -> RoutingTable:
    """The routing table to evaluate on, from a data config (the run's, or one given to eval)."""
    train, test = construct(typed(OmegaConf.merge(OmegaConf.structured(RoutingTableDataConfig), data_cfg)))
    return test if split == "test" else concat_tables([train, test], name=train.name)


def run_eval(cfg: DictConfig) -> dict:
    """The Hydra task of ``rl-router eval``."""
    run_dir = Path(cfg.checkpoint)
    out_dir = Path(cfg.out_dir) if cfg.out_dir else run_dir / "eval"
    router = load_router(run_dir)
    table = eval_table(cfg.data if cfg.data is not None else load_run_config(run_dir).data, cfg.split)
    report = evaluate_router_on_table(router, table, out_dir, progress=True)
    print((out_dir / "report.md").read_text())
    print(f"report: {out_dir}/report.json, {out_dir}/report.md, {out_dir}/pareto.png")
    return report
