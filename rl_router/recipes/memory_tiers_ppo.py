"""Recipe: BudgetMem's tier router for memory modules (``memory_tiers``), trained with joint-ratio PPO.

``rl-router train experiment=memory_tiers`` (CPU: heuristic / MiniLM / SmolLM2 tiers) or
``experiment=memory_tiers_budgetmem`` (GPU: LLaMA 3B / 8B / 70B). Reads top to bottom:

1. *setup*: :func:`rl_router.run.start_run` (run directory, recorded config, seeds, logger);
2. *data and pool*: LoCoMo split by conversation (``data=locomo``: 0-5 train, 6-7 validation, 8-9
   test) and the pool serving the LLM tiers (its response cache makes a repeated module call free
   to compute; the ledger still charges it);
3. *env*: ``trainer.batch_episodes`` copies of :class:`~envs.memory_tiers.MemoryTiersEnv` sharing
   one cost window, one alpha matcher, one encoder and one module runner;
4. *train*: :func:`rl_router.trainers.joint_ppo.train` (one joint ratio over the five decisions);
5. *evaluate*: the greedy router against all-Low, all-Mid, all-High and random on the test
   conversations (``report.json``, ``report.md``, ``pareto.png``) and on validation
   (``validation/``). ``scripts/bench_memory_tiers.py`` adds the lambda sweep and the best fixed
   tier per module.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from envs.memory_modules import MODULES, TIERS
from envs.memory_tiers import MemoryTiersConfig
from rl_router.config import typed
from rl_router.data.locomo import LocomoDataConfig
from rl_router.eval.memory_tiers import evaluate, fixed_baselines, summarize, write_report
from rl_router.policies.memory_tiers import MemoryTierPolicyConfig, build_memory_policy
from rl_router.rollout.episodes import EnvMaker
from rl_router.run import VALIDATION_DIR, start_run
from rl_router.trainers import joint_ppo

log = logging.getLogger(__name__)

# (group, name, schema) of this recipe's config schemas, registered by rl_router.registry
SCHEMAS: list[tuple[str, str, type]] = [
    ("env", "memory_tiers_schema", MemoryTiersConfig),
    ("policy", "memory_tiers_schema", MemoryTierPolicyConfig),
    ("trainer", "joint_ppo_schema", joint_ppo.JointPPOConfig),
    ("data", "locomo_schema", LocomoDataConfig),
]


def episode_metrics(infos: list[dict[str, Any]]) -> dict[str, float]:
    """Rollout metrics from the episodes' last infos: reward terms, dollars, tier shares per module."""
    episodes = [info["episode"] for info in infos]
    terms = [info["reward_terms"] for info in infos]
    out = {f"train/reward/{k}": float(np.mean([t[k] for t in terms])) for k in ("f1", "cost")}
    out["rollout/cost_usd"] = float(np.mean([e["cost_usd"] for e in episodes]))
    for i, module in enumerate(MODULES):
        for tier in TIERS:
            out[f"rollout/tier_share/{module}/{tier}"] = float(
                np.mean([e["tiers"][i] == tier for e in episodes])
            )
    return out


def evaluate_all(
    make: EnvMaker, policy: Any, rows: Sequence[Mapping[str, Any]], batch: int
) -> dict[str, Any]:
    """The router (greedy) and the fixed baselines on ``rows``: their summaries."""
    out = {"router": summarize(evaluate(make.eval_envs, rows, policy.eval(), batch_size=batch))}
    for name, baseline in fixed_baselines().items():
        greedy = name != "random"
        out[name] = summarize(evaluate(make.eval_envs, rows, baseline, greedy=greedy, batch_size=batch))
    return out


def module_dollars(infos: list[dict[str, Any]]) -> np.ndarray:
    """What each episode spent on its five routed modules (the budget's usage; the answer model is fixed)."""
    return np.array([float(info["episode"]["cost_usd"]) for info in infos])


def check_budget(trainer_cfg: joint_ppo.JointPPOConfig) -> None:
    """memory_tiers budgets are dollars per query: its actions are tiers, not one model to cap."""
    if trainer_cfg.budget.share:
        raise ValueError(
            f"trainer.budget.share={dict(trainer_cfg.budget.share)}: memory_tiers routes tiers, not models; "
            "cap its spend with trainer.budget.cost_per_query=<usd>"
        )


def train(cfg: DictConfig, run_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Train the memory-tier router in ``run_dir`` and evaluate it on the test conversations.

    Returns:
        ``{"train": <last PPO metrics>, "report": <report.json>, "run_dir": run_dir}``.
    """
    # ---------------------------------------------------------------- setup
    run = start_run(cfg, run_dir, groups=("data", "policy", "env"))
    trainer_cfg: joint_ppo.JointPPOConfig = typed(cfg.trainer)
    check_budget(trainer_cfg)

    # ---------------------------------------------------------------- data and pool
    from hydra.utils import instantiate

    train_rows, val_rows, test_rows = instantiate(cfg.data)
    log.info(
        "LoCoMo: %d train, %d validation, %d test questions", len(train_rows), len(val_rows), len(test_rows)
    )
    pool = instantiate(cfg.pool, log_file=run.log_file)
    try:
        # ------------------------------------------------------------ env
        make = EnvMaker(cfg.env, pool)  # an unpriced tier model stops here, naming it
        envs = make(train_rows, trainer_cfg.batch_episodes)
        obs_dim = int(envs[0].observation_space.shape[0])
        policy = build_memory_policy(typed(cfg.policy), obs_dim, len(TIERS), len(MODULES))

        # ------------------------------------------------------------ train
        result = joint_ppo.train(
            trainer_cfg,
            envs,
            policy,
            run_dir=run_dir,
            logger=run.logger,
            progress=progress,
            resume=run.resumed,
            episode_metrics=episode_metrics,
            budget_usage=module_dollars if trainer_cfg.budget.enabled else None,
        )

        # ------------------------------------------------------------ evaluate
        batch = trainer_cfg.batch_episodes
        validation = evaluate_all(make, policy, val_rows, batch)
        test = evaluate_all(make, policy, test_rows, batch)
    finally:
        pool.close()
    write_report(run_dir / VALIDATION_DIR, validation.pop("router"), validation)
    router = test.pop("router")
    report = write_report(
        run_dir, router, test, extra={"lam": make.cfg.lam, "checkpoint": str(result["checkpoint"])}
    )
    run.logger.log({"eval/f1": router["f1"], "eval/cost_usd": router["cost_usd"]}, result["episodes"])
    run.logger.finish()
    print((run_dir / "report.md").read_text())
    print(f"run directory: {run_dir}")
    return {"train": result, "report": report, "run_dir": run_dir}
