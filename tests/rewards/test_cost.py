"""Cost rewards: sign convention, percentile normaliser (batch in its window) vs numpy and by hand,
window eviction, frozen references, alpha matching."""

import pickle

import numpy as np
import pytest

from rewards.cost import PercentileCostNormalizer, ScaleMatcher, dollar_cost


def reference_c(costs, window_costs):
    """The formula written out with numpy, the oracle for the normaliser."""
    s = np.sqrt(np.asarray(window_costs))
    q5, q95 = np.percentile(s, [5, 95])
    return 1 - np.clip((np.sqrt(np.asarray(costs)) - q5) / (q95 - q5), 0, 1)


def test_dollar_cost_is_negative_so_higher_is_better():
    assert dollar_cost(["a", "b", "c"], cost_usd=[0.5, 0.0, None]) == [-0.5, -0.0, None]


def test_normaliser_matches_numpy_percentiles_on_a_known_window():
    rng = np.random.default_rng(0)
    window = rng.lognormal(-8, 1.5, size=500)
    batch = np.concatenate([rng.lognormal(-8, 1.5, size=50), [0.0, 1.0]])
    norm = PercentileCostNormalizer(window=2000)
    norm.update(window.tolist())
    got = norm(["x"] * len(batch), cost_usd=batch.tolist())
    everything = np.concatenate([window, batch])  # the batch is in the window it is scored against
    np.testing.assert_allclose(got, reference_c(batch, everything), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(norm.quantiles(), np.percentile(np.sqrt(everything), [5, 95]))
    assert got[-2] == 1.0 and got[-1] == 0.0  # free is cheapest, a dollar is far above Q95
    assert all(0.0 <= c <= 1.0 for c in got)


def test_a_first_batch_is_scored_with_itself_in_the_window():
    norm = PercentileCostNormalizer()
    # sqrt costs 0, 1, 2: Q5 = 0.1, Q95 = 1.9, so C = 1, 1 - 0.9 / 1.8 = 0.5, 0
    assert norm.score_batch([0.0, 1.0, 4.0]) == [1.0, pytest.approx(0.5), 0.0]
    assert norm.num_episodes == 3


def test_a_batch_joins_the_history_before_its_percentiles_are_taken():
    norm = PercentileCostNormalizer()
    norm.update([0.0, 16.0])  # sqrt 0, 4
    # window sqrt 0, 1, 3, 4: Q5 = 0.15, Q95 = 3.85, spread 3.7 (the history alone: 0.2, 3.8)
    got = norm.score_batch([1.0, 9.0])
    assert got == [pytest.approx(1 - 0.85 / 3.7), pytest.approx(1 - 2.85 / 3.7)]
    assert norm.num_episodes == 4


def test_one_episode_on_an_empty_window_scores_one_half():
    norm = PercentileCostNormalizer()
    assert norm.score_batch([0.3]) == [0.5]  # Q5 == Q95 == its own cost: no spread
    assert norm.state_dict()["sqrt_costs"] == [pytest.approx(0.3**0.5)]


def test_identical_costs_score_one_half():
    norm = PercentileCostNormalizer()
    assert norm.score_batch([0.01] * 4) == [0.5] * 4
    assert norm.score_batch([0.01]) == [0.5]  # still no spread once the history has them


def test_call_is_score_batch_under_trls_signature():
    norm, twin = PercentileCostNormalizer(), PercentileCostNormalizer()
    assert norm(["a", "b", "c"], cost_usd=[0.0, 1.0, 4.0]) == twin.score_batch([0.0, 1.0, 4.0])
    assert norm.state_dict() == twin.state_dict()  # __call__ adds the batch too
    with pytest.raises(ValueError, match="rows must align"):
        norm(["a"], cost_usd=[0.0, 1.0])


def test_frozen_reference_scores_against_it_and_never_adds():
    norm = PercentileCostNormalizer.from_reference([0.0, 1.0, 4.0, 9.0, 16.0])  # sqrt 0..4: Q5 0.2, Q95 3.8
    for _ in range(2):
        assert norm.score_batch([4.0, 25.0, 0.0]) == [pytest.approx(0.5), 0.0, 1.0]
    norm.update([100.0])
    assert norm.num_episodes == 5 and norm.quantiles() == pytest.approx((0.2, 3.8))
    assert PercentileCostNormalizer.from_reference([0.04]).score_batch([0.0, 1.0]) == [0.5, 0.5]


def test_normaliser_is_monotone_decreasing_in_cost():
    norm = PercentileCostNormalizer()
    norm.update(np.linspace(0, 1e-3, 200).tolist())
    costs = np.linspace(0, 2e-3, 50).tolist()
    assert np.all(np.diff(norm(["x"] * 50, cost_usd=costs)) <= 0)


def test_rolling_window_evicts_the_oldest_episodes():
    norm = PercentileCostNormalizer(window=4)
    norm.update([100.0, 100.0, 100.0, 100.0])
    # the two oldest 100s fall out first: sqrt 10, 10, 1, 2 -> Q5 = 1.15, Q95 = 10
    assert norm.score_batch([1.0, 4.0]) == [1.0, pytest.approx(1 - 0.85 / 8.85)]
    assert norm.num_episodes == 4
    assert sorted(norm.state_dict()["sqrt_costs"]) == [1.0, 2.0, 10.0, 10.0]
    # again: the 100s are gone, sqrt 1, 2, 1, 2 -> Q5 = 1, Q95 = 2
    assert norm.score_batch([1.0, 4.0]) == [1.0, 0.0]
    np.testing.assert_allclose(norm.quantiles(), [1.0, 2.0])


def test_normaliser_rejects_negative_costs_and_skips_unknown_ones():
    norm = PercentileCostNormalizer()
    with pytest.raises(ValueError, match="non-negative"):
        norm.score_batch([0.1, -1.0])
    assert norm.num_episodes == 0  # nothing of a rejected batch is added
    assert norm.score_batch([None, None]) == [None, None] and norm.num_episodes == 0
    # the unknown costs are neither added nor scored: the window is sqrt 0, 2 -> Q5 = 0.1, Q95 = 1.9
    assert norm.score_batch([None, 0.0, None, 4.0]) == [None, 1.0, None, 0.0]
    assert norm.num_episodes == 2
    with pytest.raises(ValueError, match="no cost history"):
        PercentileCostNormalizer().quantiles()


def test_normaliser_pickles_with_its_window():
    norm = PercentileCostNormalizer(window=3, name="cost_c")
    norm.update([0.1, 0.2, 0.3, 0.4])
    restored = pickle.loads(pickle.dumps(norm))
    assert restored.__name__ == "cost_c"
    assert restored.state_dict() == norm.state_dict()
    restored.update([0.5])  # maxlen survives the round trip
    assert restored.num_episodes == 3
    # 0.45 is the dearest in the original's window (C = 0), not in the restored one's
    assert restored(["x"], cost_usd=[0.45]) != norm(["x"], cost_usd=[0.45])


def test_state_dict_round_trip():
    norm = PercentileCostNormalizer(window=10)
    norm.score_batch([0.01, 0.02, 0.5])
    fresh = PercentileCostNormalizer(window=10)
    fresh.load_state_dict(norm.state_dict())
    assert fresh.score_batch([0.03, 0.2]) == norm.score_batch([0.03, 0.2])
    assert fresh.state_dict() == norm.state_dict()
    frozen = PercentileCostNormalizer.from_reference([0.0, 1.0, 4.0])
    thawed = PercentileCostNormalizer(window=3)
    thawed.load_state_dict(frozen.state_dict())
    assert thawed.frozen and thawed.score_batch([1.0]) == frozen.score_batch([1.0])
    assert thawed.num_episodes == 3


def test_scale_matcher_matches_the_std_ratio():
    rng = np.random.default_rng(1)
    task = rng.binomial(1, 0.4, size=5000).astype(float)  # std ~0.49
    cost = rng.uniform(0.4, 0.6, size=5000)  # std ~0.058
    matcher = ScaleMatcher(window=2000)
    matcher.update(task.tolist(), cost.tolist())
    alpha = matcher.alpha()
    assert alpha == pytest.approx(task[-2000:].std() / cost[-2000:].std(), rel=1e-12)
    assert alpha == pytest.approx(np.sqrt(0.4 * 0.6) / (0.2 / np.sqrt(12)), rel=0.05)
    # after matching, the scaled cost term spreads like the task term
    assert (alpha * cost[-2000:]).std() == pytest.approx(task[-2000:].std(), rel=1e-9)


def test_scale_matcher_fallbacks():
    matcher = ScaleMatcher(min_history=1, default=1.0)
    assert matcher.alpha() == 1.0  # nothing seen
    matcher.update([0.0, 1.0], [0.5, 0.5])
    assert matcher.alpha() == 1.0  # cost term has no spread: ratio undefined
    matcher.update([None, 1.0], [0.3, None])  # half-known rows are skipped
    assert matcher.num_episodes == 2


def test_scale_matcher_pools_batch_during_warm_up_and_pickles():
    matcher = ScaleMatcher(min_history=100)
    assert matcher.alpha([0.0, 1.0], [0.0, 0.5]) == pytest.approx(2.0)
    restored = pickle.loads(pickle.dumps(matcher))
    restored.update([0.0, 1.0], [0.0, 0.25])
    assert restored.alpha() == pytest.approx(4.0)


def test_an_empty_normaliser_is_truthy():
    # callers write `normalizer or PercentileCostNormalizer()`; an empty shared one must survive that
    assert PercentileCostNormalizer() and ScaleMatcher()


def test_min_history_defaults_to_fit_small_windows():
    assert ScaleMatcher(window=4).min_history == 4
    assert ScaleMatcher().min_history == 100
    with pytest.raises(ValueError, match="min_history"):
        ScaleMatcher(window=8, min_history=9)
