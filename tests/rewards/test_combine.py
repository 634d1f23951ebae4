"""Combiners: Router-R1's truth table, BudgetMem's scale-matched sum, the weighted sum."""

import math
import pickle

import pytest

from rewards.combine import BudgetMemReward, RouterR1Reward, WeightedSum
from rewards.cost import PercentileCostNormalizer, ScaleMatcher, dollar_cost
from rewards.outcome import exact_match


@pytest.mark.parametrize(
    ("alpha", "format_ok", "correct", "cost", "expected"),
    [
        (0.6, False, 1.0, 1.0, -1.0),  # a format violation overrides a correct, free answer
        (0.6, False, 0.0, 0.0, -1.0),
        (0.0, False, 1.0, 1.0, -1.0),
        (0.0, True, 1.0, 0.0, 1.0),  # alpha = 0: a correct answer scores 1 whatever it cost
        (0.0, True, 0.0, 1.0, 0.0),
        (0.6, True, 1.0, 1.0, 1.0),  # correct and cheapest
        (0.6, True, 1.0, 0.0, 0.4),  # correct and costliest: only the (1 - alpha) part
        (0.9, True, 1.0, 0.5, 0.1 + 0.45),
        (0.6, True, 0.0, 1.0, 0.0),  # wrong: 0 however cheap
    ],
)
def test_router_r1_truth_table(alpha, format_ok, correct, cost, expected):
    reward = RouterR1Reward(alpha=alpha)
    got = reward(["x"], format_ok=[format_ok], correct=[correct], cost_term=[cost])
    assert got == [pytest.approx(expected)]


def test_router_r1_alpha_zero_needs_no_cost_and_rejects_bad_alpha():
    assert RouterR1Reward(alpha=0.0)(["x", "y"], format_ok=[True, True], correct=[1, 0]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="cost_term"):
        RouterR1Reward(alpha=0.6)(["x"], format_ok=[True], correct=[1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        RouterR1Reward(alpha=1.5)


def test_router_r1_with_live_normaliser_and_pickle():
    norm = PercentileCostNormalizer()
    norm.update([0.0, 1e-4, 4e-4, 9e-4, 16e-4])
    costs = [0.0, 16e-4]  # in the window with the batch: Q5 = 0, Q95 = 0.04 = sqrt(16e-4)
    reward = pickle.loads(pickle.dumps(RouterR1Reward(alpha=0.8, name="r1")))
    got = reward(
        ["a", "b"], format_ok=[True, True], correct=[1, 1], cost_term=norm(["a", "b"], cost_usd=costs)
    )
    assert got == [pytest.approx(1.0), pytest.approx(0.2)]
    assert reward.__name__ == "r1"


def test_budgetmem_reward_uses_matched_alpha():
    matcher = ScaleMatcher(min_history=1)
    matcher.update([0.0, 1.0, 0.0, 1.0], [0.4, 0.6, 0.4, 0.6])  # alpha = 0.5 / 0.1 = 5
    reward = BudgetMemReward(lam=0.1, scale=matcher)
    got = reward(["a", "b"], task_reward=[0.5, None], cost_term=[1.0, 1.0])
    assert got == [pytest.approx(0.5 + 0.1 * 5 * 1.0), None]
    assert BudgetMemReward(lam=0.0, scale=matcher)(["a"], task_reward=[0.3], cost_term=[1.0]) == [0.3]


def test_budgetmem_update_feeds_the_matcher_and_pickles():
    reward = BudgetMemReward(lam=0.3)
    reward.update([0.0, 1.0], [0.0, 0.5])
    restored = pickle.loads(pickle.dumps(reward))
    assert restored.alpha() == pytest.approx(2.0)
    assert BudgetMemReward(lam=0.3, alpha=1.0).alpha() == 1.0


def test_weighted_sum_returns_total_and_raw_terms():
    total = WeightedSum({"em": exact_match, "usd": dollar_cost}, weights={"em": 2.0, "usd": 100.0})
    out = total.score(["a", "b", "c"], golden_answers=[["a"], ["a"], None], cost_usd=[0.001, 0.002, None])
    assert out.terms["em"] == [1.0, 0.0, None]
    assert out.terms["usd"] == [-0.001, -0.002, None]
    assert out.total == [pytest.approx(1.9), pytest.approx(-0.2), None]
    assert total(["a"], golden_answers=[["a"]], cost_usd=[0.0]) == [2.0]
    metrics = out.metrics("train")
    assert metrics["train/reward/em"] == pytest.approx(0.5)
    assert metrics["train/reward/usd"] == pytest.approx(-0.0015)
    assert metrics["train/reward/total"] == pytest.approx(0.85)


def test_weighted_sum_skips_none_terms_per_row():
    out = WeightedSum({"em": exact_match, "usd": dollar_cost}).score(
        ["a"], golden_answers=[None], cost_usd=[0.5]
    )
    assert out.total == [-0.5]
    assert math.isnan(out.metrics()["train/reward/em"])


def test_weighted_sum_rejects_mismatched_weights_and_pickles():
    with pytest.raises(ValueError, match="one weight per term"):
        WeightedSum({"em": exact_match}, weights={"exact": 1.0})
    total = pickle.loads(pickle.dumps(WeightedSum({"em": exact_match}, name="reward")))
    assert total.__name__ == "reward"
    assert total(["x"], golden_answers=[["x"]]) == [1.0]
