"""GRPO trainer for LLM routers: group checks, the env rollout, masks through TRL's loss, one TRL step,
the whole recipe on a tiny random model, configs, and (slow) two steps on SmolLM2 with a fake pool."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch
from grpo_helpers import (
    ANSWER,
    ROUTE_LARGE,
    ROUTE_SMALL,
    ROWS,
    ScriptedRouter,
    env_factory,
    fake_pool,
    grpo_env_factory,
    route_then_answer,
    tiny_data_overrides,
    tiny_model,
    tiny_tokenizer,
    warm_normalizer,
)

from rewards.combine import RouterR1Reward
from rewards.cost import PercentileCostNormalizer
from rl_router.generation import HFTurnGenerator, StopOnStrings, turn_end
from rl_router.recipes.llm_router_grpo import train as train_llm_router
from rl_router.rollout.driver import RolloutDriver, tagged_prompt
from rl_router.trainers.grpo import GRPOTrainerConfig, TRLRollout, grpo_dataset, reward_functions
from rl_router.trainers.grpo_math import GroupOrderError, check_groups

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def prompts_for(pool, rows, repeats: int) -> list:
    return [tagged_prompt(row, pool.descriptors, 4) for row in rows for _ in range(repeats)]


def bridge(pool, tok, normalizer=None) -> TRLRollout:
    """The TRL bridge as the GRPO recipe builds it: deferred-cost envs, one shared normaliser."""
    driver = RolloutDriver(grpo_env_factory(pool, tok), ROWS, tok, 64, 512)
    return TRLRollout(driver, normalizer or warm_normalizer(), RouterR1Reward(alpha=0.6))


# -- groups hold one question each -----------------------------------------------------------------
def test_check_groups_accepts_repeats_and_rejects_mixed_or_ragged_groups():
    check_groups(["a", "a", "b", "b"], 2)
    with pytest.raises(GroupOrderError, match="group 0 .* mixes questions"):
        check_groups(["a", "b", "a", "b"], 2)  # Router-R1's defect: same index, different questions
    with pytest.raises(GroupOrderError, match="do not split"):
        check_groups(["a", "a", "a"], 2)


def test_rollout_refuses_a_misordered_batch_before_calling_anyone(tok):
    pool = fake_pool()
    rollout = bridge(pool, tok)
    router = ScriptedRouter(tok, route_then_answer())
    interleaved = [tagged_prompt(ROWS[i], pool.descriptors, 4) for i in (0, 1, 0, 1)]
    with pytest.raises(GroupOrderError):
        rollout.play(interleaved, router, num_generations=2)
    assert pool.calls == [] and router.calls == []


def test_hf_generator_respects_each_rows_budget(tok):
    model = tiny_model(tok)
    generate = HFTurnGenerator(model, tok, sample=True, temperature=1.0)
    contexts = [
        tok("<|user|>hi<|assistant|>")["input_ids"],
        tok("<|user|>a longer prompt<|assistant|>")["input_ids"],
    ]
    segments = generate(contexts, limits=[3, 7])
    assert len(segments[0].ids) <= 3 and len(segments[1].ids) <= 7
    assert all(s.reason in ("stop", "eos", "length") for s in segments)


def test_stop_criterion_reads_only_the_generated_tail(tok):
    context = tok("<search>m: q</search>")["input_ids"]  # an earlier turn's stop string in the context
    generated = tok("<think>x</think><answer>y</answer>")["input_ids"]
    unfinished = generated[:3] + [tok.pad_token_id] * (len(generated) - 3)
    rows = torch.tensor([context + unfinished, context + generated])
    stop = StopOnStrings(tok, start=len(context))
    assert stop(rows, scores=None).tolist() == [False, True]


def test_turn_end_prefers_a_stop_string_to_the_padding_eos(tok):
    ids = tok("<think>a</think><search>m: q</search>")["input_ids"] + [tok.eos_token_id] * 3
    end, reason = turn_end(ids, 100, {tok.eos_token_id}, tok.decode)
    assert reason == "stop" and tok.decode(ids[:end]).endswith("</search>")


# -- no gradient from environment tokens, through TRL's own loss --------------------------------------
def test_env_tokens_get_no_gradient_through_trl_loss(tok, tmp_path):
    """Gradient w.r.t. the hidden states that score env tokens: zero with env_mask, non-zero without.

    (The final hidden state at position ``t`` only feeds the logits of token ``t + 1``, so this is the
    gradient through the env tokens' logits. The env tokens' *input* embeddings do get gradient, as
    context that later router tokens attend to: that is correct and not tested.)
    """
    from trl import GRPOConfig, GRPOTrainer
    from trl.trainer.utils import pad

    model = tiny_model(tok)
    pool = fake_pool()
    rollout = bridge(pool, tok)
    out = rollout.play(prompts_for(pool, ROWS[:2], 2), ScriptedRouter(tok, route_then_answer()), 2)
    funcs, weights = reward_functions()
    args = GRPOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=2, max_completion_length=512,
        use_cpu=True, bf16=False, report_to="none", beta=0.0, max_steps=1, save_strategy="no",
        reward_weights=weights,
    )  # fmt: skip
    dataset = grpo_dataset(ROWS, pool.descriptors, 4)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=dataset,
        processing_class=tok,
        rollout_func=rollout,
    )

    def padded(key, value, side):
        return pad([torch.tensor(x) for x in out[key]], padding_value=value, padding_side=side)

    prompt_ids, completion_ids = (
        padded("prompt_ids", tok.pad_token_id, "left"),
        padded("completion_ids", tok.pad_token_id, "right"),
    )
    prompt_mask = pad(
        [torch.ones(len(x), dtype=torch.long) for x in out["prompt_ids"]],
        padding_value=0,
        padding_side="left",
    )
    completion_mask = pad(
        [torch.ones(len(x), dtype=torch.long) for x in out["completion_ids"]],
        padding_value=0,
        padding_side="right",
    )
    env_mask = padded("env_mask", 1, "right")  # TRL pads env masks with 1 (padding is out of completion_mask)
    model.eval()  # TRL's eval-mode loss normaliser: no gradient-accumulation state needed

    def grad_norms(tool_mask: torch.Tensor) -> torch.Tensor:
        model.zero_grad()
        hidden = {}

        def keep(module, args, output):
            output.retain_grad()
            hidden["h"] = output

        handle = model.model.norm.register_forward_hook(keep)
        inputs = {
            "prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
            "completion_mask": completion_mask, "advantages": torch.tensor([1.0, -1.0, 0.5, -0.5]),
            "num_items_in_batch": (completion_mask * tool_mask).sum(), "tool_mask": tool_mask,
        }  # fmt: skip
        with contextlib.ExitStack() as stack:
            stack.callback(handle.remove)
            trainer.compute_loss(model, inputs).backward()
        p = prompt_ids.shape[1]  # completion token c is scored from position p + c - 1
        return hidden["h"].grad[:, p - 1 : p - 1 + completion_ids.shape[1]].norm(dim=-1)

    is_env = (env_mask == 0) & (completion_mask == 1)
    is_router = (env_mask == 1) & (completion_mask == 1)
    assert is_env.sum() > 0
    masked, unmasked = grad_norms(env_mask), grad_norms(torch.ones_like(env_mask))
    assert torch.all(masked[is_env] == 0.0)
    assert torch.all(unmasked[is_env] > 0.0)
    assert torch.all(masked[is_router] > 0.0)


# -- one TRL step with the env rollout ---------------------------------------------------------------
class ScriptedRollout(TRLRollout):
    """The TRL bridge with a scripted router in place of the model's generate (what TRL calls)."""

    def __init__(self, *args, script, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.script = script

    @contextlib.contextmanager
    def generator(self, trainer):
        yield ScriptedRouter(self.driver.tokenizer, self.script)


def test_trl_trains_one_step_on_the_rollout_and_logs_each_term(tok, tmp_path):
    from trl import GRPOTrainer

    from rl_router.loggers import NullLogger
    from rl_router.trainers.grpo import grpo_args, metrics_callback

    def script(question, turn, k):  # each group: one right answer, one format violation
        return route_then_answer()(question, turn) if turn == 0 or k == 0 else "<think>No.</think>"

    pool = fake_pool()
    model = tiny_model(tok)
    normalizer = warm_normalizer()
    driver = RolloutDriver(grpo_env_factory(pool, tok), ROWS, tok, 64, 512)
    rollout = ScriptedRollout(driver, normalizer, RouterR1Reward(alpha=0.6), script=script)
    cfg = GRPOTrainerConfig(
        lr=1e-2, max_steps=1, questions_per_step=2, num_generations=2, micro_batch_size=4, beta=0.0,
        max_turn_tokens=64, max_completion_tokens=512, progress=False, checkpoint_every=1,
    )  # fmt: skip
    funcs, _ = reward_functions()
    bridge = metrics_callback(rollout, [d.name for d in pool.descriptors], NullLogger(), progress=False)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=grpo_args(cfg, tmp_path / "checkpoints"),
        train_dataset=grpo_dataset(ROWS[:2], pool.descriptors, 4),
        processing_class=tok,
        rollout_func=rollout,
        callbacks=[bridge],
    )
    trainer.train()
    assert trainer.state.global_step == 1
    row = next(r for r in bridge.history if "train/reward/total" in r)
    assert row["train/reward/format"] == pytest.approx(-0.5)  # one sample per group broke the format
    assert row["train/reward/outcome"] == pytest.approx(0.25)  # France answered Paris: right; 6 x 7: wrong
    assert row["train/reward/total"] == pytest.approx((1.0 + 0.0 - 1.0 - 1.0) / 4)
    assert row["rollout/route_share/fake-small"] == 1.0 and row["rollout/calls"] == 1.0
    assert row["train/frac_reward_zero_std"] == 0.0 and row["train/grad_norm"] > 0.0
    state = json.loads((tmp_path / "checkpoints" / "checkpoint-1" / "rollout_state.json").read_text())
    assert len(state["normalizer"]["sqrt_costs"]) == 3 + 4  # the warm window and this batch


