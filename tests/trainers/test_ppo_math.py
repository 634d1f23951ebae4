"""PPO maths against numbers worked out by hand."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Categorical

from rl_router.policies.masking import MASK_VALUE, masked_logits
from rl_router.trainers.ppo_math import (
    clipped_policy_loss,
    clipped_value_loss,
    compute_gae,
    entropy_masked,
    explained_variance,
    normalize_advantages,
)

torch.set_num_threads(1)

REWARDS = torch.tensor([[1.0], [2.0], [3.0]])
VALUES = torch.tensor([[0.5], [1.0], [1.5]])


def test_gae_three_steps_by_hand():
    # gamma=0.9, lam=0.5, gamma*lam=0.45, bootstrap V=2 after the last step:
    # d2 = 3 + 0.9*2.0 - 1.5 = 3.3                 A2 = 3.3
    # d1 = 2 + 0.9*1.5 - 1.0 = 2.35                A1 = 2.35 + 0.45*3.3   = 3.835
    # d0 = 1 + 0.9*1.0 - 0.5 = 1.4                 A0 = 1.4  + 0.45*3.835 = 3.12575
    adv, ret = compute_gae(REWARDS, VALUES, torch.zeros(3, 1), torch.tensor([2.0]), gamma=0.9, lam=0.5)
    assert adv.flatten().tolist() == pytest.approx([3.12575, 3.835, 3.3])
    assert ret.flatten().tolist() == pytest.approx([3.62575, 4.835, 4.8])


def test_gae_does_not_bootstrap_across_an_episode_end():
    # The episode ends at t=1: d1 = 2 - 1.0 = 1.0 (no V(s2)), A1 = 1.0; A0 = 1.4 + 0.45*1.0 = 1.85.
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    adv, _ = compute_gae(REWARDS, VALUES, dones, torch.tensor([2.0]), gamma=0.9, lam=0.5)
    assert adv.flatten().tolist() == pytest.approx([1.85, 1.0, 3.3])


def test_gae_lambda_one_gives_monte_carlo_returns():
    dones = torch.tensor([[0.0], [0.0], [1.0]])
    _, ret = compute_gae(REWARDS, VALUES, dones, torch.tensor([100.0]), gamma=1.0, lam=1.0)
    assert ret.flatten().tolist() == pytest.approx([6.0, 5.0, 3.0])


def test_gae_one_step_episodes_give_reward_minus_value():
    rewards, values = torch.rand(5, 4), torch.rand(5, 4)
    adv, ret = compute_gae(rewards, values, torch.ones(5, 4), torch.rand(4), gamma=0.99, lam=0.95)
    assert torch.allclose(adv, rewards - values)
    assert torch.allclose(ret, rewards)


def test_gae_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="must match"):
        compute_gae(torch.zeros(3, 2), torch.zeros(3, 1), torch.zeros(3, 2), torch.zeros(2), 0.9, 0.9)


def _grad_of_policy_loss(ratio: float, adv: float, clip: float = 0.2) -> tuple[float, float]:
    new_logp = torch.tensor([torch.log(torch.tensor(ratio)).item()], requires_grad=True)
    loss, frac, _ = clipped_policy_loss(new_logp, torch.zeros(1), torch.tensor([adv]), clip)
    loss.backward()
    return new_logp.grad.item(), frac.item()


@pytest.mark.parametrize(
    ("ratio", "adv", "clipped"),
    [
        (1.19, 1.0, False),
        (1.21, 1.0, True),
        (0.81, -1.0, False),
        (0.79, -1.0, True),
        (0.5, 1.0, False),
        (1.5, -1.0, False),
    ],
)
def test_clipping_kicks_in_only_beyond_one_plus_minus_epsilon(ratio, adv, clipped):
    grad, frac = _grad_of_policy_loss(ratio, adv)
    if clipped:
        assert grad == 0.0  # the clipped branch is constant in the ratio
    else:
        assert grad == pytest.approx(-adv * ratio, rel=1e-5)  # d(-A r)/d(log r) = -A r
    assert frac == (1.0 if abs(ratio - 1.0) > 0.2 else 0.0)


def test_policy_loss_value_and_kl():
    # ratio 1.5 with A=2: unclipped -3.0, clipped -2.4 -> max is -2.4; k3 KL = 0.5 - log 1.5.
    loss, frac, kl = clipped_policy_loss(
        torch.log(torch.tensor([1.5])), torch.zeros(1), torch.tensor([2.0]), 0.2
    )
    assert loss.item() == pytest.approx(-2.4)
    assert frac.item() == 1.0
    assert kl.item() == pytest.approx(0.5 - torch.log(torch.tensor(1.5)).item())


def test_value_loss_clipped_and_plain():
    new, old, ret = torch.tensor([3.0, 0.5]), torch.tensor([0.0, 0.0]), torch.tensor([3.0, 1.0])
    # row 0: unclipped 0, clipped (1-3)^2 = 4 -> 4; row 1: both 0.25 -> mean 0.5*(4+0.25)/2
    assert clipped_value_loss(new, old, ret, clip=1.0).item() == pytest.approx(0.5 * 4.25 / 2)
    assert clipped_value_loss(new, old, ret, clip=None).item() == pytest.approx(0.5 * 0.25 / 2)


def test_masked_actions_get_probability_zero_and_are_never_sampled():
    torch.manual_seed(0)
    logits = torch.tensor([[5.0, 0.0, 3.0, -1.0]]).repeat(4000, 1)
    mask = torch.tensor([[False, True, False, True]]).repeat(4000, 1)
    probs = torch.softmax(masked_logits(logits, mask), dim=-1)
    assert (probs[:, [0, 2]] == 0.0).all()
    samples = Categorical(logits=masked_logits(logits, mask)).sample()
    assert set(samples.unique().tolist()) == {1, 3}


def test_masked_logits_none_is_identity_and_bad_masks_raise():
    logits = torch.randn(2, 3)
    assert masked_logits(logits, None) is logits
    with pytest.raises(ValueError, match=r"rows \[1\] have every action masked"):
        masked_logits(logits, torch.tensor([[True, False, False], [False, False, False]]))
    with pytest.raises(ValueError, match="does not match"):
        masked_logits(logits, torch.ones(2, 4, dtype=torch.bool))
    assert masked_logits(logits, torch.tensor([[1, 0, 1], [1, 1, 1]]))[0, 1].item() == MASK_VALUE


def test_entropy_masked_is_over_valid_actions_with_finite_gradients():
    logits = torch.zeros(2, 4, requires_grad=True)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    ent = entropy_masked(logits, mask)
    assert ent.tolist() == pytest.approx(
        [torch.log(torch.tensor(2.0)).item(), torch.log(torch.tensor(4.0)).item()]
    )
    ent.sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert entropy_masked(torch.zeros(1, 3), None).item() == pytest.approx(
        torch.log(torch.tensor(3.0)).item()
    )


def test_normalize_advantages():
    out = normalize_advantages(torch.tensor([2.0, 4.0, 6.0, 8.0]))
    assert out.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert out.std().item() == pytest.approx(1.0, abs=1e-6)
    assert normalize_advantages(torch.tensor([5.0])).tolist() == [0.0]


def test_explained_variance():
    target = torch.tensor([1.0, 2.0, 3.0])
    assert explained_variance(target, target) == 1.0
    assert explained_variance(torch.full((3,), 2.0), target) == pytest.approx(0.0)
    assert explained_variance(target, torch.ones(3)) != explained_variance(target, torch.ones(3))  # NaN


@pytest.mark.parametrize(
    "module_name",
    ["rl_router.trainers.ppo_math", "rl_router.policies.mlp", "rl_router.policies.router_policy"],
)
def test_docstring_examples_hold(module_name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module_name))
    assert result.attempted > 0 and result.failed == 0


def test_group_advantages_subtract_each_groups_mean_per_step():
    from rl_router.trainers.ppo_math import group_advantages

    rewards = torch.tensor([[1.0, 0.0, 3.0, 1.0], [0.5, 0.5, -1.0, 1.0]])
    assert group_advantages(rewards, 2).tolist() == [[0.5, -0.5, 1.0, -1.0], [0.0, 0.0, -1.0, 1.0]]
    assert group_advantages(rewards, 1).abs().sum() == 0
    with pytest.raises(ValueError, match="group_size=3 does not divide the 4 sub-envs"):
        group_advantages(rewards, 3)
