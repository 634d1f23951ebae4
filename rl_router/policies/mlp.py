"""``ActorCritic``: separate actor and critic MLPs over a flat observation (CleanRL's PPO network).

Configured by ``conf/policy/mlp.yaml``; used for reference tasks such as CartPole and for routers
whose observation is just a feature vector. Every policy in this package shares one call shape,
``policy(obs[B, D], mask[B, A] | None) -> (logits[B, A], value[B])``, with invalid actions'
logits already pushed to :data:`~rl_router.policies.masking.MASK_VALUE`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from rl_router.policies.masking import masked_logits

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


@dataclass
class MLPPolicyConfig:
    """Hyperparameters of :class:`ActorCritic` (Hydra schema ``policy/mlp_schema``)."""

    _target_: str = "rl_router.policies.mlp.ActorCritic"
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])  # widths of actor and critic layers
    activation: str = "tanh"  # "tanh" (CleanRL's choice) or "relu"

    def __post_init__(self) -> None:
        if not self.hidden_sizes or any(h <= 0 for h in self.hidden_sizes):
            raise ValueError(f"policy.hidden_sizes={self.hidden_sizes}: use positive widths, e.g. [64, 64]")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"policy.activation={self.activation!r}: choose one of {sorted(ACTIVATIONS)}")


def layer_init(layer: nn.Linear, std: float = float(np.sqrt(2)), bias: float = 0.0) -> nn.Linear:
    """Orthogonal weights with gain ``std`` and constant bias (CleanRL's ``layer_init``)."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(
    in_dim: int, hidden_sizes: Sequence[int], out_dim: int, activation: str, out_std: float
) -> nn.Sequential:
    """``Linear -> act`` per hidden width, then a linear head initialised with gain ``out_std``."""
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [layer_init(nn.Linear(in_dim, width)), ACTIVATIONS[activation]()]
        in_dim = width
    layers.append(layer_init(nn.Linear(in_dim, out_dim), std=out_std))
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """Actor and critic MLPs with no shared layers.

    The actor's last layer starts with gain 0.01, so the initial policy is close to uniform; the
    critic's with gain 1.

    Args:
        obs_dim: length ``D`` of the flat observation.
        num_actions: number ``A`` of discrete actions.
        hidden_sizes, activation: see :class:`MLPPolicyConfig`.

    Example:
        >>> policy = ActorCritic(obs_dim=4, num_actions=2)
        >>> logits, value = policy(torch.zeros(3, 4), torch.tensor([[True, False]] * 3))
        >>> logits.shape, value.shape, torch.softmax(logits, -1)[:, 1].tolist()
        (torch.Size([3, 2]), torch.Size([3]), [0.0, 0.0, 0.0])
    """

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        MLPPolicyConfig(hidden_sizes=list(hidden_sizes), activation=activation)
        if obs_dim <= 0 or num_actions <= 0:
            raise ValueError(
                f"ActorCritic needs obs_dim > 0 and num_actions > 0, got {obs_dim}, {num_actions}"
            )
        self.num_actions = num_actions
        self.actor = mlp(obs_dim, hidden_sizes, num_actions, activation, out_std=0.01)
        self.critic = mlp(obs_dim, hidden_sizes, 1, activation, out_std=1.0)

    def forward(
        self, obs: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits[B, A], value[B])`` for ``obs[B, D]``; invalid actions (mask False) masked out."""
        return masked_logits(self.actor(obs), mask), self.critic(obs).squeeze(-1)

    @torch.no_grad()
    def prob_of(self, obs: torch.Tensor, action: int, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``[B]`` probability of choosing ``action`` for each observation."""
        logits, _ = self(obs, mask)
        return torch.softmax(logits, dim=-1)[:, action]