# -- a GRPO batch is normalised as one batch ----------------------------------------------------------
def spend_differently(question, turn, k):
    """France: answer at once (k=0, $0) or ask fake-small first ($1e-7); 6 x 7: ask fake-large once
    ($1e-6) or twice ($2e-6). ``k`` counts this question's earlier calls at this turn."""
    if "France" in question:
        if turn == 0:
            return ANSWER.format(a="Paris") if k == 0 else ROUTE_SMALL.format(q=question)
        return ANSWER.format(a="Paris")
    if turn == 0 or (turn == 1 and k == 1):
        return ROUTE_LARGE.format(q=question)
    return ANSWER.format(a="42")


def test_a_batch_of_episodes_is_cost_normalised_together(tok):
    pool = fake_pool()
    normalizer = PercentileCostNormalizer()
    rollout = bridge(pool, tok, normalizer)
    out = rollout.play(prompts_for(pool, ROWS[:2], 2), ScriptedRouter(tok, spend_differently), 2)
    assert out["cost_usd"] == pytest.approx([0.0, 1e-7, 1e-6, 2e-6])
    assert out["correct"] == [1.0] * 4 and out["format_ok"] == [True] * 4
    # sqrt costs 0 < a < b < c, all four in the window: Q5 = 0.15 a, Q95 = b + 0.85 (c - b)
    a, b, c = 1e-7**0.5, 1e-6**0.5, 2e-6**0.5
    q5, q95 = 0.15 * a, b + 0.85 * (c - b)
    expected = [1.0, 1 - (a - q5) / (q95 - q5), 1 - (b - q5) / (q95 - q5), 0.0]
    assert [t["cost"] for t in out["reward_terms"]] == pytest.approx(expected)
    assert out["episode_reward"] == pytest.approx([0.4 + 0.6 * x for x in expected])
    # one episode at a time, the first would have scored 0.5 (alone in the window), not 1
    assert normalizer.num_episodes == 4  # the batch was added once, by the bridge
    # the logged records say what TRL receives
    episodes = rollout.take_episodes()
    assert [e["reward"] for e in episodes] == out["episode_reward"]
    assert [e["reward_terms"]["cost"] for e in episodes] == [t["cost"] for t in out["reward_terms"]]


