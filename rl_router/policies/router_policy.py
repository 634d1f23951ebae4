"""``RouterPolicy``: the compact actor-critic that scores each candidate for a query (BudgetMem-style).

Configured by ``conf/policy/router.yaml``. The observation is a query embedding (e.g. 384-d
all-MiniLM-L6-v2), possibly followed by extra features (the env's descriptor features, a remaining
budget); the actions are the candidates. Each candidate ``a`` has a learned descriptor embedding
``d_a``, optionally initialised from given descriptor features (size, prices), and::

    h        = QueryMLP(obs)                  # [B, H]
    logit_a  = ScoreMLP([h; d_a])             # [B, A]: one score per (query, candidate) pair
    value    = ValueMLP(obs)                  # [B]

Scoring pairs rather than emitting ``A`` logits from one head lets the ranking of candidates move
with the query: BudgetMem found its learned choices nearly query-independent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from rl_router.policies.masking import masked_logits
from rl_router.policies.mlp import ACTIVATIONS, layer_init, mlp


@dataclass
class RouterPolicyConfig:
    """Hyperparameters of :class:`RouterPolicy` (Hydra schema ``policy/router_schema``)."""

    _target_: str = "rl_router.policies.router_policy.RouterPolicy"
    query_hidden: list[int] = field(default_factory=lambda: [256])  # query encoder widths (last = H)
    descriptor_dim: int = 32  # size of each candidate's learned descriptor embedding d_a
    score_hidden: list[int] = field(default_factory=lambda: [128])  # widths of the (query, candidate) scorer
    value_hidden: list[int] = field(default_factory=lambda: [256, 256])  # critic widths
    activation: str = "tanh"  # "tanh" or "relu"
    # standardise each observation column by the training rows' mean and std before the networks
    # (fitted once before training, stored with the weights; constant columns pass unchanged)
    input_norm: bool = False

    def __post_init__(self) -> None:
        for name in ("query_hidden", "score_hidden", "value_hidden"):
            widths = getattr(self, name)
            if not widths or any(w <= 0 for w in widths):
                raise ValueError(
                    f"policy.{name}={widths}: use a non-empty list of positive widths, e.g. [128]"
                )
        if self.descriptor_dim <= 0:
            raise ValueError(f"policy.descriptor_dim={self.descriptor_dim}: use a positive size, e.g. 32")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"policy.activation={self.activation!r}: choose one of {sorted(ACTIVATIONS)}")


class RouterPolicy(nn.Module):
    """Score every (query, candidate) pair; a separate critic values the query.

    Args:
        obs_dim: observation length ``D`` (query embedding plus any extra features).
        num_actions: number ``A`` of candidates.
        descriptor_features: ``[A, F]`` per-candidate features (e.g.
            :func:`envs.multi_llm_qa.descriptor_features`); standardised per column, they initialise
            the first ``min(F, descriptor_dim)`` columns of the learned embeddings. None: random init.
        Remaining arguments: see :class:`RouterPolicyConfig`.

    Example:
        >>> policy = RouterPolicy(obs_dim=8, num_actions=3, descriptor_features=np.eye(3))
        >>> logits, value = policy(torch.randn(5, 8), torch.tensor([[True, True, False]] * 5))
        >>> logits.shape, value.shape
        (torch.Size([5, 3]), torch.Size([5]))
        >>> policy.prob_of(torch.randn(5, 8), 2, torch.tensor([[1, 1, 0]] * 5)).tolist()
        [0.0, 0.0, 0.0, 0.0, 0.0]
    """

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        descriptor_features: np.ndarray | torch.Tensor | None = None,
        query_hidden: Sequence[int] = (256,),
        descriptor_dim: int = 32,
        score_hidden: Sequence[int] = (128,),
        value_hidden: Sequence[int] = (256, 256),
        activation: str = "tanh",
        input_norm: bool = False,
    ) -> None:
        super().__init__()
        RouterPolicyConfig(
            query_hidden=list(query_hidden),
            descriptor_dim=descriptor_dim,
            score_hidden=list(score_hidden),
            value_hidden=list(value_hidden),
            activation=activation,
            input_norm=input_norm,
        )
        if obs_dim <= 0 or num_actions <= 0:
            raise ValueError(
                f"RouterPolicy needs obs_dim > 0 and num_actions > 0, got {obs_dim}, {num_actions}"
            )
        self.num_actions = num_actions
        self.input_norm = input_norm
        # obs -> (obs - obs_shift) * obs_scale: the identity until fit_input_norm sets them
        self.register_buffer("obs_shift", torch.zeros(obs_dim))
        self.register_buffer("obs_scale", torch.ones(obs_dim))
        act = ACTIVATIONS[activation]

        layers: list[nn.Module] = []
        in_dim = obs_dim
        for width in query_hidden:
            layers += [layer_init(nn.Linear(in_dim, width)), act()]
            in_dim = width
        self.query_encoder = nn.Sequential(*layers)
        self.descriptors = nn.Parameter(
            self._initial_descriptors(num_actions, descriptor_dim, descriptor_features)
        )
        self.scorer = mlp(in_dim + descriptor_dim, score_hidden, 1, activation, out_std=0.01)
        self.critic = mlp(obs_dim, value_hidden, 1, activation, out_std=1.0)

    @staticmethod
    def _initial_descriptors(
        num_actions: int, dim: int, features: np.ndarray | torch.Tensor | None
    ) -> torch.Tensor:
        """``[A, dim]``: N(0, 1) values, with the standardised given features in the first columns."""
        table = torch.randn(num_actions, dim)  # N(0, 1), like nn.Embedding and the standardised features
        if features is None:
            return table
        feats = torch.as_tensor(np.asarray(features), dtype=torch.float32)
        if feats.ndim != 2 or feats.shape[0] != num_actions:
            raise ValueError(f"descriptor_features must be [{num_actions}, F], got {tuple(feats.shape)}")
        feats = (feats - feats.mean(0)) / (feats.std(0, unbiased=False) + 1e-6)
        width = min(dim, feats.shape[1])
        table[:, :width] = feats[:, :width]
        return table

    @torch.no_grad()
    def fit_input_norm(self, observations: np.ndarray | torch.Tensor) -> None:
        """Set the input standardisation from ``observations[n, D]`` (the training rows'): each column
        is shifted by its mean and divided by its std; columns with std < 1e-6 are left as they are.

        >>> policy = RouterPolicy(obs_dim=2, num_actions=2, input_norm=True)
        >>> policy.fit_input_norm(np.array([[1.0, 5.0], [3.0, 5.0]]))
        >>> policy.obs_shift.tolist(), policy.obs_scale.tolist()
        ([2.0, 0.0], [1.0, 1.0])
        """
        obs = torch.as_tensor(np.asarray(observations), dtype=torch.float32)
        if obs.ndim != 2 or obs.shape[1] != self.obs_shift.numel() or len(obs) < 2:
            want = f"[n >= 2, {self.obs_shift.numel()}]"
            raise ValueError(f"fit_input_norm needs {want} observations, got {tuple(obs.shape)}")
        mean, std = obs.mean(0), obs.std(0, unbiased=False)
        varies = std >= 1e-6
        self.obs_shift.copy_(torch.where(varies, mean, torch.zeros_like(mean)))
        self.obs_scale.copy_(torch.where(varies, 1.0 / std.clamp_min(1e-6), torch.ones_like(std)))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # weights saved before the input standardisation existed load as the identity
        state_dict.setdefault(prefix + "obs_shift", torch.zeros_like(self.obs_shift))
        state_dict.setdefault(prefix + "obs_scale", torch.ones_like(self.obs_scale))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(
        self, obs: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits[B, A], value[B])`` for ``obs[B, D]``; invalid candidates (mask False) masked out."""
        obs = (obs - self.obs_shift) * self.obs_scale
        h = self.query_encoder(obs)  # [B, H]
        batch = h.shape[0]
        pairs = torch.cat(
            [
                h.unsqueeze(1).expand(batch, self.num_actions, h.shape[-1]),
                self.descriptors.unsqueeze(0).expand(batch, -1, -1),
            ],
            dim=-1,
        )  # [B, A, H + E]
        logits = self.scorer(pairs).squeeze(-1)  # [B, A]
        return masked_logits(logits, mask), self.critic(obs).squeeze(-1)

    @torch.no_grad()
    def action_probs(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, A]`` routing probabilities (masked candidates get exactly 0)."""
        logits, _ = self(obs, mask)
        return torch.softmax(logits, dim=-1)

    def prob_of(self, obs: torch.Tensor, action: int, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``[B]`` probability of routing each query to candidate ``action`` (e.g. the strong model,
        for threshold sweeps in evaluation)."""
        if not 0 <= action < self.num_actions:
            raise ValueError(f"action {action} outside the {self.num_actions} candidates")
        return self.action_probs(obs, mask)[:, action]
