"""Atomic training checkpoints: ``<run_dir>/checkpoints/step_<global step>/``.

A checkpoint is written into a hidden temporary directory beside its final place and renamed
into place in one ``os.replace``, so a crash mid-write leaves a ``.tmp-*`` directory that
:func:`latest_checkpoint` ignores, never a half-written ``step_*``. Each holds:

* ``policy.safetensors`` — the policy's weights (what eval and export read);
* ``optimizer.pt`` — the optimizer's state dict;
* ``trainer_state.pkl`` — step counters, the python / numpy / torch RNG states, the trainer's own
  generators, the rollout's next observation and, when the sub-envs can be pickled, their full
  state (seeding and data-order position included; candidate pools excluded, re-bound on load);
* ``meta.json`` — the step counters, human-readable.

``trainer_state.pkl`` is a pickle: load checkpoints you wrote yourself, not ones from strangers.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from safetensors.torch import load_file, save_file

from rl_router.pool.types import CandidatePool

CHECKPOINT_DIR = "checkpoints"
POLICY_WEIGHTS = "policy.safetensors"  # what eval and export read from a checkpoint
_NAME = re.compile(r"^step_(\d+)$")


def rng_state() -> dict[str, Any]:
    """The global RNG states of python, numpy and torch."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


class _EnvPickler(pickle.Pickler):
    """Pickles sub-envs but not their candidate pools (live engines and connections): each pool is
    written as its index in :attr:`pools`, in the order pickling meets them."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.pools: list[CandidatePool] = []

    def persistent_id(self, obj: Any) -> int | None:
        if type(obj) in _PLAIN or isinstance(obj, type) or not isinstance(obj, CandidatePool):
            return None
        for i, pool in enumerate(self.pools):
            if pool is obj:
                return i
        self.pools.append(obj)
        return len(self.pools) - 1


class _EnvUnpickler(pickle.Unpickler):
    """Reads what :class:`_EnvPickler` wrote, binding pool ``i`` to the live env's ``i``-th pool."""

    def __init__(self, file: io.BytesIO, pools: list[CandidatePool]) -> None:
        super().__init__(file)
        self.pools = pools

    def persistent_load(self, pid: int) -> CandidatePool:
        return self.pools[pid]


_PLAIN = {str, bytes, int, float, bool, list, tuple, dict, np.ndarray, type(None)}


def _pickle_envs(envs: list[gym.Env]) -> tuple[bytes, list[CandidatePool]]:
    buffer = io.BytesIO()
    pickler = _EnvPickler(buffer)
    pickler.dump(envs)
    return buffer.getvalue(), pickler.pools


def env_state(envs: gym.vector.VectorEnv) -> bytes | None:
    """Pickled sub-envs of a :class:`~gymnasium.vector.SyncVectorEnv`: their physics, RNGs, data
    order and cursors, wrappers; candidate pools are left out and re-bound on restore. None for
    other vector envs or sub-envs holding something else that cannot be pickled, in which case a
    resume re-seeds the envs instead."""
    base = envs.unwrapped
    if not isinstance(base, gym.vector.SyncVectorEnv):
        return None
    try:
        return _pickle_envs(base.envs)[0]
    except (pickle.PicklingError, TypeError, AttributeError):
        return None


def restore_env_state(envs: gym.vector.VectorEnv, blob: bytes) -> None:
    """Put back the sub-envs pickled by :func:`env_state`, wired to this env's live pools."""
    base = envs.unwrapped
    if not isinstance(base, gym.vector.SyncVectorEnv):
        raise TypeError(f"checkpoint holds SyncVectorEnv state but the env is {type(base).__name__}")
    live_pools = _pickle_envs(base.envs)[1]
    restored = _EnvUnpickler(io.BytesIO(blob), live_pools).load()
    if len(restored) != len(base.envs):
        raise ValueError(f"checkpoint has {len(restored)} sub-envs, the env has {len(base.envs)}")
    base.envs = restored


def checkpoint_root(run_dir: str | Path) -> Path:
    """Where a run's checkpoints live."""
    return Path(run_dir) / CHECKPOINT_DIR


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary directories are skipped)."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def is_checkpoint_name(name: str) -> bool:
    """Whether ``name`` is a checkpoint directory's name (``step_<global step>``)."""
    return _NAME.match(name) is not None


def checkpoint_step(path: str | Path) -> int:
    """The global step a checkpoint directory was written at."""
    match = _NAME.match(Path(path).name)
    if match is None:
        raise ValueError(f"{path} is not a checkpoint directory (step_<global step>)")
    return int(match.group(1))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(
    run_dir: str | Path,
    global_step: int,
    policy: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict[str, Any],
    keep: int | None = None,
) -> Path:
    """Write ``step_<global_step>`` atomically and return its path.

    Args:
        run_dir: the run directory.
        global_step: environment steps so far; names the checkpoint.
        policy: its ``state_dict`` goes to ``policy.safetensors``.
        optimizer: its ``state_dict`` goes to ``optimizer.pt``.
        trainer_state: anything picklable the trainer needs to continue (counters, RNGs, env state).
        keep: delete all but the newest ``keep`` checkpoints afterwards; None keeps all.
    """
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{global_step:010d}"
    tmp = root / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        weights = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
        save_file(weights, str(tmp / POLICY_WEIGHTS))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        with open(tmp / "trainer_state.pkl", "wb") as f:
            pickle.dump(trainer_state, f)
        counters = {k: v for k, v in trainer_state.items() if isinstance(v, int | float | str)}
        (tmp / "meta.json").write_text(json.dumps({"global_step": global_step, **counters}, indent=2))
        if final.exists():  # a re-run reaching the same step replaces it
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep is not None:
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_policy_weights(path: str | Path, policy: torch.nn.Module) -> None:
    """Load ``policy.safetensors`` from checkpoint ``path`` into ``policy`` (strict)."""
    policy.load_state_dict(load_file(str(Path(path) / POLICY_WEIGHTS)))


def load_checkpoint(
    path: str | Path, policy: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> dict[str, Any]:
    """Load weights (and optimizer state) in place; return the trainer state saved with them."""
    path = Path(path)
    load_policy_weights(path, policy)
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    with open(path / "trainer_state.pkl", "rb") as f:
        return pickle.load(f)
