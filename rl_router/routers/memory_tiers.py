"""The tier router of a ``memory_tiers`` run or export: BudgetMem's compact policy, with its operating point.

:func:`rl_router.routers.load.load_router` returns a :class:`MemoryTiersRouter` for a run directory
trained on ``envs.memory_tiers`` (or one of its ``checkpoints/step_N``) and for a folder
``rl-router export`` wrote from one (``router_kind: "memory_tiers_policy"``). It routes module
decisions, not queries: for each observation ``[query; module input; module one-hot]`` of the env it
names a tier (Low, Mid, High). Its candidates (``model_names``) are those tiers, so a
:class:`~rl_router.routers.calibration.Calibration` (``rl-router calibrate``) holds one offset per
tier, and :meth:`MemoryTiersRouter.decide` is ``argmax(log p + offsets)``, the same rule as a policy
router's. :meth:`MemoryTiersRouter.tier_policy` is what the env's rollout plays
(:class:`~rl_router.policies.memory_tiers.CalibratedTiers` when calibrated).

The policy is built from the recorded sizes (:class:`MemoryTierPolicyConfig` fields only): no
``_target_`` is instantiated.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from envs.memory_modules import MODULES, TIERS
from rl_router import checkpoint as ckpt
from rl_router.policies.memory_tiers import (
    CalibratedTiers,
    MemoryTierPolicy,
    MemoryTierPolicyConfig,
    build_memory_policy,
)
from rl_router.routers.calibration import Calibration
from rl_router.routers.folder import WEIGHTS
from rl_router.run import portable_config

MEMORY_TIERS_ENV = "envs.memory_tiers.MemoryTiersEnv"
MEMORY_TIERS_KIND = "memory_tiers_policy"  # router_config.json's router_kind of an exported tier router


class MemoryTiersRouter:
    """A trained tier policy for the five memory modules, and the calibration it routes under.

    Args:
        policy: the raw :class:`MemoryTierPolicy` (its weights are what a calibration is fitted for).
        checkpoint: the checkpoint or exported folder it was loaded from.
        training: what it was trained with: ``env``, ``data``, ``trainer`` and ``pool`` (plain data).
    """

    kind = "memory_tiers"

    def __init__(self, policy: MemoryTierPolicy, checkpoint: Path, training: Mapping[str, Any]) -> None:
        self.policy = policy.eval()
        self.checkpoint = Path(checkpoint)
        self.training = dict(training)
        self.calibration: Calibration | None = None

    @property
    def model_names(self) -> list[str]:
        """The tiers, in action order: what a calibration's offsets are aligned to."""
        return list(TIERS)

    def weights_digest(self) -> str:
        """sha256 of the policy's tensors (:func:`rl_router.checkpoint.weights_digest`)."""
        return ckpt.weights_digest(self.policy)

    def tier_policy(self) -> torch.nn.Module:
        """``policy(obs, mask) -> (logits, value)`` for the env's rollout, at the operating point."""
        if self.calibration is None:
            return self.policy
        return CalibratedTiers(self.policy, self.calibration.offsets).eval()

    @torch.no_grad()
    def log_probs(self, obs: np.ndarray) -> np.ndarray:
        """``float64 [n, 3]``: the raw policy's log-probability of each tier for ``obs [n, 2D + 5]``."""
        logits, _ = self.policy(torch.as_tensor(np.asarray(obs), dtype=torch.float32))
        return torch.log_softmax(logits, dim=-1).double().numpy()

    def decide(self, obs: np.ndarray) -> np.ndarray:
        """``int64 [n]``: the tier index per observation (calibrated when there is a calibration)."""
        log_probs = self.log_probs(obs)
        return self.calibration.decide(log_probs) if self.calibration else np.argmax(log_probs, axis=1)


def policy_from(policy_fields: Mapping[str, Any], weights: Mapping[str, torch.Tensor]) -> MemoryTierPolicy:
    """A :class:`MemoryTierPolicy` of the recorded sizes holding ``weights`` (no ``_target_`` called)."""
    fields = {k: v for k, v in policy_fields.items() if k != "_target_"}
    descriptor_dim = int(weights["descriptors"].shape[1])
    obs_dim = int(weights["actor.0.weight"].shape[1]) - descriptor_dim + len(MODULES)
    policy = build_memory_policy(MemoryTierPolicyConfig(**fields), obs_dim, len(TIERS), len(MODULES))
    policy.load_state_dict(dict(weights))
    return policy


def load_memory_tiers_run(
    run_dir: Path, cfg: DictConfig, checkpoint: Path | None = None
) -> MemoryTiersRouter:
    """The tier router of a memory_tiers run: ``checkpoint`` (None: the newest) with the recorded sizes.

    Raises:
        FileNotFoundError: the run holds no checkpoint.
    """
    from safetensors.torch import load_file

    latest = checkpoint if checkpoint is not None else ckpt.latest_checkpoint(run_dir)
    if latest is None:
        raise FileNotFoundError(f"{run_dir} holds no checkpoint (checkpoints/step_*): has training started?")
    weights = load_file(str(Path(latest) / ckpt.POLICY_WEIGHTS))
    policy = policy_from(OmegaConf.to_container(cfg.policy, resolve=True), weights)
    recorded = portable_config(cfg)  # an endpoint read from the environment stays ${oc.env:NAME}
    training = {k: recorded[k] for k in ("env", "data", "trainer", "pool")}
    return MemoryTiersRouter(policy, Path(latest), training)


def load_memory_tiers_exported(folder: Path, config: Mapping[str, Any]) -> MemoryTiersRouter:
    """The tier router of an exported folder whose ``router_config.json`` is ``config``."""
    from safetensors.torch import load_file

    policy = policy_from(config["policy"], load_file(str(Path(folder) / WEIGHTS)))
    training = {"env": config["env"], **dict(config.get("training") or {})}
    return MemoryTiersRouter(policy, Path(folder), training)
