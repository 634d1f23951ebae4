"""memory_tiers recipes: the CPU experiment trains and reports on a fake pool; the BudgetMem GPU config
composes and its pool builds with the LLaMA models swapped for fake backends."""

from __future__ import annotations

import dataclasses
import json

import pytest

from envs.memory_tiers import MemoryTiersEnv
from rl_router.config import typed
from rl_router.pool.build import build_pool
from rl_router.recipes import recipe_for
from rl_router.recipes.memory_tiers_ppo import EnvMaker, train
from rl_router.routers.policy import pool_descriptors

CPU = ["experiment=memory_tiers", "pool=memory_tiers_fake", "env.encoder=hashing", "logger=none"]


def test_cpu_experiment_trains_and_writes_its_report(compose, tmp_path):
    cfg = compose([*CPU, "data.per_conversation=2", "trainer.batch_episodes=4", "trainer.total_episodes=8"])
    assert recipe_for(cfg) is train
    out = train(cfg, tmp_path, progress=False)
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["baselines"]) == {"all_low", "all_mid", "all_high", "random"}
    assert report["router"]["queries"] == 4  # 2 questions x 2 test conversations
    high, low = report["baselines"]["all_high"], report["baselines"]["all_low"]
    assert high["cost_usd"] > low["cost_usd"] > 0
    assert high["tier_share"]["summary"]["high"] == 1.0 and high["off_modal"] == 0.0
    assert (tmp_path / "pareto.png").is_file() and (tmp_path / "validation" / "report.json").is_file()
    assert out["train"]["episodes"] == 8 and (tmp_path / "metrics.jsonl").is_file()

    # rl-router eval on the run: the same router and baselines again, from the checkpoint
    from rl_router.eval.run import run_eval

    again = run_eval(compose([f"checkpoint={tmp_path}", f"out_dir={tmp_path / 'eval'}"], config_name="eval"))
    assert again["router"]["f1"] == pytest.approx(report["router"]["f1"])
    assert again["router"]["modal_choice"] == report["router"]["modal_choice"]
    assert again["baselines"]["all_high"]["cost_usd"] == pytest.approx(high["cost_usd"])
    assert (tmp_path / "eval" / "pareto.png").is_file() and again["checkpoint"] == "step_0000000008"

    # rl-router export: a Hub folder whose policy loads back with the run's weights and decisions
    import torch

    from rl_router import checkpoint as ckpt
    from rl_router.eval.memory_tiers_export import load_memory_tiers_policy
    from rl_router.hub import export_router
    from rl_router.policies.memory_tiers import MemoryTierPolicy

    folder = export_router(tmp_path, "alice/memory-tiers", tmp_path / "export")
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "router_config.json", "pool.json", "README.md", "report.json"} <= names
    assert not any(n.endswith((".pkl", ".pt", ".bin")) for n in names)
    tiers = json.loads((folder / "pool.json").read_text())
    assert [t["tier"] for t in tiers] == ["low", "mid", "high"] and tiers[2]["price_in"] == 0.88
    exported = load_memory_tiers_policy(folder)
    run_policy = MemoryTierPolicy(2 * exported.embed_dim + 5)
    ckpt.load_policy_weights(ckpt.latest_checkpoint(tmp_path), run_policy)
    obs = torch.cat([torch.randn(3, 2 * exported.embed_dim).clamp(-1, 1), torch.eye(5)[:3]], dim=1)
    assert torch.equal(exported(obs)[0], run_policy.eval()(obs)[0])


@pytest.mark.parametrize("pool", ["budgetmem", "budgetmem_api"])
def test_budgetmem_gpu_config_composes_with_its_prices(compose, pool):
    cfg = compose(["experiment=memory_tiers_budgetmem", f"pool={pool}"])
    assert recipe_for(cfg) is train
    env, data = typed(cfg.env), typed(cfg.data)
    assert env.strategy == "capacity" and env.answer.model == "llama-3.1-8b-instruct"
    assert [t.model for t in env.tiers] == [d.name for d in pool_descriptors(cfg.pool)]
    assert [d.price_in for d in pool_descriptors(cfg.pool)] == [0.06, 0.18, 0.88]
    assert data.per_conversation is None and (data.train, data.test) == ([0, 1, 2, 3, 4, 5], [8, 9])
    assert typed(cfg.trainer).batch_episodes == 32
    if pool == "budgetmem":
        models = typed(cfg.pool).models
        assert [m.num_gpus for m in models] == [1, 1, 4] and models[2].vllm.tensor_parallel_size == 4


def test_budgetmem_pool_builds_and_plays_with_fake_backends(compose):
    cfg = compose(["experiment=memory_tiers_budgetmem", "env.encoder=hashing", "data.per_conversation=1"])
    pool_cfg = typed(cfg.pool)
    fakes = [dataclasses.replace(m, backend="fake", ray_actor=False) for m in pool_cfg.models]
    pool = build_pool(dataclasses.replace(pool_cfg, models=fakes, cache=False, ray=pool_cfg.ray))
    try:
        from hydra.utils import instantiate

        rows = instantiate(cfg.data).test
        envs = EnvMaker(cfg.env, pool)(rows, 2)
        for i, env in enumerate(envs):
            env.reset(options={"index": i})
        for tier in (0, 1, 2, 2, 0):
            steps = MemoryTiersEnv.step_batch(envs, [tier, tier])
        episode = steps[0][4]["episode"]
        by_model = envs[0].ledger.by_model()
        assert set(by_model) == {"llama-3.2-3b-instruct", "llama-3.1-8b-instruct", "llama-3.1-70b-instruct"}
        assert by_model["llama-3.1-8b-instruct"]["calls"] == 2  # the temporal module, then the answer
        assert episode["tiers"] == ["low", "mid", "high", "high", "low"]
    finally:
        pool.close()


def test_unpriced_tier_model_stops_the_recipe_at_start(compose, tmp_path):
    cfg = compose([*CPU, "pool.models.0.price_in=0", "pool.models.0.price_out=0", "data.per_conversation=1"])
    with pytest.raises(ValueError, match="smollm2-135m"):
        train(cfg, tmp_path, progress=False)


def test_a_dollar_budget_composes_and_a_share_budget_is_refused(compose, tmp_path):
    from rl_router.recipes.memory_tiers_ppo import check_budget, module_dollars

    cfg = compose([*CPU, "trainer.budget.cost_per_query=0.0002"])
    assert typed(cfg.trainer).budget.target == 0.0002
    check_budget(typed(cfg.trainer))  # dollars per query: accepted
    shared = compose([*CPU, "+trainer.budget.share.high=0.5"])
    with pytest.raises(ValueError, match="routes tiers, not models"):
        train(shared, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").glob("checkpoints/*"))
    assert module_dollars([{"episode": {"cost_usd": 1e-4}}, {"episode": {"cost_usd": 0.0}}]).tolist() == [
        1e-4,
        0.0,
    ]
