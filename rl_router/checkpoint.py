"""Atomic training checkpoints: ``<run_dir>/checkpoints/step_<global step>/``, data only.

A checkpoint is written into a hidden temporary directory beside its final place and renamed
into place in one ``os.replace``, so a crash mid-write leaves a ``.tmp-*`` directory that
:func:`latest_checkpoint` ignores, never a half-written ``step_*``. Each holds:

* ``policy.safetensors`` — the policy's weights (what eval and export read);
* ``optimizer.safetensors`` + ``optimizer.json`` — the optimizer's state dict: its tensors, and
  the rest (param groups, non-tensor state) with each tensor named by its key;
* ``trainer_state.safetensors`` + ``trainer_state.json`` — what the trainer needs to continue:
  step counters, the python / numpy / torch RNG states, its own generators, the rollout's next
  observation and, for sub-envs with the state API, their state (see :func:`env_state`); tensors go
  to the safetensors file, referenced from the JSON as ``{"__tensor__": key}``;
* ``meta.json`` — the step counters, human-readable.

Nothing is pickled, so loading a checkpoint someone shared runs none of their code. Checkpoints of
older versions (``trainer_state.pkl``, ``optimizer.pt``) are pickles: :func:`load_checkpoint`
refuses them unless told ``trust_pickles=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import re
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit
from safetensors.torch import load_file, save_file

CHECKPOINT_DIR = "checkpoints"
POLICY_WEIGHTS = "policy.safetensors"  # what eval and export read from a checkpoint
OPTIMIZER_TENSORS, OPTIMIZER_INDEX = "optimizer.safetensors", "optimizer.json"
STATE_TENSORS, STATE_INDEX = "trainer_state.safetensors", "trainer_state.json"
LEGACY_PICKLES = ("trainer_state.pkl", "optimizer.pt")  # written by rl-router before data-only checkpoints
ENV_STATE_FORMAT = 1
_NAME = re.compile(r"^step_(\d+)$")
_TENSOR, _ARRAY = "__tensor__", "__ndarray__"
# Gymnasium wrappers that gym.make adds, and the attributes that are their whole state.
_WRAPPER_STATE: dict[type, tuple[str, ...]] = {
    TimeLimit: ("_elapsed_steps",),
    OrderEnforcing: ("_has_reset",),
    PassiveEnvChecker: (),  # it only warns, and once: a resumed env counts as checked
}
_CHECKED = {
    "checked_reset": True,
    "checked_step": True,
    "checked_render": True,
    "checked_data_reuse": True,
    "_previous_data": None,
}


class UntrustedCheckpointError(ValueError):
    """A checkpoint file that only pickle can read: loading it would run the code it names."""


# -------------------------------------------------------------------- RNG states


def rng_state() -> dict[str, Any]:
    """The global RNG states of python, numpy and torch (JSON data, torch's as a uint8 tensor)."""
    version, internal, gauss = random.getstate()
    return {
        "python": [version, list(internal), gauss],
        "numpy": np.random.get_state(legacy=False),
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (JSON lists or, from old checkpoints, tuples)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


# -------------------------------------------------------------------- env state


def _layers(env: gym.Env) -> list[gym.Env] | str:
    """The wrappers of ``env`` then the env itself, or why their state cannot be saved."""
    layers: list[gym.Env] = []
    while True:
        layers.append(env)
        stateful = callable(getattr(env, "state_dict", None)) and callable(
            getattr(env, "load_state_dict", None)
        )
        if not isinstance(env, gym.Wrapper):
            return layers if stateful else f"{type(env).__name__} has no state_dict()/load_state_dict()"
        if not stateful and type(env) not in _WRAPPER_STATE:
            return f"wrapper {type(env).__name__} has no state_dict()/load_state_dict()"
        env = env.env


def _layer_state(layer: gym.Env) -> dict[str, Any]:
    if callable(getattr(layer, "state_dict", None)):
        return layer.state_dict()
    return {name: getattr(layer, name) for name in _WRAPPER_STATE[type(layer)]}


def _load_layer_state(layer: gym.Env, state: dict[str, Any]) -> None:
    if callable(getattr(layer, "load_state_dict", None)):
        layer.load_state_dict(state)
        return
    for name in _WRAPPER_STATE[type(layer)]:
        setattr(layer, name, state[name])
    if type(layer) is PassiveEnvChecker:
        vars(layer).update(_CHECKED)


def _shared(env: gym.Env) -> dict[str, Any]:
    """Objects the env may share with its siblings (``env.shared_state()``), saved once each."""
    shared = getattr(env.unwrapped, "shared_state", None)
    return shared() if callable(shared) else {}


def env_state_problem(envs: gym.vector.VectorEnv) -> str | None:
    """Why :func:`env_state` cannot save ``envs`` (None: it can)."""
    base = envs.unwrapped
    if not isinstance(base, gym.vector.SyncVectorEnv):
        return f"{type(base).__name__} is not a SyncVectorEnv"
    for i, env in enumerate(base.envs):
        layers = _layers(env)
        if isinstance(layers, str):
            return f"sub-env {i}: {layers}"
    return None


def env_state(envs: gym.vector.VectorEnv) -> dict[str, Any] | None:
    """The state of the sub-envs of a :class:`~gymnasium.vector.SyncVectorEnv`, as JSON data.

    Each sub-env contributes its ``state_dict()`` (RNG, data order and cursor, episode so far) and
    that of each wrapper around it (gym.make's wrappers are known; others need ``state_dict``
    themselves). Objects a sub-env names in ``shared_state()`` (a cost normaliser shared by all of
    them) are saved once each, by their own ``state_dict()``. Candidate pools are not state: the
    live envs keep theirs.

    Returns:
        The state, or None when some sub-env cannot be saved (:func:`env_state_problem` says why);
        a resume then re-seeds the envs.
    """
    if env_state_problem(envs) is not None:
        return None
    shared_objects: list[Any] = []
    shared_states: list[dict[str, Any]] = []
    subs = []
    for env in envs.unwrapped.envs:
        layers = _layers(env)
        assert not isinstance(layers, str)  # env_state_problem checked
        refs = {}
        for name, obj in _shared(env).items():
            index = next((i for i, o in enumerate(shared_objects) if o is obj), None)
            if index is None:
                index = len(shared_objects)
                shared_objects.append(obj)
                shared_states.append(obj.state_dict())
            refs[name] = index
        layer_states = [{"type": type(layer).__name__, "state": _layer_state(layer)} for layer in layers]
        subs.append({"layers": layer_states, "shared": refs})
    return {"format": ENV_STATE_FORMAT, "envs": subs, "shared": shared_states}


def restore_env_state(envs: gym.vector.VectorEnv, state: dict[str, Any]) -> None:
    """Load what :func:`env_state` saved into the live sub-envs (same layout, pools untouched).

    Raises:
        ValueError: the live envs are not laid out as the saved ones (number, wrappers, sharing).
    """
    problem = env_state_problem(envs)
    if problem is not None:
        raise ValueError(f"the checkpoint holds env state but the live envs cannot take it: {problem}")
    if state.get("format") != ENV_STATE_FORMAT:
        raise ValueError(f"env state format {state.get('format')!r}, this version reads {ENV_STATE_FORMAT}")
    live = envs.unwrapped.envs
    if len(state["envs"]) != len(live):
        raise ValueError(f"checkpoint has {len(state['envs'])} sub-envs, the env has {len(live)}")
    bound: dict[int, Any] = {}
    for i, (env, saved) in enumerate(zip(live, state["envs"], strict=True)):
        layers = _layers(env)
        assert not isinstance(layers, str)
        names = [type(layer).__name__ for layer in layers]
        if names != [s["type"] for s in saved["layers"]]:
            raise ValueError(
                f"sub-env {i} is {names}, the checkpoint's was {[s['type'] for s in saved['layers']]}"
            )
        shared = _shared(env)
        if set(shared) != set(saved["shared"]):
            raise ValueError(
                f"sub-env {i} shares {sorted(shared)}, the checkpoint's shared {sorted(saved['shared'])}"
            )
        for name, index in saved["shared"].items():
            if bound.setdefault(index, shared[name]) is not shared[name]:
                raise ValueError(
                    f"sub-env {i}: {name} was shared in the checkpoint but is not in the live envs"
                )
        for layer, saved_layer in zip(layers, saved["layers"], strict=True):
            _load_layer_state(layer, saved_layer["state"])
    if len({id(obj) for obj in bound.values()}) != len(bound):
        raise ValueError("the live sub-envs share an object the checkpoint's kept apart")
    for index, obj in bound.items():
        obj.load_state_dict(state["shared"][index])


# -------------------------------------------------------------------- tensors and JSON


def _join(key: str, part: str) -> str:
    return f"{key}.{part}" if key else part


def _to_json(value: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` as JSON data; tensors move to ``tensors`` under ``key`` (their path in ``value``)."""
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().cpu().contiguous()
        return {_TENSOR: key}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{key}: a {value.dtype} array cannot be checkpointed (numbers and bools only)")
        return {_ARRAY: value.tolist(), "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{key}: dict keys must be strings to checkpoint, got {bad[0]!r}")
        return {k: _to_json(v, _join(key, k), tensors) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(v, _join(key, str(i)), tensors) for i, v in enumerate(value)]
    if value is None or type(value) in (bool, int, float, str):
        return value
    raise TypeError(f"{key}: {type(value).__name__} is not checkpoint data (JSON types, arrays, tensors)")


def _from_json(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if set(value) == {_TENSOR}:
            return tensors[value[_TENSOR]]
        if _ARRAY in value:
            dtype = np.dtype(value["dtype"])
            if dtype.kind not in "biuf":
                raise ValueError(f"checkpoint array of dtype {dtype}: only numbers and bools are read")
            return np.asarray(value[_ARRAY], dtype=dtype).reshape(value["shape"])
        return {k: _from_json(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v, tensors) for v in value]
    return value


def _write(folder: Path, tensors_name: str, index_name: str, data: Any) -> None:
    tensors: dict[str, torch.Tensor] = {}
    document = _to_json(data, "", tensors)
    save_file(tensors, str(folder / tensors_name))
    (folder / index_name).write_text(json.dumps(document, indent=1))


def _read(folder: Path, tensors_name: str, index_name: str) -> Any:
    tensors = load_file(str(folder / tensors_name))
    return _from_json(json.loads((folder / index_name).read_text()), tensors)


def _optimizer_data(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``optimizer.state_dict()``, its integer state keys as ``[key, state]`` pairs (JSON keys are text)."""
    state_dict = optimizer.state_dict()
    return {
        "param_groups": state_dict["param_groups"],
        "state": [[k, v] for k, v in state_dict["state"].items()],
    }


def read_optimizer_state(path: str | Path) -> dict[str, Any]:
    """The optimizer state dict saved in checkpoint ``path``, as ``optimizer.state_dict()`` gives it."""
    data = _read(Path(path), OPTIMIZER_TENSORS, OPTIMIZER_INDEX)
    return {"state": {int(k): v for k, v in data["state"]}, "param_groups": data["param_groups"]}


def _load_optimizer(path: Path, optimizer: torch.optim.Optimizer) -> None:
    saved = read_optimizer_state(path)
    # JSON has no tuples: give back the live groups' tuples (Adam's betas) as tuples.
    for live, group in zip(optimizer.param_groups, saved["param_groups"], strict=False):
        for key, value in group.items():
            if isinstance(live.get(key), tuple) and isinstance(value, list):
                group[key] = tuple(value)
    optimizer.load_state_dict(saved)


# -------------------------------------------------------------------- checkpoint folders


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
        optimizer: its ``state_dict`` goes to ``optimizer.safetensors`` + ``optimizer.json``.
        trainer_state: what the trainer needs to continue: dicts (string keys), lists, JSON scalars,
            numpy arrays of numbers and torch tensors, nested freely.
        keep: delete all but the newest ``keep`` checkpoints afterwards; None keeps all.

    Raises:
        TypeError: ``trainer_state`` holds something else; no checkpoint is left behind.
    """
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{global_step:010d}"
    tmp = root / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        weights = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
        save_file(weights, str(tmp / POLICY_WEIGHTS))
        _write(tmp, OPTIMIZER_TENSORS, OPTIMIZER_INDEX, _optimizer_data(optimizer))
        _write(tmp, STATE_TENSORS, STATE_INDEX, trainer_state)
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
    path: str | Path,
    policy: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    trust_pickles: bool = False,
) -> dict[str, Any]:
    """Load weights (and optimizer state) in place; return the trainer state saved with them.

    Args:
        path: a ``step_*`` checkpoint folder.
        policy: receives ``policy.safetensors`` (strict).
        optimizer: receives the saved optimizer state; None skips it.
        trust_pickles: read a checkpoint of an older version (``trainer_state.pkl``,
            ``optimizer.pt``), which pickle runs as code: only for runs you wrote yourself. Its
            pickled env state is not restored (the envs are re-seeded).

    Raises:
        UntrustedCheckpointError: an old pickled checkpoint without ``trust_pickles``; nothing is
            loaded.
    """
    path = Path(path)
    if not (path / STATE_INDEX).is_file() and any((path / name).is_file() for name in LEGACY_PICKLES):
        return _load_legacy(path, policy, optimizer, trust_pickles)
    load_policy_weights(path, policy)
    if optimizer is not None:
        _load_optimizer(path, optimizer)
    return _read(path, STATE_TENSORS, STATE_INDEX)


def _load_legacy(
    path: Path, policy: torch.nn.Module, optimizer: torch.optim.Optimizer | None, trust_pickles: bool
) -> dict[str, Any]:
    """A checkpoint of rl-router before data-only checkpoints: pickles, read only when trusted."""
    pickled = path / LEGACY_PICKLES[0]
    if not trust_pickles:
        raise UntrustedCheckpointError(
            f"{pickled} is a pickle (a checkpoint of an older rl-router): loading it runs whatever code "
            "it names. Resume it only if you wrote it yourself, with trust_pickles=True "
            "(ppo.train / load_checkpoint); never for a run someone shared"
        )
    warnings.warn(
        f"loading the pickled checkpoint {path} (trust_pickles=True): pickles run code; "
        "its pickled env state is not restored, the envs are re-seeded",
        stacklevel=3,
    )
    load_policy_weights(path, policy)
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(path / LEGACY_PICKLES[1], weights_only=True))
    with pickled.open("rb") as f:
        state = pickle.load(f)
    state["env_state"] = None  # pickled sub-envs; this version restores envs through their state API
    return state


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 of a module's tensors (names, dtypes, shapes, bytes).

    What scored eval rows and calibrations are valid for: two folders holding the same weights share
    it, and a folder whose weights changed in place (a resumed run's) does not.
    """
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