def test_a_share_budget_prices_overspending_and_moves_lambda_by_dual_ascent(tok):
    """GRPO under trainer.budget: ``-lam * usage / target`` joins the reward; lam rises, then falls."""
    from rewards.budget import BudgetConfig

    pool = fake_pool()
    driver = RolloutDriver(grpo_env_factory(pool, tok), ROWS, tok, 64, 512)
    budget = BudgetConfig(share={"fake-large": 0.25}, lambda_lr=0.5)
    rollout = TRLRollout(driver, warm_normalizer(), RouterR1Reward(alpha=0.6), budget=budget, multiplier=0.2)
    prompts = prompts_for(pool, ROWS[:2], 2)
    out = rollout.play(prompts, ScriptedRouter(tok, spend_differently), 2)
    # spend_differently routes: none, small, large, large twice -> large's share of routes 0, 0, 1, 1
    assert [t["budget"] for t in out["reward_terms"]] == pytest.approx([0.0, 0.0, -0.8, -0.8])
    plain = [1.0 * (0.4 + 0.6 * t["cost"]) for t in out["reward_terms"]]
    assert out["episode_reward"] == pytest.approx(
        [p + t["budget"] for p, t in zip(plain, out["reward_terms"], strict=True)]
    )
    # measured share 0.5 over a target of 0.25: lam += 0.5 * 0.25 / 0.25
    assert rollout.multiplier == pytest.approx(0.7)
    assert rollout.state_dict()["budget"] == {"lambda": pytest.approx(0.7)}
    rollout.play(prompts_for(pool, ROWS[:1], 2), ScriptedRouter(tok, route_then_answer("fake-small")), 2)
    assert rollout.multiplier == pytest.approx(0.2)  # share 0, under the cap: lam -= 0.5 * 0.25 / 0.25
    funcs, weights = reward_functions(budget=True)
    assert [f.__name__ for f in funcs][-1] == "budget" and weights[-1] == 0.0


