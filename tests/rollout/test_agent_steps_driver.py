"""The rollout driver on ``agent_steps`` text episodes: the env's own prompt, env tokens masked, the tier
read from the router's reply, the format penalty, and the hard budget under an LLM router."""

from __future__ import annotations

import numpy as np
import pytest
from agent_steps_helpers import ROWS, CorridorGame, make_pool
from grpo_helpers import tiny_tokenizer

from envs.agent_steps import AgentStepsEnv, parse_tier
from rl_router.generation import Segment, chat_prompt_ids
from rl_router.rollout.driver import RolloutDriver, task_prompt


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def corridor_factory(pool, **options):
    def make_env(rows):
        return AgentStepsEnv(pool, rows, game=CorridorGame(), mode="text", **options)

    return make_env


def play(tok, replies, rows=ROWS, max_completion_tokens=2048, seeds=None, **options):
    """One batch through the driver; ``replies(context text) -> reply`` writes every router turn."""
    pool = make_pool(["Action: wait"], ["Action: go forward"])
    driver = RolloutDriver(corridor_factory(pool, **options), rows, tok, 16, max_completion_tokens)

    def generate(contexts, limits):
        texts = [replies(tok.decode(c)) for c in contexts]
        return [
            Segment(tok(t, add_special_tokens=False)["input_ids"][:n], None, "stop")
            for t, n in zip(texts, limits, strict=True)
        ]

    return driver.play([task_prompt(r) for r in rows], generate, seeds=seeds), pool


def turn_of(context: str) -> int:
    return context.count("Tier:") - 1


def test_parse_tier_reads_the_first_word_as_a_number_or_name_and_refuses_prose():
    names = ["smollm2-135m", "qwen2.5-coder-0.5b"]
    replies = ("1", "2\n", "Tier: 2", "tier 1.", "QWEN2.5-coder-0.5b.", "1. 1. ", "2 or 1", "tier:1")
    assert [parse_tier(t, names) for t in replies] == [0, 1, 1, 0, 1, 0, 1, 0]
    malformed = ("0", "3", "tier", "use 2", "I pick 2", "", "tiers 1")
    assert [parse_tier(t, names) for t in malformed] == [None] * 7


def test_prompt_is_the_envs_and_env_tokens_are_masked(tok):
    """Corridor seed 0 needs two forwards: replies "2", "2" win in two steps."""
    result, pool = play(tok, lambda context: "2\n", rows=ROWS[:1], seeds=[0])
    env = AgentStepsEnv(pool, ROWS[:1], game=CorridorGame(), mode="text")
    env.reset(seed=0, options={"index": 0})
    assert result.prompt_ids[0] == chat_prompt_ids(tok, env.router_prompt())
    assert "Tiers: 1 = small, 2 = large" in env.router_prompt()[-1]["content"]
    ids, mask = result.completion_ids[0], result.env_mask[0]
    router = tok.decode([t for t, m in zip(ids, mask, strict=True) if m == 1])
    transcript = tok.decode([t for t, m in zip(ids, mask, strict=True) if m == 0])
    assert router == "2\n2\n" + tok.eos_token  # two replies, then the policy's EOS
    assert transcript.startswith("> go forward\nYou are at 1.\nStep 2/15") and transcript.endswith("Tier:\n")
    assert "2\n" not in transcript  # no router token is masked out
    episode = result.episodes[0]
    assert episode["success"] and episode["calls"] == {"small": 0, "large": 2} and episode["format_ok"]
    assert episode["reward_terms"]["format"] == 0.0
    assert [len(b) for b in pool.batches] == [1, 1]  # one pool call per step


def test_the_tier_comes_from_the_reply_and_a_malformed_one_is_penalised(tok):
    """Turn 0 names the large tier by number, by name, or in prose (malformed); later turns say small."""
    records = []
    for row, first in zip(ROWS, ("2", "I pick large", "tier: large"), strict=True):
        result, pool = play(
            tok,
            lambda context, first=first: first if turn_of(context) == 0 else "Tier: small",
            rows=[row],
            seeds=[0],
            max_steps=3,
        )
        records.append(result.episodes[0])
        assert pool.batches[0][0].model == ("small" if first == "I pick large" else "large")
    good, bad, named = records
    assert good["format_ok"] and named["format_ok"] and not bad["format_ok"]
    assert bad["malformed_replies"] == 1 and bad["tiers"][0] == "small"
    assert bad["reward_terms"]["format"] == pytest.approx(-0.5 / bad["steps"])
    assert good["reward_terms"]["format"] == 0.0
    terms = bad["reward_terms"]
    assert bad["reward"] == pytest.approx(
        terms["success"] - 0.3 * terms["cost"] + terms["reference"] + terms["format"]
    )


def test_an_episode_out_of_room_ends_with_an_empty_reply_and_no_call(tok):
    result, pool = play(tok, lambda context: "1", rows=ROWS[:1], seeds=[0], max_completion_tokens=200)
    episode = result.episodes[0]
    assert episode["truncated"] and not episode["success"] and episode["malformed_replies"] == 1
    assert len(result.completion_ids[0]) <= 200
    assert sum(len(b) for b in pool.batches) == episode["steps"]  # the empty reply called no one


def test_an_llm_router_never_overspends_its_budget(tok):
    """Random replies (tier numbers, names, prose) against caps of 1-2 large calls: 0 episodes over."""
    rng = np.random.default_rng(0)
    choices = ["1", "2", "2", "large", "Tier: 2", "small", "???"]
    rows = [{"id": f"corridor/{s}", "game": "corridor", "seed": s, "fold": "train"} for s in range(8)]
    result, _ = play(
        tok,
        lambda context: str(rng.choice(choices)),
        rows=rows,
        seeds=list(range(8)),
        max_steps=6,
        budget={"low": 1, "high": 2},
    )
    episodes = result.episodes
    assert len(episodes) == 8 and sum(e["over_budget"] for e in episodes) == 0
    assert all(e["calls"]["large"] <= e["budget_cap"] for e in episodes)
    assert sum(e["masked_actions"] for e in episodes) > 0  # the router did name tiers it could not pay
