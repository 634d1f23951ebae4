"""Budget-aware PPO training (`trainer.budget`): checks at start, what a step uses, a tiny run, resume."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from rewards.budget import BudgetConfig
from rl_router.config import typed
from rl_router.recipes.policy_router_ppo import budget_usage
from rl_router.recipes.policy_router_ppo import train as train_in

BUDGET = 0.001  # $ per query: about a quarter of always-GPT-4's on the tiny rows
TINY = [  # 16 rollouts of 128 queries, with the settings budget runs train with (scripts/sweep_cost.py)
    "debug=tiny",
    "data.limit=300",
    "trainer.total_steps=2048",
    "trainer.checkpoint_every=1024",
    "trainer.lr=1e-3",
    "trainer.update_epochs=10",
    "trainer.num_steps=16",
    "trainer.num_minibatches=4",
    f"trainer.budget.cost_per_query={BUDGET}",
]


def test_a_misspelt_budget_model_fails_at_start_naming_it_and_the_pool(compose, tmp_path):
    cfg = compose(["debug=tiny", "+trainer.budget.share.gpt4=0.5"])
    with pytest.raises(
        ValueError, match=r"trainer.budget.share.gpt4: .* models are \['mixtral-8x7b', 'gpt-4'\]"
    ):
        train_in(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing was trained


def test_a_budget_is_one_kind(compose):
    cfg = compose(["trainer.budget.cost_per_query=0.001", "+trainer.budget.share.gpt-4=0.5"])
    with pytest.raises(ValueError, match="a budget is one kind, keep one"):
        typed(cfg.trainer)
    assert typed(compose(["+trainer.budget.share.gpt-4=0.3"]).trainer).budget.target == 0.3


def test_the_budget_experiment_is_the_default_one_with_the_budget_settings(compose):
    cfg = compose(["experiment=budget", "trainer.budget.cost_per_query=0.0017"])
    default = compose([])
    trainer = typed(cfg.trainer)
    assert cfg.name == "budget" and trainer.budget.target == 0.0017
    assert (trainer.lr, trainer.update_epochs, trainer.batch_size, trainer.minibatch_size) == (
        1e-3,
        10,
        128,
        32,
    )
    assert cfg.env == default.env and cfg.data == default.data and cfg.pool == default.pool
    assert typed(cfg.trainer).budget.share == {}  # the listed models are unset placeholders


def test_the_budget_experiment_takes_a_share_without_a_plus(compose):
    budget = typed(compose(["experiment=budget", "trainer.budget.share.gpt-4=0.5"]).trainer).budget
    assert (budget.share, budget.model, budget.target) == ({"gpt-4": 0.5}, "gpt-4", 0.5)
    with pytest.raises(ValueError, match="a budget caps one model's share, keep one"):
        typed(
            compose(
                [
                    "experiment=budget",
                    "trainer.budget.share.gpt-4=0.5",
                    "trainer.budget.share.mixtral-8x7b=0.2",
                ]
            ).trainer
        )


def test_a_step_uses_its_dollars_or_its_pick_of_the_capped_model():
    names = ["mixtral-8x7b", "gpt-4"]
    info = {"final_info": {"cost_usd": np.array([0.004, 0.00003]), "_cost_usd": np.array([True, True])}}
    actions = np.array([1, 0])
    dollars = budget_usage(BudgetConfig(cost_per_query=0.001), names)
    assert dollars(info, actions).tolist() == [0.004, 0.00003]
    share = budget_usage(BudgetConfig(share={"gpt-4": 0.3}), names)
    assert share(info, actions).tolist() == [1.0, 0.0]
    assert budget_usage(BudgetConfig(), names) is None


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory):
    from hydra import compose, initialize_config_dir

    from rl_router.cli import conf_dir
    from rl_router.registry import register_configs

    register_configs()
    run_dir = tmp_path_factory.mktemp("budget_run")
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=TINY)
    out = train_in(cfg, run_dir, progress=False)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return cfg, run_dir, out, rows


def test_tiny_budget_run_logs_lambda_and_moves_its_spend_to_the_budget(budget_run):
    _, _, _, rows = budget_run
    assert all(
        {"train/budget/lambda", "train/budget/measured", "train/reward/budget"} <= set(r) for r in rows
    )
    # under a budget the env's Router-R1 cost term is off: the env's reward is the outcome alone
    assert all(r["train/episode/return"] == pytest.approx(r["train/reward/outcome"]) for r in rows)
    lam = [r["train/budget/lambda"] for r in rows]
    measured = [r["train/budget/measured"] for r in rows]
    assert measured[0] > 3 * BUDGET and lam[0] > 0.0  # the untrained argmax is GPT-4: lam rises
    # the policy then swings to Mixtral, underspends, and lam falls back to 0
    assert any(m < BUDGET and v == 0.0 for m, v in zip(measured, lam, strict=True))
    last = np.mean(measured[-4:])
    assert abs(last - BUDGET) < 0.5 * BUDGET  # the greedy spend settles near the budget


def test_resumed_budget_run_continues_lambda_exactly(budget_run):
    from hydra import compose, initialize_config_dir

    from rl_router.cli import conf_dir

    _, run_dir, _, rows = budget_run
    shutil.rmtree(run_dir / "checkpoints" / "step_0000002048")  # as if the run had stopped at step 1024
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        again = compose(config_name="config", overrides=[*TINY, f"resume={run_dir}"])
    train_in(again, run_dir, progress=False)
    resumed = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    keys = ("step", "train/budget/lambda", "train/budget/measured", "train/reward/outcome")
    assert [[r[k] for k in keys] for r in resumed] == [[r[k] for k in keys] for r in rows]
