"""SFT warm start: synthesised trajectories (cheapest right candidate, env-identical information block),
the loss mask over env text, and TRL's SFTTrainer learning them."""

from __future__ import annotations

import pytest
import torch
from grpo_helpers import ROWS, env_factory, fake_pool, fake_pool_config, tiny_model, tiny_tokenizer

from rl_router.trainers.grpo import GRPOTrainerConfig
from rl_router.trainers.sft import (
    SFTTrajectory,
    route_order,
    sft_dataset,
    sft_trainer,
    synthesize_trajectories,
    tokenize_trajectory,
    warm_start,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def count_tokens_of(tok):
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


def test_routes_to_the_cheapest_candidate_that_answers_and_skips_the_rest(tok):
    pool = fake_pool()  # fake-small ($0.1) always says "Paris", fake-large ($1) always "42"
    trajectories = synthesize_trajectories(pool, ROWS, count_tokens_of(tok))
    assert pool.calls == [len(ROWS) * 2]  # every candidate on every question, in one pool call
    assert [(t.question_id, t.model, t.answer) for t in trajectories] == [
        ("capitals/0", "fake-small", "Paris"),  # both cheap and right
        ("math/0", "fake-large", "42"),  # only the expensive one knows
    ]  # Peru: nobody answers Lima, so no trajectory
    assert [d.name for d in route_order(pool.descriptors)] == ["fake-small", "fake-large"]


def test_a_candidate_that_fails_most_calls_stops_the_warm_start_and_fewer_failures_are_counted(tok, caplog):
    from rl_router.pool import build_pool

    cfg = fake_pool_config()
    cfg.models[1].fake.failure_rate = 1.0  # fake-large: every call an error, as an engine that died
    with pytest.raises(
        RuntimeError, match=r"candidate fake-large failed on 3 of 3 questions \(first error: fake"
    ):
        synthesize_trajectories(build_pool(cfg), ROWS, count_tokens_of(tok))

    rows = [{**ROWS[0], "id": f"capitals/{i}", "question": f"{ROWS[0]['question']} ({i})"} for i in range(40)]
    cfg.models[1].fake.failure_rate = 0.3  # some calls fail: logged, and the warm start goes on
    with caplog.at_level("WARNING", logger="rl_router.trainers.sft"):
        trajectories = synthesize_trajectories(build_pool(cfg), rows, count_tokens_of(tok))
    failed = [r.message for r in caplog.records if "fake-large failed on" in r.message]
    assert len(failed) == 1 and 0 < int(failed[0].split("failed on ")[1].split()[0]) <= 20
    assert len(trajectories) == 40  # fake-small answers every capital


def test_every_correct_writes_one_trajectory_per_right_candidate_and_rejects_unknown_modes(tok):
    """Where both candidates answer, the warm start shows both routes, so GRPO still has one to choose."""
    from rl_router.pool import ModelConfig, PoolConfig, build_pool
    from rl_router.pool.fake import FakeOptions

    both_paris = PoolConfig(
        models=[
            ModelConfig(
                name=name, backend="fake", price_in=p, price_out=p, fake=FakeOptions(answers=["Paris"])
            )
            for name, p in (("fake-large", 1.0), ("fake-small", 0.1))  # listed dearest first on purpose
        ],
        cache=False,
    )
    pool = build_pool(both_paris)
    count = count_tokens_of(tok)
    cheapest = synthesize_trajectories(pool, ROWS, count)
    every = synthesize_trajectories(pool, ROWS, count, routes="every_correct")
    assert [(t.question_id, t.model) for t in cheapest] == [("capitals/0", "fake-small")]
    assert [(t.question_id, t.model) for t in every] == [
        ("capitals/0", "fake-small"),
        ("capitals/0", "fake-large"),
    ]
    assert "cheapest" in cheapest[0].segments[0][0]
    assert all("cheapest" not in t.segments[0][0] for t in every)  # the think does not claim a price order
    assert [t.answer for t in every] == ["Paris", "Paris"]
    with pytest.raises(ValueError, match="sft_routes='all'"):
        synthesize_trajectories(pool, ROWS, count, routes="all")
    with pytest.raises(ValueError, match="sft_routes='all'"):
        GRPOTrainerConfig(sft_routes="all")


def test_trajectories_replay_in_the_env_as_valid_correct_episodes(tok):
    """The router turns of a trajectory, played in the env, reproduce its information block exactly."""
    pool = fake_pool()
    make_env = env_factory(pool, tok)
    for trajectory, row in zip(synthesize_trajectories(pool, ROWS, count_tokens_of(tok)), ROWS, strict=False):
        env = make_env([row])
        observation, _ = env.reset(options={"index": 0})
        assert observation == trajectory.prompt[0]["content"]
        (route, _), (information, trained), (answer, _) = trajectory.segments
        assert not trained
        _, _, terminated, _, info = env.step(route)
        assert not terminated and info["env_text"] == information
        _, reward, terminated, _, info = env.step(answer)
        assert terminated and info["episode"]["format_ok"] and info["episode"]["correct"] == 1.0
        assert info["episode"]["completion"] == trajectory.completion and reward > 0


def test_loss_mask_covers_router_tokens_only(tok):
    trajectory = synthesize_trajectories(fake_pool(), ROWS[:1], count_tokens_of(tok))[0]
    row = tokenize_trajectory(tok, trajectory)
    ids, mask = row["input_ids"], row["completion_mask"]
    assert len(ids) == len(mask) and ids[-1] == tok.eos_token_id and mask[-1] == 1
    trained = tok.decode([t for t, m in zip(ids, mask, strict=True) if m])
    masked = tok.decode([t for t, m in zip(ids, mask, strict=True) if not m])
    (route, _), (information, _), (answer, _) = trajectory.segments
    assert trained == route + answer + "<|eos|>"
    assert masked.endswith("<|assistant|>" + information)  # the prompt, then the env's block
    assert "Paris</information>" not in trained


def test_sft_trainer_masks_env_text_and_learns_the_trajectories(tok, tmp_path):
    trajectories = synthesize_trajectories(fake_pool(), ROWS, count_tokens_of(tok))
    dataset = sft_dataset(tok, trajectories)
    cfg = GRPOTrainerConfig(sft_steps=8, sft_lr=1e-2, sft_batch_size=2, progress=False)
    trainer = sft_trainer(tiny_model(tok), tok, dataset, tmp_path / "work", cfg)
    # TRL turned completion_mask into labels: -100 on the prompt and on the information block
    for prepared, source in zip(trainer.train_dataset, dataset, strict=True):
        expected = [
            t if m else -100 for t, m in zip(source["input_ids"], source["completion_mask"], strict=True)
        ]
        assert prepared["labels"] == expected
    trainer.train()
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    assert len(losses) == 8 and losses[-1] < losses[0]


def test_warm_start_saves_a_loadable_router_and_refuses_no_data(tok, tmp_path):
    from transformers import AutoModelForCausalLM

    model_dir = tmp_path / "tiny"
    tiny_model(tok).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    cfg = GRPOTrainerConfig(sft_steps=2, sft_batch_size=2, progress=False)
    trajectories = synthesize_trajectories(fake_pool(), ROWS, count_tokens_of(tok))
    losses = warm_start(str(model_dir), tok, trajectories, tmp_path / "sft_model", cfg)
    assert len(losses) == 2
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "sft_model").config.vocab_size == len(tok)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sft_model", "tiny"]  # no work or temp dirs left
    with pytest.raises(ValueError, match="no SFT trajectories"):
        warm_start(str(model_dir), tok, [], tmp_path / "other", cfg)


def test_trajectory_completion_joins_its_segments():
    t = SFTTrajectory("q", ({"role": "user", "content": "x"},), (("a", True), ("b", False)), "m", "y")
    assert t.completion == "ab"


def test_doctests():
    """route_opening, route_order and stated_answer examples in the module hold."""
    import doctest

    from rl_router.trainers import sft

    assert doctest.testmod(sft).failed == 0
