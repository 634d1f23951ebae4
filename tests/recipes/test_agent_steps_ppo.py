"""`rl-router train experiment=agent_steps` end to end with a fake pool and real TextWorldExpress games."""

from __future__ import annotations

import json
import re

import pytest

from rl_router.config import typed
from rl_router.recipes import recipe_for
from rl_router.recipes.agent_steps_ppo import train

TINY = [
    "experiment=agent_steps",
    "pool=fake",
    "logger=none",
    'pool.models.0.fake.answers=["Action: 1","Action: 2","wait what"]',
    'pool.models.1.fake.answers=["Action: 1","Action: 2","Action: 3"]',
    "data.games=[{name: coin, params: 'numLocations=2,includeDoors=0'},{name: simonsays}]",
    "data.train_per_game=2",
    "data.validation_per_game=1",
    "data.test_per_game=2",
    "env.max_steps=4",
    "env.eval_caps=[1]",
    "env.bopo.warm_start_epochs=5",
    "trainer.num_envs=2",
    "trainer.num_steps=8",
    "trainer.total_steps=32",
    "trainer.num_minibatches=2",
    "trainer.checkpoint_every=16",
]


def test_agent_steps_experiment_composes_to_its_recipe(compose):
    cfg = compose(["experiment=agent_steps"])
    for group in ("env", "policy", "trainer", "pool"):
        typed(cfg[group])
    assert recipe_for(cfg) is train and cfg.env.max_steps == 10


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from rl_router.cli import conf_dir, run_dir_resolver
    from rl_router.registry import register_configs

    register_configs()
    if not OmegaConf.has_resolver("rl_run_dir"):
        OmegaConf.register_new_resolver("rl_run_dir", run_dir_resolver, use_cache=True)
    run_dir = tmp_path_factory.mktemp("agent_steps_run")
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*TINY, f"output_root={run_dir}"])
    return train(cfg, run_dir, progress=False)


def test_tiny_run_writes_taxonomy_sft_sample_checkpoints_and_report(tiny_run):
    run_dir = tiny_run["run_dir"]
    for name in ("boundary.json", "boundary.md", "sft.jsonl", "report.json", "report.md", "pareto.png"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "validation" / "report.json").is_file()
    assert sorted(int(p.name.split("_")[1]) for p in (run_dir / "checkpoints").iterdir()) == [16, 32]
    table = json.loads((run_dir / "boundary.json").read_text())["table"]
    assert len(table) == 4 and {t["difficulty"] for t in table} <= {"easy", "hard", "intractable"}
    sample = [json.loads(line) for line in (run_dir / "sft.jsonl").read_text().splitlines()]
    for entry in sample:  # Easy and Hard tasks keep a successful trajectory; Intractable a cheap one
        task = next(t for t in table if t["id"] == entry["id"])
        assert entry["difficulty"] == task["difficulty"] and entry["tiers"]


def test_tiny_run_scores_router_and_baselines_without_overspending(tiny_run):
    report = tiny_run["report"]
    assert {"router", "always_small", "always_large", "random", "first_large_1"} <= set(report["policies"])
    assert report["over_budget"] == 0 and set(report["caps"]) == {"1"}
    assert report["caps"]["1"]["always_large"]["share/fake-large"] <= 0.5  # one large call per episode
    assert re.fullmatch(
        r"always_small_sr=\S+ always_large_sr=\S+ first_large_sr=\S+ random_sr=\S+ router_sr=\S+ "
        r"router_cost_ratio=\S+ over_budget=0",
        report["bench"],
    )
    small, large = report["policies"]["always_small"], report["policies"]["always_large"]
    assert small["cost_usd"] < large["cost_usd"]


def test_rl_router_eval_rescores_the_run_to_the_same_numbers(tiny_run, compose, tmp_path):
    from rl_router.eval.run import run_eval

    run_dir = tiny_run["run_dir"]
    cfg = compose([f"checkpoint={run_dir}", f"out_dir={tmp_path}"], config_name="eval")
    report = run_eval(cfg)
    assert (tmp_path / "report.md").is_file() and (tmp_path / "pareto.png").is_file()
    trained = tiny_run["report"]["policies"]
    for name in ("router", "always_small", "always_large"):
        assert report["policies"][name]["success"] == trained[name]["success"]
        assert report["policies"][name]["cost_usd"] == pytest.approx(trained[name]["cost_usd"])
    assert report["bench"] == tiny_run["report"]["bench"]


def test_rl_router_export_writes_a_folder_that_decides_like_the_run(tiny_run, tmp_path):
    import torch

    from rl_router import checkpoint as ckpt
    from rl_router.eval.agent_steps_export import load_agent_steps_policy
    from rl_router.hub import export_router

    run_dir = tiny_run["run_dir"]
    folder = export_router(run_dir, "alice/agent-steps", tmp_path / "export")
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "router_config.json", "pool.json", "README.md", "report.json"} <= names
    assert not any(n.endswith((".pt", ".pkl", ".bin")) for n in names)
    policy = load_agent_steps_policy(folder)
    trained = tiny_run["train"]["checkpoint"]
    assert ckpt.checkpoint_step(trained) == 32 and ckpt.weights_digest(policy) == ckpt.weights_digest(
        _run_policy(tiny_run, policy)
    )
    obs = torch.randn(3, policy.actor[0].in_features)
    mask = torch.tensor([[True, True], [True, False], [True, True]])
    assert policy(obs, mask)[0].argmax(-1)[1].item() == 0  # a masked tier is never chosen


def _run_policy(tiny_run, like):
    import copy

    from rl_router import checkpoint as ckpt

    policy = copy.deepcopy(like)
    ckpt.load_policy_weights(tiny_run["train"]["checkpoint"], policy)
    return policy