def test_explored_routes_open_each_groups_first_samples_and_the_budget_measures_the_free_ones(tok):
    """trainer.explore_routes: sample j of a group opens with candidate j's route, as router tokens."""
    from rewards.budget import BudgetConfig
    from rl_router.trainers.sft import route_opening

    pool = fake_pool()
    driver = RolloutDriver(grpo_env_factory(pool, tok), ROWS, tok, 64, 512)
    openings = [route_opening(name, "every_correct") for name in ("fake-small", "fake-large")]
    budget = BudgetConfig(share={"fake-large": 0.5}, lambda_lr=1.0)
    rollout = TRLRollout(
        driver,
        warm_normalizer(),
        RouterR1Reward(alpha=0.6),
        budget=budget,
        multiplier=0.2,
        route_openings=openings,
    )

    def script(question: str, turn: int, k: int = 0) -> str:
        if turn:
            return ANSWER.format(a="Paris")
        # samples 0 and 1 continue their forced opening; sample 2 is free and routes to the large one
        return f" {question}</search>" if k < 2 else ROUTE_LARGE.format(q=question)

    out = rollout.play(prompts_for(pool, ROWS[:1], 3), ScriptedRouter(tok, script), 3)
    episodes = rollout.take_episodes()
    assert [e["calls"] for e in episodes] == [{"fake-small": 1}, {"fake-large": 1}, {"fake-large": 1}]
    assert [e["forced_prefix"] for e in episodes] == [True, True, False]
    assert all(e["format_ok"] and e["correct"] == 1.0 for e in episodes)
    for opening, ids, mask in zip(openings, out["completion_ids"], out["env_mask"], strict=False):
        forced = tok(opening, add_special_tokens=False)["input_ids"]
        assert ids[: len(forced)] == forced and all(mask[: len(forced)])  # the router's tokens: trained
        assert episodes[openings.index(opening)]["completion"].startswith(opening)
    assert out["logprobs"] is None  # forced tokens were not sampled
    # the dual step sees the free sample only (share 1.0): lam = 0.2 + 1.0 * (1.0 - 0.5) / 0.5
    assert rollout.multiplier == pytest.approx(1.2)  # all three (share 2/3) would give 0.533
    with pytest.raises(ValueError, match="num_generations=2 with 2 forced routes"):
        rollout.play(prompts_for(pool, ROWS[:1], 2), ScriptedRouter(tok, script), 2)


def test_grpo_math_doctests():
    """check_groups and exploration_prefixes examples in the module hold."""
    import doctest

    from rl_router.trainers import grpo_math

    assert doctest.testmod(grpo_math, optionflags=doctest.ELLIPSIS).failed == 0


