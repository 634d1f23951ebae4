"""RouteLLM metrics: endpoints, random router ~0.5 APGR, a perfect router against hand numbers."""

import numpy as np
import pytest

from rl_router.eval.routellm_metrics import (
    apgr,
    cpt,
    curve_apgr,
    curve_cpt,
    oracle,
    oracle_curve,
    quantile_apgr,
    quantile_curve,
    random_router_curve,
    summary,
    threshold_curve,
)


def synthetic_outcomes(seed: int, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Correlated 0/1 outcomes: weak ~55% right, strong ~80%, strong usually right where weak is."""
    rng = np.random.default_rng(seed)
    weak = rng.random(n) < 0.55
    strong = np.where(weak, rng.random(n) < 0.9, rng.random(n) < 0.68)
    return weak.astype(float), strong.astype(float)


def test_curve_ends_at_the_single_models():
    weak, strong = synthetic_outcomes(0)
    p = np.random.default_rng(1).random(weak.size)
    curve = threshold_curve(p, weak, strong)
    assert curve["pct_strong"][0] == 0.0 and curve["pct_strong"][-1] == 100.0
    assert curve["quality"][0] == pytest.approx(weak.mean())
    assert curve["quality"][-1] == pytest.approx(strong.mean())
    assert curve["pgr"][0] == pytest.approx(0.0) and curve["pgr"][-1] == pytest.approx(1.0)
    assert np.all(np.diff(curve["pct_strong"]) > 0)
    assert len(curve["threshold"]) == len(np.unique(p)) + 1


def test_curve_matches_brute_force_thresholding_with_ties():
    rng = np.random.default_rng(2)
    weak, strong = synthetic_outcomes(3, n=300)
    p = rng.integers(0, 7, size=300) / 6  # many ties
    curve = threshold_curve(p, weak, strong)
    for t, pct, quality in zip(curve["threshold"], curve["pct_strong"], curve["quality"], strict=True):
        to_strong = p >= t
        assert pct == pytest.approx(100 * to_strong.mean())
        assert quality == pytest.approx(np.where(to_strong, strong, weak).mean())


def test_random_router_scores_half_apgr():
    scores = []
    for seed in range(5):
        weak, strong = synthetic_outcomes(seed)
        p = np.random.default_rng(100 + seed).random(weak.size)
        scores.append(apgr(p, weak, strong))
    assert np.mean(scores) == pytest.approx(0.5, abs=0.03)
    weak, strong = synthetic_outcomes(0)
    expected = random_router_curve(weak, strong)
    assert curve_apgr(expected) == pytest.approx(0.5)
    np.testing.assert_allclose(expected["pgr"], expected["pct_strong"] / 100)


def test_perfect_router_against_hand_numbers():
    # 1000 queries: 500 both right, 200 only strong right, 300 both wrong.
    # Q_weak = 0.5, Q_strong = 0.7; the oracle sends the 200 (20%) to strong and reaches 0.7.
    weak = np.r_[np.ones(500), np.zeros(200), np.zeros(300)]
    strong = np.r_[np.ones(500), np.ones(200), np.zeros(300)]
    p = np.r_[np.zeros(500), np.ones(200), np.zeros(300)]
    stats = oracle(weak, strong)
    assert stats["quality"] == pytest.approx(0.7)
    assert stats["pct_strong"] == pytest.approx(20.0)
    assert stats["pgr"] == pytest.approx(1.0)
    # curve (0%, 0) -> (20%, 1) -> (100%, 1): area 0.2 * 0.5 + 0.8 * 1 = 0.9 = 1 - f/2
    assert apgr(p, weak, strong) == pytest.approx(0.9)
    assert stats["apgr"] == pytest.approx(0.9)
    assert curve_apgr(oracle_curve(weak, strong)) == pytest.approx(0.9)
    assert cpt(p, weak, strong, target_pgr=0.5) == pytest.approx(stats["pct_strong"] / 2)
    assert cpt(p, weak, strong, target_pgr=0.8) == pytest.approx(16.0)
    assert cpt(p, weak, strong, target_pgr=0.0) == 0.0


def test_perfect_ordering_router_against_oracle_when_strong_sometimes_hurts():
    # Ordering by strong - weak: helpful (f) first, ties (t), harmful (h) last. Its curve is
    # (0, 0) -> (f, P) -> (f + t, P) -> (1, 1) with P = f / (f - h) > 1; the oracle stays at P to 100%
    # (it never makes a harmful call), so the gap is the triangle h * (P - 1) / 2.
    weak, strong = synthetic_outcomes(4)
    f, h = np.mean(strong > weak), np.mean(strong < weak)
    peak = f / (f - h)
    best = oracle(weak, strong)
    assert best["pgr"] == pytest.approx(peak)
    assert best["apgr"] == pytest.approx(f * peak / 2 + (1 - f) * peak)
    ours = apgr(strong - weak, weak, strong)
    assert ours == pytest.approx(best["apgr"] - h * (peak - 1) / 2)
    assert ours > 0.9


def test_cpt_interpolates_and_reports_unreachable_targets():
    curve = {"pct_strong": np.array([0.0, 10.0, 50.0, 100.0]), "pgr": np.array([0.0, 0.2, 0.6, 1.0])}
    assert curve_cpt(curve, 0.5) == pytest.approx(40.0)
    assert curve_cpt(curve, 0.2) == pytest.approx(10.0)
    assert np.isnan(curve_cpt(curve, 1.5))


def test_equal_quality_models_raise():
    with pytest.raises(ValueError, match="same quality"):
        threshold_curve([0.1, 0.9], [1, 0], [0, 1])
    with pytest.raises(ValueError, match="same quality"):
        oracle([1, 0], [0, 1])
    with pytest.raises(ValueError, match="same quality"):
        random_router_curve([1, 1], [1, 1])


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="rows must align"):
        threshold_curve([0.5], [0, 1], [1, 1])
    with pytest.raises(ValueError, match="NaN"):
        threshold_curve([0.5, np.nan], [0, 1], [1, 1])


def test_summary_collects_the_reported_numbers():
    weak, strong = synthetic_outcomes(5, n=500)
    p = strong - weak + np.random.default_rng(0).normal(0, 0.5, size=500)
    out = summary(p, weak, strong)
    assert set(out) == {"apgr", "cpt_20", "cpt_50", "cpt_80", "weak_quality", "strong_quality", "oracle_apgr"}
    assert 0.5 < out["apgr"] < out["oracle_apgr"]
    assert out["cpt_20"] < out["cpt_50"] < out["cpt_80"]


def test_quantile_apgr_is_the_full_curve_when_every_score_is_an_edge():
    rng = np.random.default_rng(3)
    p, weak, strong = rng.random(41), rng.integers(0, 2, 41), rng.integers(0, 2, 41)
    # n distinct scores and n - 1 bins: the quantile edges are the scores themselves; 4 bins of 41
    # scores: edges at sorted positions 0, 10, 20, 30, 40, so 41, 31, 21, 11 and 0 rows go strong
    assert quantile_apgr(p, weak, strong, num_results=40) == pytest.approx(apgr(p, weak, strong), abs=1e-12)
    coarse = quantile_curve(p, weak, strong, num_results=4)
    assert np.allclose(coarse["pct_strong"], [0.0, 100 * 11 / 41, 100 * 21 / 41, 100 * 31 / 41, 100.0])
    with pytest.raises(ValueError, match="not unique"):
        quantile_curve(np.r_[np.zeros(30), p[:11]], weak, strong)
