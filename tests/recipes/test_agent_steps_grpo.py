"""`experiment=agent_steps_grpo`: an LLM tier router trained with TRL GRPO through the rollout driver.

Configs compose (CPU and GPU) and refuse misspelt keys; one TRL step on scripted agent_steps episodes
gets a gradient from the env's reward; the whole recipe runs on real TextWorldExpress games with a
fake pool and a tiny random router, and `rl-router eval` loads and scores what it wrote; (slow) two
GRPO steps of the real SmolLM2 router.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch
from agent_steps_helpers import ROWS, CorridorGame, make_pool
from grpo_helpers import tiny_model, tiny_tokenizer
from transformers import AutoModelForCausalLM

from envs.agent_steps import AgentStepsEnv
from rl_router.config import typed
from rl_router.generation import Segment
from rl_router.recipes import recipe_for
from rl_router.recipes.agent_steps_grpo import train
from rl_router.rollout.driver import RolloutDriver, task_prompt
from rl_router.trainers.grpo import AGENT_STEPS_TERMS, GRPOTrainerConfig, TRLRollout, grpo_args

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


# -- configs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("experiment", "model", "suite", "pool"),
    [
        ("agent_steps_grpo", "smollm2-135m-instruct", "textworld_express", "local_hf"),
        ("agent_steps_bopo_grpo", "Qwen/Qwen2.5-1.5B-Instruct", "scienceworld", "agent_steps_bopo"),
    ],
)
def test_experiments_compose_to_the_grpo_recipe(compose, experiment, model, suite, pool):
    cfg = compose([f"experiment={experiment}"])
    for group in ("pool", "data", "logger"):
        typed(cfg[group])
    env, trainer = typed(cfg.env), typed(cfg.trainer)
    assert recipe_for(cfg) is train
    assert (env.mode, env.suite, trainer.model, cfg.pool.name) == ("text", suite, model, pool)
    assert isinstance(trainer, GRPOTrainerConfig) and not trainer.budget.enabled
    if experiment == "agent_steps_bopo_grpo":
        assert trainer.use_vllm and trainer.bf16 and not trainer.use_cpu and len(cfg.data.games) == 30
    else:
        assert trainer.use_cpu and [m.backend for m in typed(cfg.pool).models] == ["hf", "hf"]


@pytest.mark.parametrize("override", ["env.max_stepz=3", "trainer.num_generation=3"])
def test_a_misspelt_key_fails_at_compose_naming_it(compose, override):
    with pytest.raises(Exception, match=override.split("=")[0]):
        compose(["experiment=agent_steps_grpo", override])


@pytest.mark.parametrize("override", ["+env.max_stepz=3", "+trainer.num_generation=3"])
def test_a_forced_misspelt_key_stops_the_recipe_at_start_naming_it(compose, override, tmp_path):
    key = override.split("=")[0].split(".")[-1]
    with pytest.raises(ValueError, match=key):
        train(compose(["experiment=agent_steps_grpo", "pool=fake", "logger=none", override]), tmp_path)
    assert not (tmp_path / "boundary.json").exists()  # nothing ran


# -- one TRL step on agent_steps episodes ------------------------------------------------------------
class ScriptedRollout(TRLRollout):
    """The TRL bridge with scripted replies in place of the model's generate: within each group the
    first sample always names tier 2 (large: "go forward", it wins), the second tier 1 (small: "wait")."""

    @contextlib.contextmanager
    def generator(self, trainer):
        tokenizer = self.driver.tokenizer

        def generate(contexts, limits):
            replies = []
            for k, context in enumerate(contexts):  # later turns repeat the episode's first reply
                after = tokenizer.decode(context).split("<|assistant|>", 1)[1]
                replies.append(after[:2] if after else ("2\n" if k % 2 == 0 else "1\n"))
            return [
                Segment(tokenizer(r, add_special_tokens=False)["input_ids"][:n], None, "stop")
                for r, n in zip(replies, limits, strict=True)
            ]

        yield generate


def test_one_trl_step_on_agent_steps_episodes_follows_the_env_reward(tok, tmp_path):
    from datasets import Dataset
    from trl import GRPOTrainer

    from rl_router.loggers import NullLogger
    from rl_router.trainers.grpo import metrics_callback, reward_functions

    pool = make_pool(["Action: wait"], ["Action: go forward"])

    def make_env(rows):  # a cap of 4 large calls: the budget never decides these episodes
        return AgentStepsEnv(
            pool, rows, game=CorridorGame(), mode="text", max_steps=4, budget={"low": 4, "high": 4}
        )

    driver = RolloutDriver(make_env, ROWS, tok, 8, 1024)
    rollout = ScriptedRollout(driver, None, None)
    cfg = GRPOTrainerConfig(
        lr=1e-2, max_steps=1, questions_per_step=2, num_generations=2, micro_batch_size=4, beta=0.0,
        max_turn_tokens=8, max_completion_tokens=1024, progress=False, checkpoint_every=1,
    )  # fmt: skip
    funcs, _ = reward_functions(terms=AGENT_STEPS_TERMS, name="bopo")
    bridge = metrics_callback(rollout, ["small", "large"], NullLogger(), progress=False)
    model = tiny_model(tok)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=grpo_args(cfg, tmp_path / "checkpoints", terms=AGENT_STEPS_TERMS),
        train_dataset=Dataset.from_dict({"prompt": [task_prompt(r) for r in ROWS[:2]]}),
        processing_class=tok,
        rollout_func=rollout,
        callbacks=[bridge],
    )
    trainer.train()
    row = next(r for r in bridge.history if "train/reward/total" in r)
    # corridors 0 and 1 need 2 and 3 forwards: the large sample wins both, the small one neither
    assert row["train/reward/success"] == pytest.approx(0.5) and row["rollout/accuracy"] == 0.5
    assert row["train/reward/format"] == 0.0 and row["rollout/format_valid"] == 1.0
    assert row["rollout/route_share/large"] == pytest.approx(5 / (5 + 8))  # 2 + 3 large, 4 + 4 small steps
    assert row["train/frac_reward_zero_std"] == 0.0 and row["train/grad_norm"] > 0.0
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and (tmp_path / "checkpoints" / "checkpoint-1").is_dir()


# -- the whole recipe, then `rl-router eval` ---------------------------------------------------------
def tiny_overrides(model_dir: Path) -> list[str]:
    return [
        "experiment=agent_steps_grpo",
        "pool=fake",
        "logger=none",
        'pool.models.0.fake.answers=["Action: 1","wait what"]',
        'pool.models.1.fake.answers=["Action: 1","Action: 2"]',
        "data.games=[{name: coin, params: 'numLocations=2,includeDoors=0'}]",
        "data.train_per_game=2",
        "data.test_per_game=2",
        "env.max_steps=3",
        "env.eval_caps=[1]",
        f"trainer.model={model_dir}",
        "trainer.max_steps=1",
        "trainer.sft_steps=1",
        "trainer.questions_per_step=2",
        "trainer.num_generations=2",
        "trainer.micro_batch_size=4",
        "trainer.max_turn_tokens=4",
        "trainer.max_completion_tokens=1024",
        "trainer.checkpoint_every=1",
        "trainer.eval_batch_size=2",
        "trainer.progress=false",
    ]


def test_tiny_run_trains_checkpoints_and_is_scored_again_by_rl_router_eval(compose, tok, tmp_path):
    from rl_router.eval.run import run_eval

    model_dir = tmp_path / "tiny-router"
    tiny_model(tok).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    run = tmp_path / "run"
    result = train(compose(tiny_overrides(model_dir)), run)
    assert (run / "checkpoints" / "checkpoint-1").is_dir() and (run / "router" / "config.json").is_file()
    for name in ("boundary.json", "boundary.md", "sft.jsonl", "report.json", "report.md", "pareto.png"):
        assert (run / name).is_file(), name
    assert (run / "sft_model" / "config.json").is_file()  # the boundary-guided warm start ran
    episodes = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
    assert len(episodes) == 4 and all(set(AGENT_STEPS_TERMS) <= set(e["reward_terms"]) for e in episodes)
    assert all(not e["over_budget"] and e["calls"]["fake-large"] <= e["budget_cap"] for e in episodes)
    report = result["report"]
    assert report["policies"]["router"]["episodes"] == 2 and report["over_budget"] == 0
    assert set(report["caps"]["1"]) == {"always_small", "always_large", "random", "router"}
    assert report["bench"].startswith("always_small_sr=") and report["bench"].endswith("over_budget=0")
    again = run_eval(compose([f"checkpoint={run}", f"out_dir={tmp_path / 'eval'}"], config_name="eval"))
    assert again["policies"]["router"] == report["policies"]["router"]  # greedy, same seeds: same episodes
    assert again["bench"] == report["bench"] and (tmp_path / "eval" / "report.md").is_file()

    # rl-router export: the router/ model as a transformers folder, loaded back with the same weights
    from rl_router.checkpoint import weights_digest
    from rl_router.eval.agent_steps_export import LLM_ROUTER_KIND, load_agent_steps_llm
    from rl_router.hub import run_export

    args = [f"checkpoint={run}", "repo_id=me/tiers", f"out_dir={tmp_path / 'export'}"]
    folder = run_export(compose(args, config_name="export"))
    model, _, config = load_agent_steps_llm(folder)
    assert config["router_kind"] == LLM_ROUTER_KIND and config["tiers"] == ["fake-small", "fake-large"]
    assert weights_digest(model) == weights_digest(AutoModelForCausalLM.from_pretrained(run / "router"))
    assert {"model.safetensors", "pool.json", "README.md", "report.md"} <= {p.name for p in folder.iterdir()}
    assert not any(p.suffix in {".bin", ".pkl", ".pt"} for p in folder.iterdir())


@pytest.mark.slow
def test_two_grpo_steps_of_the_smollm2_router_on_textworld_express(compose, tmp_path):
    overrides = [o for o in tiny_overrides(Path("unused")) if not o.startswith("trainer.model=")]
    overrides += ["trainer.max_steps=2", "trainer.max_turn_tokens=6", "trainer.lr=1e-4"]
    result = train(compose(overrides), tmp_path / "run")
    steps = [r for r in result["history"] if "train/reward/total" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(0.0 <= r["rollout/format_valid"] <= 1.0 for r in steps)
    assert result["report"]["over_budget"] == 0
