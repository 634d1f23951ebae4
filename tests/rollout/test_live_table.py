"""Live routing tables and QA mixtures: one batched pool call, reply scoring, stratified splits."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from rl_router.data.mixture import load_qa_splits
from rl_router.data.schema import QAExample, to_dataset
from rl_router.pool import ModelConfig, PoolConfig, build_pool
from rl_router.rollout.live_table import collect_routing_table


def qa(source: str, n: int) -> datasets.Dataset:
    return to_dataset(
        QAExample(id=f"{source}/{i}", question=f"{source} q {i}?", golden_answers=[str(i)], source=source)
        for i in range(n)
    )


def test_split_holds_out_the_same_share_of_every_source():
    train, validation, test = load_qa_splits([qa("a", 10), qa("b", 20)], test_fraction=0.3, split_seed=1)
    assert sorted(test["source"]).count("a") == 3 and sorted(test["source"]).count("b") == 6
    assert sorted(validation["source"]).count("a") == 1 and sorted(validation["source"]).count("b") == 2
    assert len(train) == 18
    assert not set(train["id"]) & set(test["id"]) and not set(validation["id"]) & (
        set(train["id"]) | set(test["id"])
    )
    again = load_qa_splits([qa("a", 10), qa("b", 20)], test_fraction=0.3, split_seed=1)
    assert again.test["id"] == test["id"] and again.validation["id"] == validation["id"]  # seeded
    # the test rows are the ones a (train, test) split drew before validation existed
    without = load_qa_splits([qa("a", 10), qa("b", 20)], test_fraction=0.3, split_seed=1, val_fraction=0.01)
    assert without.test["id"] == test["id"]


def test_parts_with_clashing_ids_are_refused():
    with pytest.raises(ValueError, match="share row ids"):
        load_qa_splits([qa("a", 3), qa("a", 3)])


def fake_pool(failure_rate: float = 0.0):
    models = [
        ModelConfig(name="echo", backend="fake", price_in=1.0, price_out=1.0),
        ModelConfig(
            name="seven", backend="fake", price_in=2.0, price_out=2.0,
            fake={"answers": ["It is 7."], "failure_rate": failure_rate},
        ),
    ]  # fmt: skip
    return build_pool(PoolConfig(models=models, cache=False))


def test_table_records_every_candidate_in_one_batched_call_per_model():
    examples = [dict(row) for row in qa("q", 9)]
    with fake_pool() as pool:
        table = collect_routing_table(pool, examples, name="live")
        assert [b.batch_sizes for b in pool.backends.values()] == [[9], [9]]
    assert table.ids == [f"q/{i}" for i in range(9)]
    # "echo" repeats the question, whose last number is the row index = the golden answer
    assert table.scores[:, 0].tolist() == [1.0] * 9
    # "seven" always states 7: right only on row 7
    assert table.scores[:, 1].tolist() == [float(i == 7) for i in range(9)]
    assert table.output_tokens[0, 1] == 3 and table.responses[0][1] == "It is 7."


def test_failed_calls_score_zero_and_keep_no_response():
    examples = [dict(row) for row in qa("q", 40)]
    with fake_pool(failure_rate=0.5) as pool:
        table = collect_routing_table(pool, examples, name="live")
    failed = np.array([row[1] is None for row in table.responses])
    assert 5 < failed.sum() < 35
    assert np.all(table.scores[failed, 1] == 0.0)
