"""Recipe: an LLM router (Router-R1's multi-round protocol), SFT warm start then GRPO, then evaluation.

``rl-router train experiment=router_r1_tiny`` (CPU) or ``experiment=router_r1`` (GPU cluster): the
``trainer=grpo`` group with a ``multi_round`` env. Reads top to bottom:

1. *setup* -- :func:`rl_router.run.start_run` (run dir, recorded config, seeds, logger);
2. *data and pool* -- training and held-out questions, the candidate pool;
3. *SFT warm start* -- :mod:`rl_router.trainers.sft` imitates synthesised protocol-correct
   trajectories (tiny routers do not emit the tags zero-shot);
4. *GRPO* -- TRL's ``GRPOTrainer`` with :class:`rl_router.trainers.grpo.TRLRollout` as its
   ``rollout_func``, episodes played by :class:`rl_router.rollout.driver.RolloutDriver`;
5. *evaluate* -- the trained router (and the warm start) against each single candidate, the oracle and
   random on the held-out questions (:mod:`rl_router.eval.llm_eval`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rewards.combine import RouterR1Reward
from rewards.cost import PercentileCostNormalizer
from rl_router.config import typed
from rl_router.eval.llm_eval import evaluate_llm_router
from rl_router.generation import load_model, token_counter
from rl_router.loggers import JsonlLogger, MultiLogger
from rl_router.rollout.driver import RolloutDriver
from rl_router.rollout.env_factory import env_factory
from rl_router.routers.llm import LLMRouter, ProtocolSettings
from rl_router.run import METRICS, SFT_DIR, SFT_TRAJECTORIES, portable_config, start_run
from rl_router.trainers import sft
from rl_router.trainers.grpo import (
    ROLLOUT_STATE,
    GRPOTrainerConfig,
    TRLRollout,
    grpo_args,
    grpo_dataset,
    reward_functions,
)
from rl_router.trainers.grpo_math import exploration_prefixes
from rl_router.trainers.grpo_run import CHECKPOINTS, resume_point, train_and_save

log = logging.getLogger(__name__)


def load_splits(cfg: DictConfig, trainer_cfg: GRPOTrainerConfig) -> tuple[list[dict], list[dict]]:
    """Training and held-out rows: ``(train, test)`` from the data option, or test from ``eval_data``."""
    from hydra.utils import instantiate

    data = instantiate(cfg.data)
    train, test = (data[0], data[-1]) if isinstance(data, tuple) else (data, None)
    if trainer_cfg.eval_data is not None:
        test = instantiate(trainer_cfg.eval_data)
        test = test[-1] if isinstance(test, tuple) else test
    if test is None:
        raise ValueError(
            f"data={cfg.data._target_} has no held-out split: set trainer.eval_data to a data option "
            "(experiment=router_r1 evaluates on the seven Router-R1 benchmarks)"
        )
    train_rows = [dict(r) for r in train][: trainer_cfg.train_limit]
    test_rows = [dict(r) for r in test][: trainer_cfg.eval_limit]
    return train_rows, test_rows


def resumed_multiplier(state: dict[str, Any], trainer_cfg: GRPOTrainerConfig, checkpoint: Path) -> float:
    """The budget's ``lam`` saved in a checkpoint's rollout state (0 without a budget).

    Raises:
        ValueError: the run and the checkpoint disagree on whether a budget is set.
    """
    saved = state.get("budget")
    if trainer_cfg.budget.enabled != (saved is not None):
        raise ValueError(
            f"{checkpoint} was trained {'with' if saved is not None else 'without'} trainer.budget: "
            f"resume it {'with the same budget' if saved is not None else 'without one'}"
        )
    return float(saved["lambda"]) if saved is not None else 0.0


def train(cfg: DictConfig, run_dir: Path, progress: bool | None = None) -> dict[str, Any]:
    """Warm-start (SFT), train (GRPO) and evaluate an LLM router in ``run_dir``.

    Args:
        cfg: The composed ``rl-router train`` config (``trainer=grpo``, ``env.mode=multi_round``).
        run_dir: The run directory (created).
        progress: Override ``trainer.progress``.

    Returns:
        ``{"history": logged rows, "report": report.json contents, "warm_start_report": the same for
        the SFT warm start (None without one), "run_dir": run_dir, "router_dir": the trained router}``.
    """
    from hydra.utils import instantiate
    from transformers import AutoTokenizer

    from rl_router.zoo import resolve

    # ---------------------------------------------------------------- setup
    run = start_run(cfg, run_dir, groups=("data",))
    env_cfg, trainer_cfg = typed(cfg.env), typed(cfg.trainer)
    if progress is not None:
        trainer_cfg.progress = progress
    last = resume_point(run_dir, run.resumed)
    logger = MultiLogger(JsonlLogger(run_dir / METRICS), run.logger)

    # ---------------------------------------------------------------- data and pool
    train_rows, test_rows = load_splits(cfg, trainer_cfg)
    log.info("data: %d training questions, %d held-out questions", len(train_rows), len(test_rows))
    pool = instantiate(cfg.pool, log_file=run.log_file)
    try:
        descriptors = list(pool.descriptors)
        names = [d.name for d in descriptors]
        model_path = resolve(trainer_cfg.model)  # zoo models are materialised; paths and hub ids pass
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        count_tokens = token_counter(tokenizer)

        openings = (
            [sft.route_opening(n, trainer_cfg.sft_routes) for n in names]
            if trainer_cfg.explore_routes
            else []
        )
        exploration_prefixes(
            trainer_cfg.num_generations, trainer_cfg.num_generations, openings
        )  # fails before SFT

        # ------------------------------------------------------------ SFT warm start
        if trainer_cfg.sft_steps > 0:
            sft_dir = run_dir / SFT_DIR
            if not (sft_dir / "config.json").is_file():
                trajectories = sft.synthesize_trajectories(
                    pool,
                    train_rows,
                    count_tokens,
                    max_routes=env_cfg.max_routes,
                    info_token_cap=env_cfg.info_token_cap,
                    routes=trainer_cfg.sft_routes,
                )
                routed = Counter(t.model for t in trajectories)
                log.info(
                    "SFT: %d trajectories from %d questions (%s)",
                    len(trajectories),
                    len(train_rows),
                    ", ".join(f"{m} {n}" for m, n in routed.items()),
                )
                sft.write_trajectories(run_dir / SFT_TRAJECTORIES, trajectories)
                sft.warm_start(model_path, tokenizer, trajectories, sft_dir, trainer_cfg, logger=logger)
            model_path = str(sft_dir)

        # ------------------------------------------------------------ GRPO
        normalizer = PercentileCostNormalizer(window=env_cfg.cost_window)  # one window for every episode
        multiplier = 0.0  # the budget's lam (trainer.budget)
        if last is not None and (Path(last) / ROLLOUT_STATE).is_file():
            state = json.loads((Path(last) / ROLLOUT_STATE).read_text())
            normalizer.load_state_dict(state["normalizer"])
            multiplier = resumed_multiplier(state, trainer_cfg, Path(last))
        # the envs leave the cost term to the bridge, which scores each generation batch as one
        make_env = env_factory(env_cfg, pool=pool, count_tokens=count_tokens, defer_cost=True)
        driver = RolloutDriver(
            make_env, train_rows, tokenizer, trainer_cfg.max_turn_tokens, trainer_cfg.max_completion_tokens
        )
        rollout = TRLRollout(
            driver,
            normalizer,
            RouterR1Reward(alpha=env_cfg.alpha),
            generation={
                "temperature": trainer_cfg.temperature,
                "top_p": trainer_cfg.top_p,
                "top_k": trainer_cfg.top_k,
                "chunk": trainer_cfg.generation_chunk,
            },
            budget=trainer_cfg.budget,
            multiplier=multiplier,
            route_openings=openings,
        )
        funcs, _ = reward_functions(trainer_cfg.budget.enabled)
        trained = train_and_save(
            trainer_cfg,
            run_dir,
            model_path=model_path,
            tokenizer=tokenizer,
            rollout=rollout,
            reward_funcs=funcs,
            args=grpo_args(trainer_cfg, run_dir / CHECKPOINTS),
            train_dataset=grpo_dataset(train_rows, descriptors, env_cfg.max_routes),
            model_names=names,
            logger=logger,
            resume=last,
        )
        router_dir = trained.router_dir

        # ------------------------------------------------------------ evaluate
        router = LLMRouter(
            trained.model,
            tokenizer,
            descriptors,
            ProtocolSettings.from_run(dataclasses.asdict(env_cfg), dataclasses.asdict(trainer_cfg)),
            checkpoint=router_dir,
            training=portable_config(cfg),
        )
        pool_config = portable_config(cfg)["pool"]  # what `rl-router eval` of this run keys rows by too
        report = evaluate_llm_router(
            router,
            pool,
            test_rows,
            run_dir / "eval",
            batch_size=trainer_cfg.eval_batch_size,
            progress=trainer_cfg.progress,
            pool_config=pool_config,
        )
        for name in ("report.json", "report.md", "pareto.png"):  # beside the run, as PPO runs have it
            shutil.copy2(run_dir / "eval" / name, run_dir / name)
        warm_report = None
        if trainer_cfg.sft_steps > 0 and trainer_cfg.eval_warm_start:
            model, _ = load_model(run_dir / SFT_DIR)
            warm = dataclasses.replace(router, model=model, checkpoint=run_dir / SFT_DIR)
            warm_report = evaluate_llm_router(
                warm,
                pool,
                test_rows,
                run_dir / "eval_sft",
                batch_size=trainer_cfg.eval_batch_size,
                pool_config=pool_config,
            )
    finally:
        pool.close()

    # ---------------------------------------------------------------- log and clean up
    summary = report["router"]
    logger.log(
        {
            "eval/accuracy": summary["accuracy"],
            "eval/format_valid": summary["format_valid"],
            "eval/cost_usd": summary["dollars_per_question"],
            "eval/calls": summary["calls_per_question"],
        },
        trained.step,
    )
    logger.finish()
    if trainer_cfg.progress:
        print((run_dir / "report.md").read_text())
        print(f"run directory: {run_dir}")
    return {
        "history": trained.history,
        "report": report,
        "warm_start_report": warm_report,
        "run_dir": run_dir,
        "router_dir": router_dir,
    }
