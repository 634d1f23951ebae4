"""Cost rewards: sign convention, percentile normaliser vs numpy, window eviction, alpha matching."""

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
    np.testing.assert_allclose(got, reference_c(batch, window), rtol=1e-12, atol=1e-12)
    q5, q95 = norm.quantiles()
    np.testing.assert_allclose([q5, q95], np.percentile(np.sqrt(window), [5, 95]))
    assert got[-2] == 1.0 and got[-1] == 0.0  # free is cheapest, a dollar is far above Q95
    assert all(0.0 <= c <= 1.0 for c in got)


def test_normaliser_is_monotone_decreasing_in_cost():
    norm = PercentileCostNormalizer(min_history=1)
    norm.update(np.linspace(0, 1e-3, 200).tolist())
    costs = np.linspace(0, 2e-3, 50).tolist()
    assert np.all(np.diff(norm(["x"] * 50, cost_usd=costs)) <= 0)


def test_rolling_window_evicts_the_oldest_episodes():
    norm = PercentileCostNormalizer(window=4, min_history=1)
    norm.update([100.0, 100.0, 100.0, 100.0])
    norm.update([1.0, 4.0])  # the two oldest 100s fall out
    assert norm.num_episodes == 4
    assert sorted(norm.state_dict()["sqrt_costs"]) == [1.0, 2.0, 10.0, 10.0]
    norm.update([1.0, 4.0])
    np.testing.assert_allclose(norm.quantiles(), np.percentile([1.0, 2.0, 1.0, 2.0], [5, 95]))


def test_warm_up_pools_the_batch_until_min_history():
    norm = PercentileCostNormalizer(min_history=10)
    batch = [0.0, 1e-4, 4e-4, 9e-4]
    # empty window: the batch is normalised against itself
    np.testing.assert_allclose(norm(["x"] * 4, cost_usd=batch), reference_c(batch, batch))
    norm.update([1e-4] * 5)
    np.testing.assert_allclose(norm(["x"] * 4, cost_usd=batch), reference_c(batch, [1e-4] * 5 + batch))
    norm.update([1e-4] * 5)  # now 10 episodes: the history alone sets the percentiles, Q5 == Q95
    assert norm(["x"] * 4, cost_usd=batch) == [1.0, 1.0, 0.0, 0.0]


def test_single_episode_reference_is_a_step_at_its_cost():
    norm = PercentileCostNormalizer(min_history=1)
    assert norm(["x"], cost_usd=[0.3]) == [1.0]  # one cost against itself: Q5 == Q95 == it
    norm.update([0.04])
    assert norm(["x", "y", "z"], cost_usd=[0.01, 0.04, 0.09]) == [1.0, 1.0, 0.0]


def test_normaliser_rejects_negative_costs_and_skips_unknown_ones():
    norm = PercentileCostNormalizer()
    with pytest.raises(ValueError, match="non-negative"):
        norm.update([-1.0])
    assert norm(["x", "y"], cost_usd=[None, None]) == [None, None]
    assert norm(["x", "y"], cost_usd=[None, 0.1])[0] is None


def test_normaliser_pickles_with_its_window():
    norm = PercentileCostNormalizer(window=3, min_history=1, name="cost_c")
    norm.update([0.1, 0.2, 0.3, 0.4])
    restored = pickle.loads(pickle.dumps(norm))
    assert restored.__name__ == "cost_c"
    assert restored.state_dict() == norm.state_dict()
    restored.update([0.5])  # maxlen survives the round trip
    assert restored.num_episodes == 3
    assert restored(["x"], cost_usd=[0.25]) != norm(["x"], cost_usd=[0.25])


def test_state_dict_round_trip():
    norm = PercentileCostNormalizer(min_history=1)
    norm.update([0.01, 0.02, 0.5])
    fresh = PercentileCostNormalizer(min_history=1)
    fresh.load_state_dict(norm.state_dict())
    assert fresh(["x"], cost_usd=[0.03]) == norm(["x"], cost_usd=[0.03])


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
    assert PercentileCostNormalizer(window=8).min_history == 8
    assert PercentileCostNormalizer().min_history == 100
    assert ScaleMatcher(window=4).min_history == 4
    with pytest.raises(ValueError, match="min_history"):
        PercentileCostNormalizer(window=8, min_history=9)
