"""The rollout driver, without any trainer: typed results, env masks, one pool call per turn, budgets."""

from __future__ import annotations

import pytest
from grpo_helpers import ROWS, ScriptedRouter, env_factory, fake_pool, route_then_answer, tiny_tokenizer

from rl_router.rollout.driver import RolloutDriver, RolloutResult, tagged_prompt
from rl_router.trainers.grpo import trl_rollout_dict


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def prompts_for(pool, rows, repeats: int) -> list:
    return [tagged_prompt(row, pool.descriptors, 4) for row in rows for _ in range(repeats)]


def play(tok, script, rows=ROWS[:2], repeats=2, max_completion_tokens=512, reason=None):
    """One batch through the driver; ``out`` is the TRL view of the typed result, as the bridge sends it."""
    pool = fake_pool()
    driver = RolloutDriver(env_factory(pool, tok), ROWS, tok, 64, max_completion_tokens)
    router = ScriptedRouter(tok, script, reason=reason)
    result = driver.play(prompts_for(pool, rows, repeats), router)
    assert isinstance(result, RolloutResult)
    return trl_rollout_dict(result), pool, router, result


# -- the driver -----------------------------------------------------------------------------------
def test_env_mask_covers_exactly_the_information_blocks(tok):
    out, _, _, _ = play(tok, route_then_answer("fake-small", "Paris"))
    assert len(out["completion_ids"]) == 4
    for ids, mask in zip(out["completion_ids"], out["env_mask"], strict=True):
        assert len(ids) == len(mask)
        env_text = tok.decode([t for t, m in zip(ids, mask, strict=True) if m == 0])
        router_text = tok.decode([t for t, m in zip(ids, mask, strict=True) if m == 1])
        assert env_text == "\n\n<information>Paris</information>\n\n"
        assert router_text.startswith("<think>Ask the small one.</think>\n<search>fake-small: ")
        assert router_text.endswith("<answer>Paris</answer><|eos|>")
        assert ids[-1] == tok.eos_token_id and mask[-1] == 1  # a policy EOS ends the trajectory
    # the env's verdicts reach TRL as clean per-sample fields
    assert out["question_id"] == ["capitals/0", "capitals/0", "math/0", "math/0"]
    assert out["correct"] == [1.0, 1.0, 0.0, 0.0]
    assert out["format_ok"] == [True] * 4 and out["calls"] == [1] * 4 and out["answer"] == ["Paris"] * 4
    assert out["cost_usd"] == pytest.approx([0.1 / 1e6] * 4)  # one output token at $0.1 / 1M
    assert out["episode_reward"] == pytest.approx([1.0, 1.0, 0.0, 0.0])
    assert out["logprobs"] is None  # no vLLM: TRL recomputes them


def test_one_generation_and_one_pool_call_per_turn(tok):
    out, pool, router, _ = play(tok, route_then_answer("fake-large", "42"), rows=ROWS, repeats=2)
    assert router.calls == [6, 6]  # turn 1: 6 episodes route; turn 2: 6 episodes answer
    assert pool.calls == [6]  # all 6 routes of the turn in one pool.generate; answers call no one
    assert out["correct"] == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]


def test_trajectories_out_of_room_end_as_format_violations_without_eos(tok):
    # 48 tokens hold the first turn but not its information block plus another turn
    out, pool, router, result = play(tok, route_then_answer(), max_completion_tokens=48)
    assert router.calls == [4] and pool.calls == [4]
    assert out["format_ok"] == [False] * 4 and out["episode_reward"] == [-1.0] * 4
    assert out["truncated"] == [True] * 4
    assert all(ids[-1] != tok.eos_token_id for ids in out["completion_ids"])  # TRL counts them clipped
    for ids, mask in zip(out["completion_ids"], out["env_mask"], strict=True):
        assert len(ids) <= 48 and 0 not in mask  # the block that did not fit was not appended
    assert [e["truncated"] for e in result.episodes] == [True] * 4


def test_a_turn_cut_by_its_budget_is_invalid_and_gets_no_eos(tok):
    out, pool, _, _ = play(tok, lambda q, turn, k: "<think>I keep thinking and thinking", reason="length")
    assert pool.calls == [] and out["episode_reward"] == [-1.0] * 4 and out["truncated"] == [True] * 4
    assert all(ids[-1] != tok.eos_token_id for ids in out["completion_ids"])
