"""Recipe: an LLM tier router for ``agent_steps`` (BoPO, our reconstruction) trained with TRL GRPO.

``rl-router train experiment=agent_steps_grpo`` (CPU, SmolLM2-135M router) or
``experiment=agent_steps_bopo_grpo`` (GPU, Qwen2.5-1.5B router): ``trainer=grpo`` with
``env=agent_steps`` in ``env.mode=text``. The router LLM reads the env's transcript (task, numbered
tiers, then per step the agent's action, the game's text, the budget left and the allowed tiers)
and answers each step with a tier number; the hard budget mask still decides what is called.
Reads top to bottom:

1. *setup* -- :func:`rl_router.run.start_run` (run directory, ``config.yaml``, seeds, logger);
2. *data and pool* -- game task rows from the games' own folds (``data=text_games``), the tiers;
3. *boundary* -- always-small and always-large play every training task ``env.bopo.repeats`` times
   (:mod:`rl_router.rollout.boundary`): ``boundary.json`` / ``boundary.md``, and each task's boundary
   costs and successes, which the env's reward reads;
4. *warm start* (``trainer.sft_steps > 0``) -- BoPO's boundary-guided SFT for an LLM: the stratified
   sample's trajectories replayed in text mode, the router's replies (the demonstrated tier numbers)
   trained and the env's text masked (:func:`demonstrations`, :func:`rl_router.trainers.sft.warm_start`);
5. *GRPO* -- TRL's ``GRPOTrainer`` with :class:`rl_router.trainers.grpo.TRLRollout` as its
   ``rollout_func``: :class:`rl_router.rollout.driver.RolloutDriver` plays the text episodes (env
   tokens masked), the env's terminal reward stands (TRL's group mean is the baseline; the
   reference term, constant per task, cancels in it);
6. *evaluate* -- on the test fold, the router (greedy, through the same driver) against always-small,
   always-large, random and First-Large-k, also under each ``env.eval_caps`` cap: ``report.json``,
   ``report.md``, ``pareto.png`` (:mod:`rl_router.eval.agent_steps_eval`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from envs.agent_steps import ROUTER_STOPS
from rl_router.config import typed
from rl_router.eval.agent_steps_eval import evaluate_agent_steps, llm_router_player
from rl_router.loggers import JsonlLogger, MultiLogger
from rl_router.rollout.boundary import (
    BOUNDARY_MD,
    SFT_JSONL,
    boundary_stage,
    sft_sample,
)
from rl_router.rollout.driver import RolloutDriver, task_prompt
from rl_router.rollout.env_factory import budget_env_maker, env_factory, env_schema
from rl_router.run import METRICS, SFT_DIR, start_run
from rl_router.trainers import sft
from rl_router.trainers.grpo import (
    AGENT_STEPS_TERMS,
    TRLRollout,
    grpo_args,
    reward_functions,
)
from rl_router.trainers.grpo_run import CHECKPOINTS, resume_point, train_and_save

log = logging.getLogger(__name__)
REWARD_NAME = "bopo"


def demonstrations(
    make_env: Callable[[Sequence[Mapping[str, Any]]], Any],
    rows: Sequence[Mapping[str, Any]],
    sample: Sequence[Mapping[str, Any]],
    names: Sequence[str],
) -> list[sft.SFTTrajectory]:
    """Text-mode replays of the warm-start sample: each step's reply is the demonstrated tier's number.

    The env's prompt and step texts are what GRPO's rollouts show (masked); the replies are trained.
    The replay is exact with greedy candidates (and cache hits with a caching pool).
    """
    by_id = {str(r["id"]): r for r in rows}
    out = []
    for entry in (e for e in sample if e["tiers"]):
        env = make_env([by_id[str(entry["id"])]])
        try:
            env.reset(seed=0, options={"index": 0})
            prompt, segments = tuple(env.router_prompt()), []
            for tier in entry["tiers"]:
                reply = str(names.index(tier) + 1)
                _, _, terminated, truncated, info = env.step(reply)
                segments.append((reply + "\n", True))
                if terminated or truncated:
                    break
                segments.append((info["env_text"], False))
        finally:
            env.close()
        out.append(sft.SFTTrajectory(str(entry["id"]), prompt, tuple(segments), entry["tiers"][0], ""))
    return out


def train(cfg: DictConfig, run_dir: Path, progress: bool | None = None) -> dict[str, Any]:
    """Boundary rollouts, optional SFT warm start, GRPO and held-out evaluation in ``run_dir``."""
    from datasets import Dataset
    from hydra.utils import instantiate
    from transformers import AutoTokenizer

    from rl_router.zoo import resolve

    # ---------------------------------------------------------------- setup
    run = start_run(cfg, run_dir, groups=("data",))
    env_cfg, trainer_cfg = env_schema(cfg.env), typed(cfg.trainer)  # env_schema names unknown keys
    unknown = sorted(set(cfg.trainer) - {f.name for f in dataclasses.fields(trainer_cfg)})
    if unknown:
        raise ValueError(f"trainer config key(s) {unknown} are not fields of GRPOTrainerConfig")
    if progress is not None:
        trainer_cfg.progress = progress
    if trainer_cfg.budget.enabled:
        raise ValueError(
            "trainer.budget (a soft Lagrangian budget) does not apply to agent_steps: its hard budget is "
            "env.budget, masked before every step; leave trainer.budget.cost_per_query and "
            "trainer.budget.share unset"
        )
    if trainer_cfg.explore_routes:
        raise ValueError(
            "trainer.explore_routes forces Router-R1 routes (<search>MODEL:); agent_steps routers answer "
            "with a tier, so it does not apply: set trainer.explore_routes=false"
        )
    bopo = env_cfg.bopo
    last = resume_point(run_dir, run.resumed)
    logger = MultiLogger(JsonlLogger(run_dir / METRICS), run.logger)

    # ---------------------------------------------------------------- data and pool
    train_rows, _, test_rows = instantiate(cfg.data)
    train_rows = [dict(r) for r in train_rows][: trainer_cfg.train_limit]
    test_rows = [dict(r) for r in test_rows][: trainer_cfg.eval_limit]
    pool = instantiate(cfg.pool, log_file=run.log_file)
    try:
        names = [d.name for d in pool.descriptors]
        # tier-index envs for the fixed policies (boundary rollouts, capped baselines)
        maker = budget_env_maker(dataclasses.replace(env_cfg, mode="features"), pool)

        # ------------------------------------------------------------ boundary
        rows, table, small, large = boundary_stage(
            maker(train_rows),
            train_rows,
            len(names),
            bopo.repeats,
            bopo.threshold,
            trainer_cfg.eval_batch_size,
            run_dir,
        )

        def text_envs(budget: Any = None) -> Callable[[Sequence[Mapping[str, Any]]], Any]:
            options = env_cfg if budget is None else dataclasses.replace(env_cfg, budget=budget)
            return env_factory(options, pool=pool)

        model_path = resolve(trainer_cfg.model)  # zoo models are materialised; paths and hub ids pass
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

        # ------------------------------------------------------------ warm start
        if trainer_cfg.sft_steps > 0:
            sft_dir = run_dir / SFT_DIR
            if not (sft_dir / "config.json").is_file():
                rng = np.random.default_rng(int(cfg.seed))
                sample = sft_sample(table, small, large, bopo.sft_per_stratum, rng)
                with (run_dir / SFT_JSONL).open("w") as f:
                    f.writelines(json.dumps(s) + "\n" for s in sample)
                trajectories = demonstrations(text_envs(), rows, sample, names)
                log.info("SFT: %d boundary-guided demonstrations", len(trajectories))
                sft.warm_start(model_path, tokenizer, trajectories, sft_dir, trainer_cfg, logger=logger)
            model_path = str(sft_dir)

        # ------------------------------------------------------------ GRPO
        driver = RolloutDriver(
            text_envs(), rows, tokenizer, trainer_cfg.max_turn_tokens, trainer_cfg.max_completion_tokens
        )
        generation = {
            "temperature": trainer_cfg.temperature,
            "top_p": trainer_cfg.top_p,
            "top_k": trainer_cfg.top_k,
            "chunk": trainer_cfg.generation_chunk,
            "stops": ROUTER_STOPS,
        }
        rollout = TRLRollout(driver, None, None, generation=generation)  # the env's reward stands
        funcs, _ = reward_functions(terms=AGENT_STEPS_TERMS, name=REWARD_NAME)
        trained = train_and_save(
            trainer_cfg,
            run_dir,
            model_path=model_path,
            tokenizer=tokenizer,
            rollout=rollout,
            reward_funcs=funcs,
            args=grpo_args(trainer_cfg, run_dir / CHECKPOINTS, terms=AGENT_STEPS_TERMS, stops=ROUTER_STOPS),
            train_dataset=Dataset.from_dict({"prompt": [task_prompt(r) for r in rows]}),
            model_names=names,
            logger=logger,
            resume=last,
        )
        router_dir = trained.router_dir

        # ------------------------------------------------------------ evaluate
        model = trained.model
        player = llm_router_player(
            model,
            tokenizer,
            text_envs,
            test_rows,
            max_turn_tokens=trainer_cfg.max_turn_tokens,
            max_completion_tokens=trainer_cfg.max_completion_tokens,
            batch_size=trainer_cfg.eval_batch_size,
            seed=int(cfg.seed),
        )
        report = evaluate_agent_steps(
            lambda b: maker(test_rows, b),
            test_rows,
            None,
            run_dir,
            num_tiers=len(names),
            max_steps=env_cfg.max_steps,
            budget=env_cfg.budget,
            caps=env_cfg.eval_caps,
            num_envs=trainer_cfg.eval_batch_size,
            seed=int(cfg.seed),
            router_player=player,
        )
    finally:
        pool.close()

    # ---------------------------------------------------------------- log and clean up
    r = report["policies"]["router"]
    step = trained.step
    logger.log(
        {
            "eval/success": r["success"],
            "eval/cost_usd": r["cost_usd"],
            "eval/over_budget": report["over_budget"],
        },
        step,
    )
    logger.finish()
    if trainer_cfg.progress:
        print((run_dir / BOUNDARY_MD).read_text().split("\n\n| task")[0])
        print((run_dir / "report.md").read_text())
        print(report["bench"])
        print(f"run directory: {run_dir}")
    return {
        "history": trained.history,
        "report": report,
        "boundary": table,
        "run_dir": run_dir,
        "router_dir": router_dir,
    }