def test_resuming_with_a_different_budget_setting_is_refused(tmp_path):
    from rewards.budget import BudgetConfig
    from rl_router.recipes.llm_router_grpo import resumed_multiplier

    with_budget = GRPOTrainerConfig(budget=BudgetConfig(cost_per_query=1e-6))
    assert resumed_multiplier({"budget": {"lambda": 0.3}}, with_budget, tmp_path) == 0.3
    with pytest.raises(ValueError, match="trained without trainer.budget"):
        resumed_multiplier({"budget": None}, with_budget, tmp_path)
    with pytest.raises(ValueError, match="with the same budget"):
        resumed_multiplier({"budget": {"lambda": 0.3}}, GRPOTrainerConfig(), tmp_path)


def test_the_bridge_refuses_envs_that_score_their_own_cost(tok):
    pool = fake_pool()
    normalizer = warm_normalizer()
    driver = RolloutDriver(env_factory(pool, tok, normalizer), ROWS, tok, 64, 512)  # per-episode envs
    rollout = TRLRollout(driver, normalizer, RouterR1Reward(alpha=0.6))
    with pytest.raises(ValueError, match="defer_cost=True"):
        rollout.play(prompts_for(pool, ROWS[:1], 2), ScriptedRouter(tok, route_then_answer()), 2)


# -- the recipe, configs --------------------------------------------------------------------------
def test_config_checks_name_the_field_to_change():
    with pytest.raises(ValueError, match="micro_batch_size=3 must divide"):
        GRPOTrainerConfig(questions_per_step=2, num_generations=2, micro_batch_size=3)
    with pytest.raises(ValueError, match="num_generations=1"):
        GRPOTrainerConfig(num_generations=1)
    with pytest.raises(ValueError, match="use_cpu=true"):
        GRPOTrainerConfig(use_cpu=True, use_vllm=True)
    with pytest.raises(ValueError, match="colocate"):
        GRPOTrainerConfig(use_cpu=False, use_vllm=True, vllm_mode="server")


@pytest.mark.parametrize(
    ("experiment", "model", "pool", "batch", "outcome"),
    [
        ("router_r1", "Qwen/Qwen2.5-3B-Instruct", "router_r1", 320, "em"),
        ("router_r1_tiny", "smollm2-135m-instruct", "local", 8, "reply"),
    ],
)
def test_experiments_compose(compose, experiment, model, pool, batch, outcome):
    from rl_router.config import typed

    cfg = compose([f"experiment={experiment}"])
    for group in ("policy", "pool", "data", "logger"):
        typed(cfg[group])  # every group's checks pass
    trainer, env = typed(cfg.trainer), typed(cfg.env)
    assert (trainer.model, cfg.pool.name, trainer.generation_batch_size) == (model, pool, batch)
    assert env.mode == "multi_round" and env.outcome == outcome
    if experiment == "router_r1":
        assert (trainer.lr, trainer.questions_per_step, trainer.temperature, trainer.max_steps) == (
            1e-6,
            64,
            1.0,
            225,
        )
        assert list(cfg.data.benchmarks) == ["nq", "hotpotqa"] and cfg.data.split == "train"
        assert len(trainer.eval_data["benchmarks"]) == 7


