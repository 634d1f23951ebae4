"""ActorCritic: shapes, CleanRL initialisation, masking, config checks."""

from __future__ import annotations

import pytest
import torch

from rl_router.policies.mlp import ActorCritic, MLPPolicyConfig

torch.set_num_threads(1)


def test_shapes_and_near_uniform_initial_policy():
    torch.manual_seed(0)
    policy = ActorCritic(obs_dim=4, num_actions=3, hidden_sizes=[32, 32])
    logits, value = policy(torch.randn(7, 4))
    assert logits.shape == (7, 3) and value.shape == (7,)
    probs = torch.softmax(logits, -1)
    assert torch.allclose(probs, torch.full_like(probs, 1 / 3), atol=0.02)  # actor head gain 0.01


def test_orthogonal_init():
    policy = ActorCritic(obs_dim=8, num_actions=2, hidden_sizes=[8])
    w = policy.actor[0].weight  # square 8x8 with gain sqrt(2): W W^T = 2 I
    assert torch.allclose(w @ w.T, 2.0 * torch.eye(8), atol=1e-5)
    assert (policy.actor[0].bias == 0).all()


def test_mask_zeroes_probabilities_and_prob_of():
    policy = ActorCritic(obs_dim=3, num_actions=3)
    obs = torch.randn(5, 3)
    mask = torch.tensor([[True, False, True]] * 5)
    assert policy.prob_of(obs, 1, mask).tolist() == [0.0] * 5
    total = policy.prob_of(obs, 0, mask) + policy.prob_of(obs, 2, mask)
    assert torch.allclose(total, torch.ones(5))


def test_config_checks_say_what_to_change():
    with pytest.raises(ValueError, match="hidden_sizes"):
        MLPPolicyConfig(hidden_sizes=[])
    with pytest.raises(ValueError, match="activation='gelu'"):
        ActorCritic(obs_dim=2, num_actions=2, activation="gelu")
    with pytest.raises(ValueError, match="num_actions > 0"):
        ActorCritic(obs_dim=2, num_actions=0)
