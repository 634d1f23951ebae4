"""Recipe: a small policy router (select mode) trained with our PPO, then evaluated on held-out rows.

``rl-router train experiment=default`` (``trainer=ppo`` with a ``select``-mode env). Reads top to
bottom:

1. *setup* — :func:`rl_router.run.start_run`: the run directory (``outputs/<name>/<date>_<time>/``
   or the run being resumed), the recorded ``config.yaml``, seeds, the logger;
2. *data and pool* — a routing table split into train / held-out rows served by a replay pool
   (``data=routellm``), or questions for a live pool (``data=local_mix pool=local``) on which every
   candidate's answers are recorded first (:mod:`rl_router.rollout.live_table`);
3. *env* — ``num_envs`` copies of the select-mode :class:`~envs.multi_llm_qa.MultiLLMQAEnv`
   sharing one cost normaliser;
4. *train* — PPO (:func:`rl_router.trainers.ppo.train`) with a progress bar showing return, reward
   terms, dollars and route shares; checkpoints in ``checkpoints/``. Under a budget
   (``trainer.budget.cost_per_query`` or ``trainer.budget.share.<model>``) the budget's multiplier is
   the only price of cost: the env is built with ``alpha=0`` (reward = outcome) and PPO adds
   ``-lam * usage / target`` (:mod:`rewards.budget`);
5. *evaluate* — the trained router against random, single-model and oracle baselines on the
   test rows (``report.json``, ``report.md`` and ``pareto.png`` in the run directory) and on the
   validation rows (``validation/``: what sweeps and defaults are chosen on).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from rewards.budget import BudgetConfig
from rewards.cost import PercentileCostNormalizer
from rl_router.config import typed
from rl_router.data.routing_table import RoutingTable
from rl_router.data.splits import DataSplits
from rl_router.embeddings import embed_queries
from rl_router.eval.table_eval import evaluate_router_on_table, table_columns
from rl_router.rollout.env_factory import env_factory
from rl_router.rollout.live_table import collect_routing_table
from rl_router.routers.policy import PolicyRouter, build_policy, pool_descriptors
from rl_router.run import VALIDATION_DIR, start_run
from rl_router.trainers import ppo

log = logging.getLogger(__name__)


def table_examples(table: RoutingTable) -> list[dict[str, Any]]:
    """Env rows for a routing table: the replay pool finds each answer by ``query_id``."""
    return [
        {"id": qid, "question": prompt, "golden_answers": [], "query_id": qid, "source": source}
        for qid, prompt, source in zip(table.ids, table.prompts, table.sources, strict=True)
    ]


def route_metrics(model_names: Sequence[str]) -> Callable[[dict[str, Any]], dict[str, float]]:
    """Per-step metrics from the vector env's ``final_info``: reward terms, dollars, route shares."""
    names = np.asarray(model_names, dtype=object)

    def metrics(info: dict[str, Any]) -> dict[str, float]:
        final = info.get("final_info")
        if not final or "model" not in final:
            return {}
        ended = np.asarray(final["_model"], dtype=bool)
        chosen = np.asarray(final["model"], dtype=object)[ended]
        terms = final["reward_terms"]
        out = {f"train/reward/{key}": float(np.mean(terms[key][ended])) for key in ("outcome", "cost")}
        out["rollout/cost_usd"] = float(np.mean(final["cost_usd"][ended]))
        out["rollout/candidate_error"] = float(np.mean(final["candidate_error"][ended]))
        out.update({f"rollout/route_share/{n}": float(np.mean(chosen == n)) for n in names})
        return out

    return metrics


def budget_usage(budget: BudgetConfig, model_names: Sequence[str]) -> ppo.UsageFn | None:
    """What a step uses of ``budget``: its list-price dollars, or 1 where it picked the capped model.

    Returns None when no budget is set.

    Raises:
        ValueError: the share budget names a model the pool lacks (the message lists the pool's).
    """
    if not budget.enabled:
        return None
    if budget.model is not None:
        if budget.model not in model_names:
            raise ValueError(
                f"trainer.budget.share.{budget.model}: the pool has no model {budget.model!r}; "
                f"its models are {list(model_names)}"
            )
        capped = list(model_names).index(budget.model)
        return lambda info, actions: (np.asarray(actions) == capped).astype(np.float64)

    def dollars(info: dict[str, Any], actions: np.ndarray) -> np.ndarray:
        final = info["final_info"]  # select episodes end every step: each sub-env's cost is here
        return np.where(final["_cost_usd"], final["cost_usd"], 0.0).astype(np.float64)

    return dollars


def budget_reached(budget: BudgetConfig, overall: dict[str, Any]) -> float:
    """What the router's greedy decisions spent on a report's rows, in the budget's unit."""
    if budget.model is not None:
        return overall["router"]["route_share"][budget.model]
    return overall["router"]["dollars_per_query"]


