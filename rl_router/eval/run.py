"""``rl-router eval checkpoint=<run dir | exported folder> [split=all] [data=<option> ...] [pool=<option>]``.

A trained router against its baselines, for both router kinds (:func:`rl_router.routers.load.load_router`
reads a run directory of ``rl-router train``, a folder of ``rl-router export`` or a Hub repo id):

* a **small-policy router** is scored on a routing table: the run's data option (the one recorded
  in an exported folder's ``router_config.json``) or the one given to eval; recorded outcomes are
  read as they are, questions are first answered by every candidate of the pool (the run's, or
  ``pool=<option>``); :func:`rl_router.eval.table_eval.evaluate_router_on_table`;
* an **LLM router** plays greedy Router-R1 episodes against a live pool (the run's pool option, or
  ``pool=<option>``) on QA rows, next to every single candidate, the oracle and random:
  :func:`rl_router.eval.llm_eval.evaluate_llm_router`. Resumable: run the same command again after a
  crash and only the rows missing from ``<out_dir>/scored.jsonl`` are scored.

Which rows: ``split=test`` (default) takes the test split of the data (an LLM run's
``trainer.eval_data`` when it has one, e.g. Router-R1's seven benchmarks); ``split=validation`` the
validation split, on which choices are made; ``split=train`` the training rows; ``split=all`` every row.
A data option given to eval that has no held-out split is evaluated whole. A policy router that
carries a calibration (``calibration.json``, ``rl-router calibrate``) is scored at that operating
point, with its target in the report; ``calibration=false`` scores the raw argmax. ``limit=N`` keeps the
first N rows; ``outcome=em`` scores an LLM router's answers by exact match whatever it trained on.
Writes ``report.json``, ``report.md`` and ``pareto.png`` into ``out_dir`` (default
``<checkpoint>/eval``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from rl_router.config import typed
from rl_router.data.routing_table import RoutingTable, concat_tables
from rl_router.data.splits import SPLITS, part_of
from rl_router.eval.agent_steps_eval import AGENT_STEPS_ENV, run_agent_steps_eval
from rl_router.eval.memory_tiers import run_memory_tiers_eval
from rl_router.eval.table_eval import evaluate_router_on_table
from rl_router.pool.build import build_pool_from
from rl_router.routers.load import load_router
from rl_router.routers.memory_tiers import MEMORY_TIERS_ENV
from rl_router.run import LOG_FILE, portable_config, run_env_target
from rl_router.trust import check_recorded, check_recorded_pool


@dataclass
class EvalConfig:
    """Root of ``rl-router eval``: a trained run's router against baselines."""

    checkpoint: str = MISSING  # a run directory of ``rl-router train``, an exported folder or a repo id
    out_dir: str | None = None  # where report.{json,md} and pareto.png go; None: <checkpoint>/eval
    split: str = "test"  # test (reported), validation (for choices), train, or all (e.g. a new data.path)
    data: Any = None  # a data option (`data=routellm data.path=...`) replacing the run's; None: the run's
    pool: Any = None  # LLM routers: a pool option serving the router's candidates; None: the run's
    limit: int | None = None  # LLM routers: evaluate the first N rows only
    batch_size: int = 16  # LLM routers: episodes generated together (one pool call per turn)
    resume: bool = True  # LLM routers: reuse rows out_dir/scored.jsonl already holds for this router
    outcome: str | None = None  # LLM routers: score with em / f1 / reply; None: the training outcome
    calibration: bool = True  # apply the router's calibration.json; false: its raw decisions
    trust_recorded_pool: bool = False  # use a recorded pool even if it sends an API key to its own endpoint
    verbose: bool = False  # show engine and worker logs (vLLM, Ray) in the terminal; False: <out_dir>/run.log

    def __post_init__(self) -> None:
        if self.split not in (*SPLITS, "all"):
            raise ValueError(f"split={self.split!r}: use one of {(*SPLITS, 'all')}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}: use 1 or more")
        if self.outcome not in (None, "em", "f1", "reply"):
            raise ValueError(f"outcome={self.outcome!r}: use em, f1, reply or null (the training outcome)")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit={self.limit}: use null (every row) or 1 or more")


def eval_table(data_cfg: Any, split: str, pool_cfg: Any = None, log_file: Path | None = None) -> RoutingTable:
    """The routing table a policy router is scored on, from a data option (the run's, or eval's).

    Recorded outcomes (``data=routellm``) are read as they are. Questions (``data=local_mix``,
    ``data=qa_local`` ...) are answered by every candidate of ``pool_cfg`` once, in big batches
    (:func:`~rl_router.rollout.live_table.collect_routing_table`; with the pool's response cache on,
    the answers recorded in training are hits).
    """
    from hydra.utils import instantiate

    from rl_router.rollout.live_table import collect_routing_table

    parts = part_of(instantiate(data_cfg), split)
    if all(isinstance(part, RoutingTable) for part in parts):
        return concat_tables(parts, name=parts[0].name) if len(parts) > 1 else parts[0]
    if pool_cfg is None:
        raise ValueError(
            "scoring a policy router on questions needs a pool to answer them: give pool=<option>"
        )
    pool = build_pool_from(pool_cfg, log_file)
    try:
        return collect_routing_table(pool, [dict(r) for p in parts for r in p], name=f"eval/{split}")
    finally:
        pool.close()


