"""``PolicyRouter``: a trained small-policy router you can ask, and :func:`build_policy` to make one.

A small-policy router is three things: the candidates it routes between (their descriptors, in
action order), its query features (``features``: the all-MiniLM-L6-v2 embedding and text blocks,
:mod:`rl_router.data.features`, computed from the raw query) and the policy network over
``[query features; descriptor features]``. Training builds it with
:func:`build_policy`; :func:`rl_router.routers.load.load_router` rebuilds the same object from a run
directory, one of its checkpoints or an exported folder::

    router = load_router("outputs/default/2026-11-25_03-00-00")
    router.route(["What is 12 * 7?"])             # -> ["mixtral-8x7b"]
    router.probs(router.embed(["What is 12 * 7?"]))  # query features [1, Q] -> float32 [1, 2]

A router may carry a :class:`~rl_router.routers.calibration.Calibration` (``calibration.json``,
written by ``rl-router calibrate``): ``route()`` and ``decide()`` then pick
``argmax(log p + offsets)`` instead of ``argmax(p)``; ``probs()`` stays raw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf
from torch import nn

from envs.multi_llm_qa import DESCRIPTOR_FEATURES, descriptor_features
from rl_router import checkpoint as ckpt
from rl_router.data.features import (
    DEFAULT_FEATURES,
    LEGACY_FEATURES,
    check_features,
    feature_dim,
    feature_layout,
    query_features,
)
from rl_router.policies.router_policy import RouterPolicy
from rl_router.pool.descriptors import PoolConfig
from rl_router.pool.types import ModelDescriptor, SamplingParams
from rl_router.routers.calibration import Calibration

FEATURE_NAMES = ("log1p(params_b)", "log1p(price_in)", "log1p(price_out)")  # per candidate, see envs


def build_policy(
    policy_cfg: Mapping[str, Any],
    descriptors: Sequence[ModelDescriptor],
    query_blocks: Sequence[str] = DEFAULT_FEATURES,
) -> nn.Module:
    """The policy network a router config names, sized for ``descriptors`` and ``query_blocks``.

    The observation is ``[query features (feature_dim(query_blocks)); descriptor features (3 per
    candidate)]``, the layout of :class:`envs.multi_llm_qa.MultiLLMQAEnv` in select mode.
    :class:`RouterPolicy` also gets the descriptor features to initialise its candidate embeddings.
    """
    features = descriptor_features(descriptors)
    obs_dim = feature_dim(query_blocks) + features.size
    is_router_policy = issubclass(get_class(policy_cfg["_target_"]), RouterPolicy)
    extra = {"descriptor_features": features} if is_router_policy else {}
    return instantiate(policy_cfg, obs_dim=obs_dim, num_actions=len(descriptors), **extra)


def run_features(env_cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """The query blocks a run's recorded ``env`` config trained on; runs recorded before
    ``env.features`` existed observed the embedding alone (:data:`LEGACY_FEATURES`)."""
    blocks = env_cfg.get("features")
    return check_features(LEGACY_FEATURES if blocks is None else list(blocks))


def pool_descriptors(pool_cfg: Mapping[str, Any]) -> list[ModelDescriptor]:
    """Candidate descriptors of a pool config, in router action order, without building the pool."""
    merged = OmegaConf.merge(OmegaConf.structured(PoolConfig), pool_cfg)
    pool: PoolConfig = OmegaConf.to_object(merged)
    return [model.descriptor() for model in pool.models]


@dataclass
class PolicyRouter:
    """A trained policy that routes each query to one candidate.

    Attributes:
        policy: ``policy(obs[B, D], mask) -> (logits[B, A], value[B])``, in eval mode.
        descriptors: the candidates, in action order.
        checkpoint: where the weights came from: a checkpoint directory or an exported folder
            (None for a freshly built router).
        training: the training run's config groups (``data``, ``pool``, ``env`` ...), the defaults
            of ``rl-router eval``; empty when unknown.
        calibration: logit offsets that ``decide`` and ``route`` apply (``rl-router calibrate``);
            None: the raw argmax.
        features: the query blocks the policy reads (:mod:`rl_router.data.features`), in order.
    """

    policy: nn.Module
    descriptors: list[ModelDescriptor]
    checkpoint: Path | None = None
    training: dict[str, Any] = field(default_factory=dict)
    calibration: Calibration | None = None
    features: tuple[str, ...] = DEFAULT_FEATURES

    kind = "policy"

    @property
    def model_names(self) -> list[str]:
        return [d.name for d in self.descriptors]

    @property
    def query_dim(self) -> int:
        """Width ``Q`` of the query features :meth:`embed` returns."""
        return feature_dim(self.features)

    def observations(self, embeddings: np.ndarray) -> torch.Tensor:
        """``float32 [n, D]``: each query's features (``[n, Q]``, :meth:`embed`) followed by the
        descriptor features.

        Raises:
            ValueError: the rows are not ``Q`` wide (e.g. bare 384-d embeddings for a router that
                also reads text features).
        """
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[1] != self.query_dim:
            raise ValueError(
                f"query features of shape {emb.shape}, but this router reads [n, {self.query_dim}] "
                f"(features {list(self.features)}): pass router.embed(texts)"
            )
        feats = descriptor_features(self.descriptors).reshape(1, -1)
        feats = np.broadcast_to(feats, (len(emb), feats.shape[1]))
        return torch.from_numpy(np.concatenate([emb, feats], axis=1))

    @torch.no_grad()
    def probs(self, embeddings: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """``float32 [n, A]`` routing probabilities for query features ``[n, Q]`` (:meth:`embed`)."""
        obs = self.observations(embeddings)
        out = [torch.softmax(self.policy(chunk, None)[0], dim=-1) for chunk in obs.split(batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.descriptors)), np.float32)

    @torch.no_grad()
    def log_probs(self, embeddings: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """``float64 [n, A]`` log-probabilities (``log_softmax`` of the logits: finite where ``probs``
        underflows to 0); what a calibration's offsets are added to."""
        obs = self.observations(embeddings)
        out = [torch.log_softmax(self.policy(c, None)[0].double(), dim=-1) for c in obs.split(batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.descriptors)))

    def decide(self, embeddings: np.ndarray) -> np.ndarray:
        """``int64 [n]`` the chosen candidate's index per query's features: ``argmax(log p + offsets)``
        under the calibration, else ``argmax(probs)``."""
        if self.calibration is None:
            return self.probs(embeddings).argmax(axis=1)
        return self.calibration.decide(self.log_probs(embeddings))

    def embed(self, queries: Sequence[str], progress: bool = False) -> np.ndarray:
        """Query features ``float32 [n, Q]`` of the raw texts: the blocks of ``features`` (the
        embedding cached on disk, see :func:`rl_router.embeddings.embed_queries`)."""
        return query_features(list(queries), self.features, progress=progress)

    def route(self, queries: Sequence[str]) -> list[str]:
        """The candidate name the router picks (greedily, calibration applied) for each query."""
        return [self.model_names[i] for i in self.decide(self.embed(queries))]

    def weights_digest(self) -> str:
        """sha256 of the policy's tensors (:func:`rl_router.checkpoint.weights_digest`)."""
        return ckpt.weights_digest(self.policy)


