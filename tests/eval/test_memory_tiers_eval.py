"""memory_tiers evaluation: diversity numbers, baselines matched at no more cost, coordinate ascent."""

from __future__ import annotations

import math

import pytest

from rl_router.eval.memory_tiers import best_fixed_per_module, matched_baselines, routing_diversity, summarize


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
