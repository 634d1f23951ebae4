"""rl-router calibrate on memory_tiers runs: one offset per tier, fitted by replaying the training
questions, honoured by eval, export and load_router (fake pool, hashing encoder)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rl_router.routers.calibration import CALIBRATION
from rl_router.routers.load import load_router
from rl_router.routers.memory_tiers import MemoryTiersRouter

CPU = ["experiment=memory_tiers", "pool=memory_tiers_fake", "env.encoder=hashing", "logger=none"]
TINY = ["data.per_conversation=4", "trainer.batch_episodes=8", "trainer.total_episodes=16"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A trained memory_tiers run: 24 training, 8 test questions."""
    from hydra import compose, initialize_config_dir

    from rl_router.cli import conf_dir
    from rl_router.recipes.memory_tiers_ppo import train
    from rl_router.registry import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*CPU, *TINY])
    run_dir = tmp_path_factory.mktemp("memory_tiers_run")
    train(cfg, run_dir, progress=False)
    return run_dir


def calibrate(compose, run_dir, *targets):
    from rl_router.eval.calibrate import run_calibrate

    return run_calibrate(compose([f"checkpoint={run_dir}", *targets], config_name="calibrate"))


def test_a_share_target_is_met_on_the_training_decisions_and_eval_reports_it(compose, run):
    router = load_router(run)
    assert isinstance(router, MemoryTiersRouter) and router.calibration is None
    fit = calibrate(compose, run, "target.share=0.4")
    assert fit.target == {"share": 0.4, "model": "high"} and fit.models == ["low", "mid", "high"]
    assert fit.fitted_on["rows"] == 24 and "120 module decisions" in fit.fitted_on["source"]
    assert fit.achieved["route_share"]["high"] == pytest.approx(0.4, abs=0.03)  # 120 decisions
    assert fit.offsets[:2] == [0.0, 0.0] and fit.cost_model is None
    assert json.loads((run / CALIBRATION).read_text())["target"] == fit.target
    assert load_router(run).calibration == fit  # the loaded router comes back at the operating point

    from rl_router.eval.run import run_eval

    report = run_eval(compose([f"checkpoint={run}", f"out_dir={run / 'eval_share'}"], config_name="eval"))
    routed = report["router"]
    assert routed["target"] == fit.target
    assert set(routed["route_share"]) == {"low", "mid", "high"}
    assert sum(routed["route_share"].values()) == pytest.approx(1.0)
    assert routed["dollars_per_query"] == routed["cost_usd"] > 0
    # held out: 8 test questions, 40 decisions; the share lands near the target, not on it
    assert routed["route_share"]["high"] == pytest.approx(0.4, abs=0.15)
    assert "Operating point (calibration.json)" in (run / "eval_share" / "report.md").read_text()

    # replayed with the offsets, the training questions reach what calibrate printed
    from rl_router.eval.memory_tiers import run_memory_tiers_eval

    raw = run_eval(
        compose(
            [f"checkpoint={run}", f"out_dir={run / 'eval_raw'}", "split=train", "calibration=false"],
            config_name="eval",
        )
    )  # rl-router eval calibration=false reaches the tier eval
    on_train = run_memory_tiers_eval(run, run / "eval_train", split="train")
    assert "target" not in raw["router"]
    assert on_train["router"]["route_share"]["high"] == pytest.approx(fit.achieved["route_share"]["high"])
    assert on_train["router"]["cost_usd"] == pytest.approx(fit.achieved["dollars_per_query"])


def test_a_cost_target_lands_within_ten_percent_and_export_carries_it(compose, run, tmp_path):
    low = run_cost(run, "all_low")
    high = run_cost(run, "all_high")
    budget = low + 0.35 * (high - low)
    fit = calibrate(compose, run, f"target.cost_per_query={budget}")
    assert fit.target == {"cost_per_query": budget}
    assert fit.achieved["dollars_per_query"] == pytest.approx(budget, rel=0.10)
    expected = fit.cost_model["expected_dollars"]
    assert expected["low"] < expected["mid"] < expected["high"]
    assert np.allclose(np.asarray(fit.offsets), -fit.cost_model["lambda"] * np.array(list(expected.values())))

    from rl_router.eval.memory_tiers_export import load_memory_tiers_policy
    from rl_router.hub import export_router

    folder = export_router(run, "alice/memory-tiers", tmp_path / "export")
    assert (folder / CALIBRATION).is_file() and "Operating point" in (folder / "README.md").read_text()
    exported = load_router(folder)
    assert isinstance(exported, MemoryTiersRouter) and exported.calibration == fit
    width = 2 * exported.policy.embed_dim
    obs = np.concatenate(
        [np.random.default_rng(0).uniform(-1, 1, (6, width)), np.eye(5)[[0, 1, 2, 3, 4, 0]]], 1
    )
    assert np.array_equal(exported.decide(obs), load_router(run).decide(obs))
    import torch

    logits, _ = load_memory_tiers_policy(folder)(torch.as_tensor(obs, dtype=torch.float32))
    assert logits.argmax(-1).tolist() == exported.decide(obs).tolist()

    # calibrate on the export: the same replay, from the pool the export recorded
    again = calibrate(compose, folder, f"target.cost_per_query={budget}")
    assert again.offsets == pytest.approx(fit.offsets)


def test_prompts_and_unknown_tiers_are_refused(compose, run, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"question": "when?"}\n')
    with pytest.raises(ValueError, match="memory_tiers router"):
        calibrate(compose, run, "target.share=0.2", f"prompts={prompts}")
    with pytest.raises(ValueError, match="not a tier"):
        calibrate(compose, run, "target.share=0.2", "target.model=gpt-4")
    with pytest.raises(ValueError, match="below .* per query, what the cheapest tier"):
        calibrate(compose, run, "target.cost_per_query=1e-9")


def run_cost(run, name):
    return json.loads((run / "report.json").read_text())["baselines"][name]["cost_usd"]
