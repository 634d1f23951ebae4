"""``PolicyRouter``: a trained small-policy router you can ask, and :func:`load_router` to get one back.

A small-policy router is three things: the candidates it routes between (their descriptors, in
action order), the query encoder (all-MiniLM-L6-v2, :mod:`rl_router.embeddings`) and the policy
network over ``[query embedding; descriptor features]``. Training builds it with
:func:`build_policy`; evaluation and export rebuild the same object from a run directory::

    router = load_router("outputs/default/2026-11-25_03-00-00")
    router.route(["What is 12 * 7?"])             # -> ["mixtral-8x7b"]
    router.probs(router.embed(["What is 12 * 7?"]))  # -> float32 [1, 2]

A run directory holds ``config.yaml`` (the resolved training config) and ``checkpoints/step_*/``
(:mod:`rl_router.trainers.checkpoint`); the newest checkpoint's ``policy.safetensors`` is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from envs.multi_llm_qa import descriptor_features
from rl_router.embeddings import EMBED_DIM, embed_queries
from rl_router.policies.router_policy import RouterPolicy
from rl_router.pool.descriptors import PoolConfig
from rl_router.pool.types import ModelDescriptor
from rl_router.trainers import checkpoint as ckpt

RUN_CONFIG = "config.yaml"  # the resolved training config, written by `rl-router train`


def build_policy(policy_cfg: Mapping[str, Any], descriptors: Sequence[ModelDescriptor]) -> nn.Module:
    """The policy network a router config names, sized for ``descriptors``.

    The observation is ``[query embedding (384); descriptor features (3 per candidate)]``, the
    layout of :class:`envs.multi_llm_qa.MultiLLMQAEnv` in select mode. :class:`RouterPolicy`
    also gets the descriptor features to initialise its candidate embeddings.
    """
    features = descriptor_features(descriptors)
    obs_dim = EMBED_DIM + features.size
    extra = {"descriptor_features": features} if issubclass(get_class(policy_cfg["_target_"]), RouterPolicy) else {}
    return instantiate(policy_cfg, obs_dim=obs_dim, num_actions=len(descriptors), **extra)


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
        checkpoint: where the weights came from (None for a freshly built router).
    """

    policy: nn.Module
    descriptors: list[ModelDescriptor]
    checkpoint: Path | None = None

    @property
    def model_names(self) -> list[str]:
        return [d.name for d in self.descriptors]

    def observations(self, embeddings: np.ndarray) -> torch.Tensor:
        """``float32 [n, D]``: each query embedding followed by the descriptor features."""
        emb = np.asarray(embeddings, dtype=np.float32).reshape(-1, EMBED_DIM)
        feats = np.broadcast_to(descriptor_features(self.descriptors).reshape(1, -1), (len(emb), 3 * len(self.descriptors)))
        return torch.from_numpy(np.concatenate([emb, feats], axis=1))

    @torch.no_grad()
    def probs(self, embeddings: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """``float32 [n, A]`` routing probabilities for query embeddings ``[n, 384]``."""
        obs = self.observations(embeddings)
        out = [torch.softmax(self.policy(chunk, None)[0], dim=-1) for chunk in obs.split(batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.descriptors)), np.float32)

    def embed(self, queries: Sequence[str], progress: bool = False) -> np.ndarray:
        """Query embeddings ``float32 [n, 384]`` (cached on disk, see :func:`embed_queries`)."""
        return embed_queries(queries, progress=progress)

    def route(self, queries: Sequence[str]) -> list[str]:
        """The candidate name the router picks (greedily) for each query."""
        choice = self.probs(self.embed(queries)).argmax(axis=1)
        return [self.model_names[i] for i in choice]


def load_run_config(run_dir: str | Path) -> DictConfig:
    """The resolved training config of a run directory."""
    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: checkpoint= must be a run directory of `rl-router train`")
    return OmegaConf.load(path)


def load_router(run_dir: str | Path) -> PolicyRouter:
    """Rebuild the router of a training run from its config and newest checkpoint.

    Raises:
        FileNotFoundError: ``run_dir`` is not a run directory, or holds no checkpoint yet.
    """
    cfg = load_run_config(run_dir)
    latest = ckpt.latest_checkpoint(run_dir)
    if latest is None:
        raise FileNotFoundError(f"{run_dir} holds no checkpoint (checkpoints/step_*): has training started?")
    descriptors = pool_descriptors(cfg.pool)
    policy = build_policy(cfg.policy, descriptors)
    ckpt.load_policy_weights(latest, policy)
    return PolicyRouter(policy.eval(), descriptors, checkpoint=latest)
