"""reasoning-gym mixtures: difficulty kept in metadata, gold answers pass the task verifier."""

from __future__ import annotations

import pytest

from rl_router.data.reasoning_tasks import ReasoningGymDataConfig, load_reasoning_gym, score_answer
from rl_router.data.schema import QAExample

TASKS = [
    {"name": "basic_arithmetic", "size": 6, "difficulty": {"min_terms": 2, "max_terms": 3, "max_digits": 2}},
    {"name": "leg_counting", "size": 6},
]


@pytest.fixture(scope="module")
def mixture():
    return load_reasoning_gym(TASKS, seed=3)


def test_mixture_sizes_sources_and_difficulty(mixture):
    assert len(mixture) == 12
    sources = sorted(set(mixture["source"]))
    assert sources == ["reasoning_gym/basic_arithmetic", "reasoning_gym/leg_counting"]
    for row in mixture:
        meta = QAExample.from_row(row).metadata
        if meta["task"] == "basic_arithmetic":
            assert meta["difficulty"] == {"min_terms": 2, "max_terms": 3, "max_digits": 2}
            assert meta["task_config"] == {
                "size": 6,
                "seed": 3,
                "min_terms": 2,
                "max_terms": 3,
                "max_digits": 2,
            }
            assert 2 <= meta["entry"]["num_terms"] <= 3  # the knob took effect
        else:
            assert meta["task_config"]["seed"] == 4  # task i uses seed + i


def test_gold_answers_verify_and_wrong_answers_do_not(mixture):
    for row in mixture:
        assert score_answer(row["golden_answers"][0], row) == 1.0
        assert score_answer("definitely not the answer", row) == 0.0
        assert score_answer(row["golden_answers"][0], QAExample.from_row(row)) == 1.0


def test_generation_is_deterministic_and_shuffle_interleaves(mixture):
    assert load_reasoning_gym(TASKS, seed=3)["id"] == mixture["id"]
    blocks = load_reasoning_gym(TASKS, seed=3, shuffle=False)["source"]
    assert blocks == ["reasoning_gym/basic_arithmetic"] * 6 + ["reasoning_gym/leg_counting"] * 6
    assert mixture["source"] != blocks


def test_bad_task_lists_are_refused():
    with pytest.raises(ValueError, match="each name once"):
        load_reasoning_gym([{"name": "leg_counting"}, {"name": "leg_counting"}])
    with pytest.raises(ValueError, match="not_a_knob"):
        load_reasoning_gym([{"name": "leg_counting", "size": 2, "difficulty": {"not_a_knob": 1}}])
    with pytest.raises(ValueError, match="positive count"):
        ReasoningGymDataConfig(tasks=[{"name": "chain_sum", "size": 0}])  # type: ignore[list-item]
