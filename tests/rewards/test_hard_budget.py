"""Hard budgets: masks before sampling; no policy that samples within the mask can overspend."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards.hard_budget import EpisodeBudget, HardBudgetConfig
from rl_router.pool.types import ModelDescriptor, SamplingParams

TIERS = [
    ModelDescriptor("small", "fake", price_in=0.1, price_out=0.1, sampling=SamplingParams(max_tokens=32)),
    ModelDescriptor("mid", "fake", price_in=0.5, price_out=0.5, sampling=SamplingParams(max_tokens=32)),
    ModelDescriptor("large", "fake", price_in=2.0, price_out=4.0, sampling=SamplingParams(max_tokens=32)),
]


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="env.budget.kind='tokens'"):
        HardBudgetConfig(kind="tokens")
    with pytest.raises(ValueError, match="whole number"):
        HardBudgetConfig(low=0.5, high=0.7)
    with pytest.raises(ValueError, match="low <= high"):
        HardBudgetConfig(low=5, high=2)
    with pytest.raises(ValueError, match=r"expensive names \['huge'\]"):
        HardBudgetConfig(expensive=["huge"]).expensive_models(TIERS)


def test_expensive_defaults_to_all_but_cheapest_and_caps_are_integers():
    cfg = HardBudgetConfig(low=1, high=3)
    assert cfg.expensive_models(TIERS) == ("mid", "large")
    caps = {cfg.draw(np.random.default_rng(s), TIERS).cap for s in range(50)}
    assert caps == {1.0, 2.0, 3.0}


def test_dollar_mask_uses_worst_case_reply():
    # large's worst case on a 100-token prompt: (100*2 + 32*4)/1e6 = 3.28e-4
    budget = EpisodeBudget("dollars", cap=3.3e-4)
    assert budget.mask(TIERS, input_tokens=100).tolist() == [True, True, True]
    budget.charge("small", 1e-5)
    assert budget.mask(TIERS, input_tokens=100).tolist() == [True, True, False]
    assert budget.fraction_left == pytest.approx(1 - 1e-5 / 3.3e-4)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(["dollars", "expensive_calls"]),
    low=st.floats(0.0, 4.0),
    width=st.floats(0.0, 6.0),
    prefer=st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3),
)
def test_no_random_policy_within_the_mask_overspends(seed, kind, low, width, prefer):
    """Random policies, seeds and caps: sampling only unmasked tiers never ends over budget."""
    rng = np.random.default_rng(seed)
    if kind == "dollars":
        cfg = HardBudgetConfig(kind=kind, low=low * 1e-3, high=(low + width + 1) * 1e-3)
    else:
        cfg = HardBudgetConfig(kind=kind, low=int(low), high=int(low + width))
    budget = cfg.draw(rng, TIERS)
    weights = np.asarray(prefer) + 1e-3
    for _ in range(40):
        prompt = int(rng.integers(10, 400))
        mask = budget.mask(TIERS, input_tokens=prompt)
        if not mask.any():
            break
        p = np.where(mask, weights, 0.0)
        tier = TIERS[int(rng.choice(3, p=p / p.sum()))]
        reply = int(rng.integers(0, tier.sampling.max_tokens + 1))
        budget.charge(tier.name, tier.cost_usd(prompt, reply))
        assert not budget.over, (kind, budget)
