"""Recipes are chosen by the trainer and env groups together; the CLI resumes a run on its recorded config."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from rl_router.recipes import recipe_for
from rl_router.recipes.llm_router_grpo import train as grpo_train
from rl_router.recipes.policy_router_ppo import train as ppo_train


def test_each_existing_combination_maps_to_its_recipe(compose):
    assert recipe_for(compose([])) is ppo_train
    assert recipe_for(compose(["experiment=router_r1_tiny"])) is grpo_train


@pytest.mark.parametrize(
    ("overrides", "trainer", "mode"),
    [
        (["experiment=router_r1_tiny", "env=multi_llm_qa"], "GRPOTrainerConfig", "mode=select"),
        (["env=multi_llm_qa_router_r1"], "PPOConfig", "mode=multi_round"),
    ],
)
def test_a_combination_without_a_recipe_stops_naming_both(compose, overrides, trainer, mode):
    with pytest.raises(ValueError, match=rf"no recipe trains trainer {trainer} on env .*\({mode}\)"):
        recipe_for(compose(overrides))


def rl_router(*args: str) -> subprocess.CompletedProcess:
    code = "from rl_router.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def test_cli_resume_keeps_the_recorded_logger_and_refuses_a_changed_key(tmp_path):
    run = tmp_path / "run"
    tiny = ["debug=tiny", "data.limit=200", "trainer.total_steps=128", "trainer.checkpoint_every=64"]
    first = rl_router("train", *tiny, f"hydra.run.dir={run}")
    assert first.returncode == 0, first.stderr[-2000:]
    # resumed without repeating debug=tiny: the recorded config (logger none, 200 rows) continues
    again = rl_router("train", f"resume={run}", "trainer.total_steps=192")
    assert again.returncode == 0, again.stderr[-2000:]
    cfg = OmegaConf.load(run / "config.yaml")
    assert cfg.logger._target_ == "rl_router.loggers.NullLogger" and cfg.data.limit == 200
    assert not (run / "wandb").exists()
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 192 and len(steps) == len(set(steps))
    refused = rl_router("train", f"resume={run}", "env.alpha=0.9")
    assert refused.returncode != 0 and "env.alpha: recorded 0.2, requested 0.9" in refused.stderr