def qa_rows(data_cfg: Any, split: str, eval_data: Any = None, limit: int | None = None) -> list[dict]:
    """QA rows to evaluate an LLM router on.

    Args:
        data_cfg: A data option (a loader returning a dataset, or ``(train, test)``).
        split: ``"test"``: the held-out part (``eval_data`` when given, else ``data_cfg``'s test
            split, else all of a loader without one); ``"all"``: every row of ``data_cfg``.
        eval_data: A data option for the held-out rows (an LLM run's ``trainer.eval_data``).
        limit: Keep the first ``limit`` rows.
    """
    from hydra.utils import instantiate

    source = eval_data if split == "test" and eval_data is not None else data_cfg
    return [dict(r) for part in part_of(instantiate(source), split) for r in part][:limit]


# env class of a run -> its eval, for the envs whose routers are not QA routers
# env target -> (its eval, whether its routers take a calibration.json that calibration=false turns off)
TIER_ROUTER_EVALS = {
    AGENT_STEPS_ENV: (run_agent_steps_eval, False),
    MEMORY_TIERS_ENV: (run_memory_tiers_eval, True),
}


def run_eval(cfg: DictConfig) -> dict:
    """The Hydra task of ``rl-router eval``."""
    config: EvalConfig = typed(cfg)
    out_dir = Path(config.out_dir) if config.out_dir else Path(config.checkpoint) / "eval"
    tier = TIER_ROUTER_EVALS.get(run_env_target(config.checkpoint))
    if tier is not None:  # a tier router over game steps or memory modules, not a QA router
        tier_eval, calibrates = tier
        log_file = None if config.verbose else out_dir / LOG_FILE
        extra = {"calibration": config.calibration} if calibrates else {}
        report = tier_eval(
            config.checkpoint,
            out_dir,
            config.split,
            cfg.get("pool"),
            log_file,
            config.trust_recorded_pool,
            **extra,
        )
        print((out_dir / "report.md").read_text())
        return report
    router = load_router(config.checkpoint)
    if not config.calibration:
        router.calibration = None
    recorded: Mapping[str, Any] = router.training  # the data and pool the router was trained with
    where = f"{router.checkpoint} (recorded training config)"
    pool_cfg = cfg.pool if cfg.get("pool") is not None else recorded.get("pool")
    if cfg.get("pool") is None and pool_cfg is not None:
        (check_recorded if config.trust_recorded_pool else check_recorded_pool)(pool_cfg, "pool", where)
    data_cfg = cfg.data if cfg.data is not None else recorded.get("data")
    if data_cfg is None:
        raise ValueError(f"{router.checkpoint}: no data recorded with this router; give data=<option>")
    if cfg.data is None:
        check_recorded(data_cfg, "data", where)
    log_file = None if config.verbose else out_dir / LOG_FILE
    if router.kind == "llm":
        report = run_llm_eval(cfg, router, data_cfg, pool_cfg, out_dir, log_file)
    else:
        table = eval_table(data_cfg, config.split, pool_cfg, log_file)
        report = evaluate_router_on_table(router, table, out_dir, progress=True)
    print((out_dir / "report.md").read_text())
    print(f"report: {out_dir}/report.json, {out_dir}/report.md, {out_dir}/pareto.png")
    return report


def run_llm_eval(
    cfg: DictConfig, router: Any, data_cfg: Any, pool_cfg: Any, out_dir: Path, log_file: Path | None = None
) -> dict:
    """An LLM router's episodes and its baselines on QA rows against a live pool (module docstring)."""
    from rl_router.eval.llm_eval import evaluate_llm_router

    if cfg.outcome is not None:
        router.protocol = dataclasses.replace(router.protocol, outcome=cfg.outcome)
    if pool_cfg is None:
        raise ValueError(f"{router.checkpoint}: no pool recorded with this router; give eval pool=<option>")
    # the run's own held-out rows: trainer.eval_data when it set one (Router-R1's seven benchmarks)
    eval_data = None if cfg.data is not None else (router.training.get("trainer") or {}).get("eval_data")
    if eval_data is not None:
        check_recorded(eval_data, "data", f"{router.checkpoint} (recorded trainer.eval_data)")
    rows = qa_rows(data_cfg, cfg.split, eval_data=eval_data, limit=cfg.limit)
    return evaluate_llm_router(
        router,
        lambda: build_pool_from(pool_cfg, log_file),  # started only if some row is still to score
        rows,
        out_dir,
        pool_config=portable_config(pool_cfg) if OmegaConf.is_config(pool_cfg) else dict(pool_cfg),
        batch_size=cfg.batch_size,
        resume=cfg.resume,
        progress=True,
    )