def test_train_llm_router_runs_sft_grpo_and_eval_on_a_tiny_model(compose, tok, tmp_path):
    model_dir = tmp_path / "tiny-router"
    tiny_model(tok).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    overrides = [
        f"trainer.model={model_dir}",
        "trainer.sft_steps=2",
        "trainer.max_steps=1",
        "trainer.max_turn_tokens=8",
        "trainer.max_completion_tokens=64",
    ]
    cfg = compose(["experiment=router_r1_tiny", *tiny_data_overrides(tmp_path), *overrides])
    result = train_llm_router(cfg, tmp_path / "run")
    run = Path(result["run_dir"])
    report = json.loads((run / "report.json").read_text())
    assert report["router"]["questions"] == 3
    assert report["single"]["fake-small"]["accuracy"] == pytest.approx(1 / 3)  # Paris only
    assert report["single"]["fake-large"]["accuracy"] == pytest.approx(1 / 3)  # 42 only
    assert report["best_single"] == "fake-small"  # equally accurate, ten times cheaper
    assert 0.0 <= report["router"]["format_valid"] <= 1.0
    assert (run / "sft_model" / "config.json").is_file() and (run / "router" / "config.json").is_file()
    imitated = [json.loads(line) for line in (run / "sft_trajectories.jsonl").read_text().splitlines()]
    # the cheapest candidate whose reply is right; Lima is known to no candidate, so it is not imitated
    routes = sorted((t["model"], t["answer"]) for t in imitated)
    assert routes == [("fake-large", "42"), ("fake-small", "Paris")]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("sft/loss" in r for r in rows) and any("train/reward/total" in r for r in rows)
    assert any("eval/accuracy" in r for r in rows)
    episodes = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
    assert len(episodes) == 2 * 4 and {e["step"] for e in episodes} == {1}  # 2 questions x 4 samples
    assert all(e["id"].endswith(tuple(r["id"] for r in ROWS)) for e in episodes)  # "<source>/<row id>"
    assert all(isinstance(e["completion"], str) and isinstance(e["calls"], dict) for e in episodes)
    assert all(-1.0 <= e["reward"] <= 1.0 for e in episodes)
    assert all(e["format_ok"] or e["reward"] == -1.0 for e in episodes)  # a violation scores -1
    warm = result["warm_start_report"]  # the SFT warm start, scored on the same held-out rows
    assert warm["router"]["questions"] == 3 and warm["meta"]["checkpoint"] == str(run / "sft_model")
    assert warm["single"] == report["single"]
    # `rl-router eval` of the run reuses every row training's own evaluation scored
    from rl_router.eval.run import run_eval

    again = run_eval(compose([f"checkpoint={run}"], config_name="eval"))
    assert again["meta"]["resumed_rows"] == 9 and again["router"] == report["router"]


def test_resume_continues_from_the_last_checkpoint(compose, tok, tmp_path):
    model_dir = tmp_path / "tiny-router"
    tiny_model(tok).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    base = ["experiment=router_r1_tiny", *tiny_data_overrides(tmp_path), f"trainer.model={model_dir}"]
    base += ["trainer.sft_steps=1", "trainer.max_turn_tokens=8", "trainer.max_completion_tokens=64"]
    base += ["trainer.checkpoint_every=1"]
    run = tmp_path / "run"
    first = train_llm_router(compose([*base, "trainer.max_steps=1"]), run)
    sft_weights = (run / "sft_model" / "model.safetensors").stat().st_mtime_ns
    second = train_llm_router(compose([*base, "trainer.max_steps=2", f"resume={run}"]), run)
    assert [r["step"] for r in first["history"] if "train/reward/total" in r] == [1]
    assert [r["step"] for r in second["history"] if "train/reward/total" in r] == [2]  # step 1 not redone
    assert (run / "sft_model" / "model.safetensors").stat().st_mtime_ns == sft_weights  # SFT not redone
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train/reward/total" in r] == [1, 2]
    episodes = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
    assert [e["step"] for e in episodes] == [1] * 8 + [2] * 8  # step 1's episodes kept once
    state = json.loads((run / "checkpoints" / "checkpoint-2" / "rollout_state.json").read_text())
    assert len(state["normalizer"]["sqrt_costs"]) == 2 * 8  # the window carried across the resume
    # router/ was overwritten in place with new weights: the final report scores them, not step 1's
    assert second["report"]["meta"]["weights"] != first["report"]["meta"]["weights"]
    assert second["report"]["meta"]["resumed_rows"] == 6  # only the candidates' 3 x 2 answers stand


@pytest.mark.slow
def test_two_grpo_steps_on_smollm2_with_a_fake_pool(compose, tmp_path):
    overrides = ["trainer.sft_steps=8", "trainer.max_steps=2"]
    cfg = compose(["experiment=router_r1_tiny", *tiny_data_overrides(tmp_path), *overrides])
    result = train_llm_router(cfg, tmp_path / "run")
    steps = [r for r in result["history"] if "train/reward/total" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(r["rollout/calls"] >= 0 and -1.0 <= r["train/reward/total"] <= 1.0 for r in steps)
    assert result["report"]["router"]["questions"] == 3