def descriptor_dict(descriptor: ModelDescriptor) -> dict[str, Any]:
    """A descriptor as plain JSON data (what ``pool.json`` lists)."""
    return asdict(descriptor)


def descriptor_from_dict(data: Mapping[str, Any]) -> ModelDescriptor:
    """The inverse of :func:`descriptor_dict`.

    >>> d = ModelDescriptor("m", "replay", params_b=7.0, price_in=0.3, price_out=0.3)
    >>> descriptor_from_dict(descriptor_dict(d)) == d
    True
    """
    return ModelDescriptor(**{**data, "sampling": SamplingParams(**data.get("sampling", {}))})


def observation_layout(descriptors: Sequence[ModelDescriptor], query_blocks: Sequence[str]) -> dict[str, Any]:
    """How a policy router builds its observation ``[n, D]`` (recorded in ``router_config.json``).

    With ``query_blocks=("embedding",)`` this is the layout of routers exported before
    ``env.features`` existed, so their folders still load.
    """
    features = DESCRIPTOR_FEATURES * len(descriptors)
    return {
        "dim": feature_dim(query_blocks) + features,
        "parts": [
            *feature_layout(query_blocks),
            {
                "name": "descriptor_features",
                "size": features,
                "per_candidate": list(FEATURE_NAMES),
                "order": "candidates in pool.json order, features of each candidate together",
            },
        ],
    }
