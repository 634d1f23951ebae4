"""The rollout driver, without any trainer: typed results, env masks, one pool call per turn, budgets."""

from __future__ import annotations

import gymnasium as gym
import pytest
from grpo_helpers import ROWS, ScriptedRouter, env_factory, fake_pool, route_then_answer, tiny_tokenizer

from envs.spaces import TextSpace
from rl_router.rollout.driver import RolloutDriver, RolloutResult, tagged_prompt


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def prompts_for(pool, rows, repeats: int) -> list:
    return [tagged_prompt(row, pool.descriptors, 4) for row in rows for _ in range(repeats)]


def columns(result: RolloutResult) -> dict:
    """The typed result as columns: its token lists plus one list per episode-record field."""
    episodes = result.episodes
    return {
        "prompt_ids": result.prompt_ids,
        "completion_ids": result.completion_ids,
        "env_mask": result.env_mask,
        "logprobs": result.logprobs,
        "question_id": result.question_ids,
        "answer": [e["answer"] for e in episodes],
        "correct": [float(e["correct"]) for e in episodes],
        "format_ok": [e["format_ok"] for e in episodes],
        "cost_usd": [e["cost_usd"] for e in episodes],
        "calls": [e["routes"] for e in episodes],
        "truncated": [e["truncated"] for e in episodes],
        "episode_reward": [e["reward"] for e in episodes],
    }


def play(tok, script, rows=ROWS[:2], repeats=2, max_completion_tokens=512, reason=None):
    """One batch through the driver, with no trainer anywhere."""
    pool = fake_pool()
    driver = RolloutDriver(env_factory(pool, tok), ROWS, tok, 64, max_completion_tokens)
    router = ScriptedRouter(tok, script, reason=reason)
    result = driver.play(prompts_for(pool, rows, repeats), router)
    assert isinstance(result, RolloutResult)
    return columns(result), pool, router, result


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
    # the env's verdicts come back as per-episode records
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


class CountdownEnv(gym.Env):
    """A text env of several routed steps and no ``step_batch`` hook: each turn is one agent step.

    The prompt is the row's question; every step answers with an observation until ``steps`` turns
    were taken, then the episode ends with a record. Stands in for an agent whose every step is a call.
    """

    observation_space = TextSpace(max_length=10_000)
    action_space = TextSpace(max_length=10_000)

    def __init__(self, rows, steps: int = 3) -> None:
        self.row, self.steps, self.taken = rows[0], steps, 0
        self.stepped: list[str] = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.taken = 0
        return tagged_prompt(self.row, [], 0)[0]["content"], {}

    def step(self, action):
        self.taken += 1
        self.stepped.append(action)
        if self.taken < self.steps:
            return "", 0.0, False, False, {"env_text": f"\n<obs>{self.steps - self.taken} left</obs>\n"}
        record = {"steps": self.taken}
        return "", 1.0, True, False, {"episode": record, "reward_terms": {"outcome": 1.0}}


def test_a_many_step_env_without_a_batch_hook_is_stepped_one_by_one(tok):
    made: list[CountdownEnv] = []

    def make_env(rows):
        made.append(CountdownEnv(rows))
        return made[-1]

    driver = RolloutDriver(make_env, ROWS, tok, 16, 512)
    prompts = [tagged_prompt(row, [], 0) for row in ROWS[:2]]
    router = ScriptedRouter(tok, lambda q, turn, k: f"<think>step {turn}</think>", reason="eos")
    result = driver.play(prompts, router)
    assert router.calls == [2, 2, 2]  # three turns, each one batched generation for both episodes
    assert [env.taken for env in made] == [3, 3]
    assert [e["steps"] for e in result.episodes] == [3, 3]
    for ids, mask in zip(result.completion_ids, result.env_mask, strict=True):
        env_text = tok.decode([t for t, m in zip(ids, mask, strict=True) if m == 0])
        assert env_text == "\n<obs>2 left</obs>\n\n<obs>1 left</obs>\n"  # two observations, masked out
    assert made[0].stepped[0] == "<think>step 0</think>"
