"""Behaviour cloning of a compact policy's actor on demonstrated (observation, mask, action) triples.

The ``agent_steps`` warm start (BoPO's boundary-guided SFT, for a compact policy): cross-entropy of
the masked logits against the demonstrated tier, full-batch Adam. The critic is left untouched.

>>> import torch
>>> from rl_router.policies.mlp import ActorCritic
>>> policy = ActorCritic(obs_dim=2, num_actions=2)
>>> obs = torch.tensor([[1.0, 0.0], [0.0, 1.0]]); masks = torch.ones(2, 2, dtype=torch.bool)
>>> loss = behaviour_clone(policy, obs, masks, torch.tensor([0, 1]), epochs=200, lr=1e-2)
>>> policy(obs, masks)[0].argmax(-1).tolist(), loss < 0.1
([0, 1], True)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def behaviour_clone(
    policy: nn.Module,
    obs: torch.Tensor,
    masks: torch.Tensor,
    actions: torch.Tensor,
    epochs: int = 50,
    lr: float = 1e-3,
) -> float:
    """Fit ``policy``'s logits to ``actions`` (``obs [N, D]``, ``masks [N, A]`` bool, ``actions [N]``).

    Returns:
        The last epoch's mean cross-entropy (nan when there is no data).
    """
    if len(actions) == 0 or epochs == 0:
        return float("nan")
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    loss = torch.tensor(float("nan"))
    for _ in range(epochs):
        logits, _ = policy(obs, masks)
        loss = F.cross_entropy(logits, actions)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return float(loss.item())
