"""``MemoryTierPolicy``: BudgetMem's compact actor-critic that picks a tier for one memory module.

Configured by ``conf/policy/memory_tiers.yaml``. The observation of ``envs.memory_tiers`` is
``[query embedding (D); module-input embedding (D); module one-hot (M)]``; the one-hot selects a
learned module-descriptor embedding ``e_m``, and::

    h       = [q; x; e_m]                  # [B, 2D + E]
    logits  = ActorMLP(h)                  # [B, T]: one per tier (Low, Mid, High)
    value   = CriticMLP(h)                 # [B]

so the same network routes every module, and what it routes depends on the query and on what the
upstream modules wrote (their output is the next module's input).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from rl_router.policies.masking import masked_logits
from rl_router.policies.mlp import ACTIVATIONS, mlp


@dataclass
class MemoryTierPolicyConfig:
    """Hyperparameters of :class:`MemoryTierPolicy` (Hydra schema ``policy/memory_tiers_schema``)."""

    _target_: str = "rl_router.policies.memory_tiers.MemoryTierPolicy"
    descriptor_dim: int = 32  # size E of each module's learned descriptor embedding
    hidden: list[int] = field(default_factory=lambda: [512, 256])  # actor and critic widths
    activation: str = "tanh"  # "tanh" or "relu"

    def __post_init__(self) -> None:
        if self.descriptor_dim <= 0:
            raise ValueError(f"policy.descriptor_dim={self.descriptor_dim}: use a positive size, e.g. 32")
        if not self.hidden or any(w <= 0 for w in self.hidden):
            raise ValueError(f"policy.hidden={self.hidden}: use positive widths, e.g. [512, 256]")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"policy.activation={self.activation!r}: choose one of {sorted(ACTIVATIONS)}")


class MemoryTierPolicy(nn.Module):
    """Tier logits and a value for ``[q; x; one-hot(module)]`` observations.

    Args:
        obs_dim: ``2 * D + num_modules``.
        num_actions: number ``T`` of tiers (3).
        num_modules: number ``M`` of modules (5).
        Remaining arguments: see :class:`MemoryTierPolicyConfig`.

    Example:
        >>> policy = MemoryTierPolicy(obs_dim=2 * 4 + 5, num_actions=3, num_modules=5)
        >>> obs = torch.cat([torch.randn(2, 8), torch.eye(5)[:2]], dim=1)
        >>> logits, value = policy(obs, torch.tensor([[True, True, False]] * 2))
        >>> logits.shape, value.shape, torch.softmax(logits, -1)[:, 2].tolist()
        (torch.Size([2, 3]), torch.Size([2]), [0.0, 0.0])
    """

    def __init__(
        self,
        obs_dim: int,
        num_actions: int = 3,
        num_modules: int = 5,
        descriptor_dim: int = 32,
        hidden: Sequence[int] = (512, 256),
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        MemoryTierPolicyConfig(descriptor_dim=descriptor_dim, hidden=list(hidden), activation=activation)
        if (obs_dim - num_modules) <= 0 or (obs_dim - num_modules) % 2:
            raise ValueError(f"obs_dim={obs_dim} is not 2 * D + {num_modules} (query, module input, one-hot)")
        self.num_actions = num_actions
        self.num_modules = num_modules
        self.embed_dim = (obs_dim - num_modules) // 2
        self.descriptors = nn.Parameter(torch.randn(num_modules, descriptor_dim))  # e_m, learned
        width = 2 * self.embed_dim + descriptor_dim
        self.actor = mlp(width, hidden, num_actions, activation, out_std=0.01)
        self.critic = mlp(width, hidden, 1, activation, out_std=1.0)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, 2D + E]``: the embeddings with the module's descriptor in place of its one-hot."""
        split = 2 * self.embed_dim
        return torch.cat([obs[:, :split], obs[:, split:] @ self.descriptors], dim=-1)

    def forward(
        self, obs: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits[B, T], value[B])``; tiers with mask False are masked out."""
        h = self.features(obs)
        return masked_logits(self.actor(h), mask), self.critic(h).squeeze(-1)


def build_memory_policy(cfg: MemoryTierPolicyConfig, obs_dim: int, num_actions: int, num_modules: int):
    """The policy a config describes, for an env of these sizes."""
    return MemoryTierPolicy(
        obs_dim, num_actions, num_modules, cfg.descriptor_dim, list(cfg.hidden), cfg.activation
    )


class FixedTiers(nn.Module):
    """A fixed joint choice: tier ``tiers[m]`` for module ``m`` whatever the query (the baselines).

    Reads which module is next from the observation's one-hot, so it plays through the same rollout
    as a trained policy. Its value is 0.

    >>> fixed = FixedTiers([0, 1, 2, 1, 0], num_actions=3)
    >>> obs = torch.cat([torch.zeros(2, 8), torch.eye(5)[[2, 4]]], dim=1)
    >>> fixed(obs)[0].argmax(-1).tolist()
    [2, 0]
    """

    def __init__(self, tiers: Sequence[int], num_actions: int = 3) -> None:
        super().__init__()
        if any(not 0 <= t < num_actions for t in tiers):
            raise ValueError(f"tiers {list(tiers)}: each must lie in [0, {num_actions})")
        self.register_buffer("table", torch.full((len(tiers), num_actions), -1e4))
        self.table[torch.arange(len(tiers)), torch.as_tensor(list(tiers))] = 0.0
        self.num_modules = len(tiers)

    def forward(
        self, obs: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        onehot = obs[:, -self.num_modules :]
        return masked_logits(onehot @ self.table, mask), torch.zeros(obs.shape[0])


class UniformTiers(nn.Module):
    """Every tier equally likely at every module (the random baseline; sample, do not take argmax)."""

    def __init__(self, num_actions: int = 3) -> None:
        super().__init__()
        self.num_actions = num_actions

    def forward(
        self, obs: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return masked_logits(torch.zeros(obs.shape[0], self.num_actions), mask), torch.zeros(obs.shape[0])


class CalibratedTiers(nn.Module):
    """A tier policy whose greedy choice is ``argmax(log p + offsets)``: an operating point.

    ``offsets`` (one per tier, shared by every module) come from ``rl-router calibrate``
    (:class:`rl_router.routers.calibration.Calibration`). The logits returned are ``log p + offsets``,
    so greedy play takes the calibrated tier; the value is the policy's.

    >>> fixed = FixedTiers([0, 0, 0, 0, 0])
    >>> obs = torch.cat([torch.zeros(1, 8), torch.eye(5)[:1]], dim=1)
    >>> CalibratedTiers(fixed, [0.0, 0.0, 2e4])(obs)[0].argmax(-1).tolist()
    [2]
    """

    def __init__(self, policy: nn.Module, offsets: Sequence[float]) -> None:
        super().__init__()
        self.policy = policy
        self.register_buffer("offsets", torch.as_tensor(list(offsets), dtype=torch.float32))

    def forward(
        self, obs: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits, value = self.policy(obs, mask)
        return masked_logits(torch.log_softmax(logits, dim=-1) + self.offsets, mask), value
