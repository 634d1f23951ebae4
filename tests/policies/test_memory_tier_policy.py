"""The compact tier policy: query, module input and the module's learned descriptor all move its choice."""

from __future__ import annotations

import pytest
import torch

from rl_router.policies.memory_tiers import FixedTiers, MemoryTierPolicy, UniformTiers


def obs(q, x, module, d=4):
    return torch.cat([torch.full((1, d), q), torch.full((1, d), x), torch.eye(5)[[module]]], dim=1)


def test_logits_depend_on_query_input_and_module():
    torch.manual_seed(0)
    policy = MemoryTierPolicy(obs_dim=13, hidden=[16])
    with torch.no_grad():
        policy.actor[-1].weight.normal_()  # the 0.01-gain head makes every start near uniform
        base = policy(obs(0.5, 0.5, 0))[0]
        assert not torch.allclose(base, policy(obs(-0.5, 0.5, 0))[0])
        assert not torch.allclose(base, policy(obs(0.5, -0.5, 0))[0])
        assert not torch.allclose(base, policy(obs(0.5, 0.5, 3))[0])


def test_descriptors_are_learned_parameters():
    policy = MemoryTierPolicy(obs_dim=13, descriptor_dim=8)
    assert policy.descriptors.shape == (5, 8) and policy.descriptors.requires_grad
    assert policy.features(obs(0.1, 0.2, 2)).shape == (1, 16)
    with pytest.raises(ValueError, match="2 \\* D"):
        MemoryTierPolicy(obs_dim=12)


def test_fixed_and_uniform_baselines():
    fixed = FixedTiers([2, 1, 0, 0, 1])
    batch = torch.cat([obs(0.0, 0.0, m) for m in range(5)])
    assert fixed(batch)[0].argmax(-1).tolist() == [2, 1, 0, 0, 1]
    probs = torch.softmax(UniformTiers()(batch)[0], -1)
    assert torch.allclose(probs, torch.full((5, 3), 1 / 3))
    with pytest.raises(ValueError, match="each must lie"):
        FixedTiers([3, 0, 0, 0, 0])
