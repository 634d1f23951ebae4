"""Table evaluation baselines: the oracle on graded and on 0/1 scores."""

from __future__ import annotations

import numpy as np
import pytest

from rl_router.eval.table_eval import baseline_choices, evaluate_table

# three models, cheapest first: $1, $2, $5 per call on every row
DOLLARS = np.array([[1.0, 2.0, 5.0]] * 4)


def oracle_columns(scores: np.ndarray, dollars: np.ndarray = DOLLARS) -> list[int]:
    return baseline_choices(scores, dollars)["oracle"].argmax(axis=1).tolist()


def test_oracle_takes_the_cheapest_model_with_the_best_graded_score():
    scores = np.array(
        [
            [0.1, 0.1, 0.9],  # MT-Bench-like: every model scores > 0, only the dearest is best
            [0.1, 0.8, 0.8],  # a tie on the best score: the cheaper of the two
            [0.5, 0.5, 0.5],  # all equal: the cheapest
            [0.7, 0.2, 0.6],  # the cheapest is also the best
        ]
    )
    assert oracle_columns(scores) == [2, 1, 0, 0]
    report = evaluate_table(np.full((4, 3), 1 / 3), scores, DOLLARS, ["a", "b", "c"])
    assert report["oracle"]["accuracy"] == pytest.approx((0.9 + 0.8 + 0.5 + 0.7) / 4)
    assert report["oracle"]["dollars_per_query"] == pytest.approx((5 + 2 + 1 + 1) / 4)


def test_oracle_on_zero_one_scores_is_the_cheapest_correct_model():
    scores = np.array([[0, 1, 1], [0, 0, 0], [1, 1, 1], [0, 0, 1]], dtype=float)
    assert oracle_columns(scores) == [1, 0, 0, 2]  # none correct (row 1): the cheapest overall
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 2, size=(200, 4)).astype(float)
    dollars = rng.uniform(0, 1, size=(200, 4))
    # the rule before graded scores: cheapest among score > 0, else cheapest overall
    masked = np.where(scores > 0, dollars, np.inf)
    before = np.where(np.isfinite(masked.min(axis=1)), masked.argmin(axis=1), dollars.argmin(axis=1))
    assert oracle_columns(scores, dollars) == before.tolist()


def test_oracle_breaks_price_ties_by_column_order():
    scores = np.array([[1.0, 1.0]])
    assert oracle_columns(scores, np.array([[3.0, 3.0]])) == [0]


def test_router_row_follows_the_given_decisions_while_apgr_reads_the_probabilities():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    scores = np.array([[0, 1], [1, 1], [0, 1], [1, 0]], dtype=float)
    dollars = np.array([[1.0, 10.0]] * 4)
    raw = evaluate_table(probs, scores, dollars, ["weak", "strong"], strong=1)
    moved = evaluate_table(
        probs, scores, dollars, ["weak", "strong"], strong=1, choice=np.array([1, 1, 1, 0])
    )
    assert raw["router"]["route_share"] == {"weak": 0.5, "strong": 0.5}
    assert moved["router"]["route_share"] == {"weak": 0.25, "strong": 0.75}
    assert moved["router"]["dollars_per_query"] == pytest.approx((10 + 10 + 10 + 1) / 4)
    assert moved["router"]["accuracy"] == 1.0
    assert moved["router"]["apgr"] == raw["router"]["apgr"]  # the threshold metric ignores the decisions
