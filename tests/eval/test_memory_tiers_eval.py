"""memory_tiers evaluation: diversity numbers, baselines matched at no more cost, coordinate ascent."""

from __future__ import annotations

import math

import pytest

from rl_router.eval.memory_tiers import (
    best_fixed_per_module,
    diversity_point,
    dollar_price,
    matched_baselines,
    routing_diversity,
    selection_score,
    summarize,
)


def record(tiers, f1, cost, category=4):
    return {
        "tiers": tiers,
        "f1": f1,
        "cost_usd": cost,
        "answer_cost_usd": 0.0,
        "category": category,
        "calls": {"filter": 1},
        "cache_hits": {"filter": 0},
    }


def test_routing_diversity_counts_joint_choices():
    assert routing_diversity([["low"] * 5] * 4) == (0.0, 0.0)
    entropy, off = routing_diversity([["low"] * 5, ["mid"] * 5, ["high"] * 5])
    assert entropy == pytest.approx(math.log2(3)) and off == pytest.approx(2 / 3)


def test_summary_reports_points_dollars_and_shares():
    s = summarize([record(["low"] * 5, 0.5, 1e-4, 1), record(["high"] + ["low"] * 4, 0.25, 3e-4, 2)])
    assert s["f1"] == pytest.approx(37.5) and s["cost_usd"] == pytest.approx(2e-4)
    assert s["f1_by_category"] == {"1": 50.0, "2": 25.0}
    assert s["tier_share"]["filter"] == {"low": 0.5, "mid": 0.0, "high": 0.5} and s["off_modal"] == 0.5


def test_matched_baselines_need_equal_or_better_f1_at_no_more_cost():
    baselines = {"low": (1.0, 10.0), "mid": (2.0, 20.0), "high": (5.0, 30.0)}
    points = {"a": (1.0, 10.0), "b": (4.0, 25.0)}
    assert matched_baselines(baselines, points) == ["low"]  # b beats mid's F1 but costs more


def test_coordinate_ascent_scores_each_module_once_per_tier():
    calls = []

    def score(choice):
        calls.append(choice)
        return -sum(abs(t - g) for t, g in zip(choice, (0, 2, 1, 1, 0), strict=True))

    best, seen = best_fixed_per_module(score)
    assert best == (0, 2, 1, 1, 0) and len(calls) == len(set(calls)) == len(seen) == 11


def test_summary_reports_route_share_over_all_module_decisions():
    s = summarize([record(["low"] * 5, 0.5, 1e-4), record(["high"] * 4 + ["mid"], 0.0, 3e-4)])
    assert s["route_share"] == pytest.approx({"low": 0.5, "mid": 0.1, "high": 0.4})
    assert s["dollars_per_query"] == s["cost_usd"] == pytest.approx(2e-4)


def test_checkpoints_are_chosen_by_f1_less_lambda_times_the_validation_price_of_a_dollar():
    baselines = {"all_low": (1e-4, 3.0), "all_mid": (3e-4, 7.0), "all_high": (1e-3, 6.0)}
    price = dollar_price(baselines)  # (7 - 3) points over 2e-4 dollars
    assert price == pytest.approx(2e4)
    assert selection_score((3e-4, 7.0), 0.0, price) == 7.0
    # at lam = 1 all-Low and the best fixed baseline score alike; below it the better one wins
    assert selection_score((1e-4, 3.0), 1.0, price) == pytest.approx(selection_score((3e-4, 7.0), 1.0, price))
    assert selection_score((3e-4, 7.0), 0.5, price) > selection_score((1e-4, 3.0), 0.5, price)
    assert dollar_price({"all_low": (1e-4, 3.0), "all_high": (1e-3, 2.0)}) == 0.0


def test_diversity_is_read_at_the_most_diverse_lambda_within_two_points():
    sweep = {
        "lam=0": {"f1": 7.0, "off_modal": 0.05},
        "lam=0.1": {"f1": 5.0, "off_modal": 0.3},  # exactly 2 points below: qualifies
        "lam=0.3": {"f1": 4.9, "off_modal": 0.5},  # 2.1 below: does not
    }
    assert diversity_point(sweep, sweep["lam=0"])[0] == "lam=0.1"