def train(cfg: DictConfig, run_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Train the configured router in ``run_dir`` and evaluate it on the held-out split.

    Returns:
        ``{"train": <last PPO metrics>, "report": <report.json contents>, "run_dir": run_dir}``.
    """
    # ---------------------------------------------------------------- setup
    run = start_run(cfg, run_dir, groups=("data", "policy"))  # every group's checks run before any work
    env_cfg, trainer_cfg = typed(cfg.env), typed(cfg.trainer)
    budget = trainer_cfg.budget
    usage = budget_usage(budget, [d.name for d in pool_descriptors(cfg.pool)])  # a misspelt model stops here
    if budget.enabled and env_cfg.alpha != 0.0:
        log.info("trainer.budget prices cost by its multiplier: env.alpha=%g is set to 0", env_cfg.alpha)
        env_cfg = dataclasses.replace(env_cfg, alpha=0.0)
    logger = run.logger

    # ---------------------------------------------------------------- data and pool
    from hydra.utils import instantiate

    data = instantiate(cfg.data)
    if not isinstance(data, DataSplits):
        raise ValueError(
            f"data={cfg.data._target_} gives no held-out splits: select-mode PPO needs train / validation "
            "/ test, e.g. data=routellm (recorded outcomes) or data=local_mix (questions for a live pool)"
        )
    if all(isinstance(part, RoutingTable) for part in data):
        # recorded outcomes: the replay pool answers from the training rows only
        train_table, val_table, test_table = data
        pool = instantiate(cfg.pool, table=train_table, log_file=run.log_file)
        examples = table_examples(train_table)
    else:
        # questions for a live pool: record every candidate on every row once, in big batches; the
        # env's calls during training are then response-cache hits charged at unchanged list prices
        pool = instantiate(cfg.pool, log_file=run.log_file)
        examples = [dict(row, query_id=row["id"]) for row in data.train]
        train_table = collect_routing_table(pool, examples, name=f"{cfg.name}/train")
        val_table = collect_routing_table(pool, list(data.validation), name=f"{cfg.name}/validation")
        test_table = collect_routing_table(pool, list(data.test), name=f"{cfg.name}/test")
        log.info("live accuracy: train %s, test %s", train_table.accuracy(), test_table.accuracy())
    log.info("data: %d train, %d validation, %d test rows", len(train_table), len(val_table), len(test_table))

    # ---------------------------------------------------------------- env
    try:
        descriptors = list(pool.descriptors)
        features = tuple(env_cfg.features)  # the query blocks the env observes and the router computes
        embeddings = (
            embed_queries(train_table.prompts, progress=progress) if "embedding" in features else None
        )
        if env_cfg.cost_reference == "table":
            # every candidate's list price on every training row: C compares against the whole pool
            normalizer = PercentileCostNormalizer.from_reference(
                table_columns(train_table, descriptors)[1].ravel()
            )
        else:
            normalizer = PercentileCostNormalizer(window=env_cfg.cost_window)  # one window for all sub-envs

        make_env = env_factory(env_cfg, pool=pool, normalizer=normalizer, embeddings=embeddings)
        envs = ppo.make_vec_env([lambda: make_env(examples)] * trainer_cfg.num_envs)
        policy = build_policy(cfg.policy, descriptors, features)
        if getattr(policy, "input_norm", False):  # standardised on the training rows' observations
            policy.fit_input_norm(envs.envs[0].unwrapped.observations())

        # ------------------------------------------------------------ train
        result = ppo.train(
            trainer_cfg,
            envs,
            policy,
            run_dir=run_dir,
            logger=logger,
            progress=progress,
            resume=run.resumed,
            trust_pickles=cfg.trust_pickles,
            metrics_fn=route_metrics([d.name for d in descriptors]),
            budget_usage=usage,
        )
        envs.close()
    finally:
        pool.close()

    # ---------------------------------------------------------------- evaluate
    # validation: what sweeps and defaults are chosen on; test: what is reported, chosen on by no one
    router = PolicyRouter(policy.eval(), descriptors, checkpoint=result["checkpoint"], features=features)
    validation = evaluate_router_on_table(router, val_table, run_dir / VALIDATION_DIR, progress=False)
    report = evaluate_router_on_table(router, test_table, run_dir, progress=progress)
    eval_metrics = {}
    for split, rep in (("val", validation), ("eval", report)):
        overall = rep["overall"]["router"]
        eval_metrics |= {
            f"{split}/accuracy": overall["accuracy"],
            f"{split}/cost_usd": overall["dollars_per_query"],
        }
        eval_metrics |= {
            f"{split}/{k}": overall[k] for k in ("apgr", "cpt50", "cpt80") if overall.get(k) is not None
        }
    if budget.enabled:  # held-out greedy decisions against the budget trained for
        eval_metrics |= {"eval/budget/target": budget.target}
        eval_metrics |= {
            f"{split}/budget/reached": budget_reached(budget, rep["overall"])
            for split, rep in (("val", validation), ("eval", report))
        }
        log.info("budget %g: reached %g on the test rows", budget.target, eval_metrics["eval/budget/reached"])
    logger.log(eval_metrics, result["global_step"])
    logger.finish()
    print((run_dir / "report.md").read_text())
    print(f"run directory: {run_dir}")
    return {"train": result, "report": report, "run_dir": run_dir}
