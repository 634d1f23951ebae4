"""`rl-router train`: config checks at start, a tiny end-to-end run, resume, and the router it leaves."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from rl_router import checkpoint as ckpt
from rl_router.config import typed
from rl_router.data.routellm import load_routing_splits
from rl_router.recipes.policy_router_ppo import train as train_in
from rl_router.routers.load import load_router

TINY = ["debug=tiny", "data.limit=300", "trainer.total_steps=256", "trainer.checkpoint_every=128"]


def cli(*args: str) -> subprocess.CompletedProcess:
    code = "from rl_router.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


def test_misspelt_trainer_key_fails_at_start_naming_it():
    proc = cli("train", "trainer.not_a_key=1", "logger=none")
    assert proc.returncode != 0
    assert "not_a_key" in proc.stderr + proc.stdout


def test_wrongly_typed_value_fails_naming_the_key():
    proc = cli("train", "trainer.lr=fast", "logger=none")
    assert proc.returncode != 0
    assert "trainer.lr" in proc.stderr + proc.stdout


def test_help_lists_commands_and_experiments():
    proc = cli("--help")
    assert proc.returncode == 0
    assert all(word in proc.stdout for word in ("train", "eval", "export", "default"))


@pytest.mark.parametrize("experiment", ["default"])
def test_experiments_compose_to_valid_typed_groups(compose, experiment):
    cfg = compose([f"experiment={experiment}"])
    for group in ("env", "policy", "trainer", "pool", "data", "logger"):
        typed(cfg[group])  # __post_init__ checks run
    assert cfg.name == experiment


def test_post_init_check_names_the_field(compose):
    cfg = compose(["trainer.num_minibatches=3"])  # 8 envs x 4 steps = 32 is not divisible by 3
    with pytest.raises(ValueError, match="trainer.num_minibatches=3"):
        typed(cfg.trainer)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from hydra import compose, initialize_config_dir

    from rl_router.cli import conf_dir
    from rl_router.registry import register_configs

    register_configs()
    run_dir = tmp_path_factory.mktemp("run")
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=TINY)
    return cfg, run_dir, train_in(cfg, run_dir, progress=False)


def test_tiny_run_writes_config_metrics_checkpoints_and_report(tiny_run):
    _, run_dir, out = tiny_run
    assert (run_dir / "config.yaml").is_file()
    assert [p.name for p in sorted((run_dir / "checkpoints").glob("step_*"))] == [
        "step_0000000128",
        "step_0000000256",
    ]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(32, 257, 32))
    shares = [r["rollout/route_share/mixtral-8x7b"] + r["rollout/route_share/gpt-4"] for r in rows]
    assert np.allclose(shares, 1.0)
    assert all(0.0 <= r["train/reward/outcome"] <= 1.0 for r in rows)
    for name in ("report.json", "report.md", "pareto.png"):
        assert (run_dir / name).stat().st_size > 0
    assert out["train"]["global_step"] == 256


def test_report_numbers_match_the_held_out_table(tiny_run):
    _, run_dir, _ = tiny_run
    report = json.loads((run_dir / "report.json").read_text())
    test = load_routing_splits(test_fraction=0.3, split_seed=0, limit=300).test
    strong = test.models.index("gpt-4-1106-preview")
    weak = 1 - strong
    overall = report["overall"]
    assert report["meta"]["rows"] == len(test)
    assert overall["single/gpt-4"]["accuracy"] == pytest.approx(test.scores[:, strong].mean())
    assert overall["single/mixtral-8x7b"]["accuracy"] == pytest.approx(test.scores[:, weak].mean())
    # the oracle is right whenever either model is
    assert overall["oracle"]["accuracy"] == pytest.approx(test.scores.max(axis=1).mean())
    gpt4_dollars = (test.input_tokens[:, strong] + test.output_tokens[:, strong]) * 24.7 / 1e6
    assert overall["single/gpt-4"]["dollars_per_query"] == pytest.approx(gpt4_dollars.mean())
    assert {"apgr", "cpt50", "cpt80"} <= set(overall["router"])
    assert set(report) >= {"overall", "gsm8k", "mmlu", "meta"}


def test_loaded_router_decides_like_the_trained_policy(tiny_run):
    _, run_dir, out = tiny_run
    router = load_router(run_dir)
    test = load_routing_splits(test_fraction=0.3, split_seed=0, limit=300).test
    emb = router.embed(test.prompts)
    report = out["report"]["overall"]["router"]
    probs = router.probs(emb)
    assert probs.shape == (len(test), 2)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    share = (probs.argmax(axis=1) == 1).mean()
    assert share == pytest.approx(report["route_share"]["gpt-4"])
    assert router.route(test.prompts[:3]) == [router.model_names[i] for i in probs[:3].argmax(axis=1)]


def test_input_norm_is_fitted_on_the_training_rows_and_travels_with_the_weights(compose, tmp_path):
    from rl_router.data.features import text_features

    short = ["debug=tiny", "data.limit=300", "trainer.total_steps=64", "trainer.checkpoint_every=64"]
    cfg = compose([*short, "env.features=[embedding,length]", "policy.input_norm=true"])
    train_in(cfg, tmp_path, progress=False)
    policy = load_router(tmp_path).policy
    train = load_routing_splits(test_fraction=0.3, split_seed=0, limit=300).train
    length = text_features(train.prompts, ["length"]).astype(np.float64)  # observation columns 384, 385
    assert np.allclose(policy.obs_shift[384:386].numpy(), length.mean(0), atol=1e-5)
    assert np.allclose(policy.obs_scale[384:386].numpy(), 1.0 / length.std(0), rtol=1e-4)
    # the candidates' descriptor features are the same on every row: passed unchanged
    assert policy.obs_shift[386:].abs().sum() == 0 and bool((policy.obs_scale[386:] == 1).all())


def test_resume_continues_from_the_last_checkpoint(tiny_run, tmp_path):
    from hydra import compose, initialize_config_dir

    from rl_router.cli import conf_dir

    cfg, run_dir, _ = tiny_run
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        longer = compose(
            config_name="config", overrides=[*TINY, "trainer.total_steps=384", f"resume={run_dir}"]
        )
    out = train_in(longer, run_dir, progress=False)
    assert out["train"]["global_step"] == 384
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(32, 385, 32))  # no step logged twice, none missing
    # the resumed run started from the step-256 weights, not from scratch
    assert ckpt.read_optimizer_state(run_dir / "checkpoints" / "step_0000000384")["state"][0]["step"] > 32


def test_eval_of_a_live_pool_run_answers_its_questions_again(compose, tmp_path):
    """A select-mode router trained on questions (not a recorded table) is evaluated on its pool."""
    from rl_router.eval.run import run_eval

    overrides = ["experiment=local_pool", "pool=fake", "logger=none", f"pool.cache_dir={tmp_path / 'cache'}"]
    overrides += ["trainer.total_steps=128", "trainer.checkpoint_every=128"]
    run = tmp_path / "run"
    trained = train_in(compose(overrides), run, progress=False)
    again = run_eval(compose([f"checkpoint={run}", f"out_dir={tmp_path / 'eval'}"], config_name="eval"))
    assert again["meta"]["rows"] == trained["report"]["meta"]["rows"] == 33  # 30% of each source
    assert again["overall"] == trained["report"]["overall"]
