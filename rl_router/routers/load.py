""":func:`load_router`: a trained router back, from wherever it was written.

:func:`load_router` takes any of these sources and returns a
:class:`~rl_router.routers.policy.PolicyRouter` or an :class:`~rl_router.routers.llm.LLMRouter`:

* a *run directory* of ``rl-router train``: its recorded ``config.yaml`` and newest checkpoint
  (a policy run's ``checkpoints/step_*/policy.safetensors``, :mod:`rl_router.checkpoint`; an LLM
  run's ``router/``, else its newest ``checkpoints/checkpoint-N``);
* *one checkpoint of a run*: a policy run's ``<run>/checkpoints/step_N``, or an LLM run's model
  folders ``<run>/sft_model`` (the warm start), ``<run>/router``, ``<run>/checkpoints/checkpoint-N``;
* an *exported folder* of ``rl-router export`` (:mod:`rl_router.hub`): ``router_config.json``,
  the weights in safetensors and ``pool.json``, no pickle anywhere;
* a *Hub repo id* (``"<user>/<name>"``) holding such a folder, fetched with ``snapshot_download``.

An exported folder's ``router_config.json`` names its ``router_kind``: ``"policy"`` or ``"llm"``.
A run directory is an LLM router's when its ``env.mode`` is ``multi_round``. Both kinds answer
``router.route(queries)``::

    router = load_router("outputs/default/2026-11-25_03-00-00")
    router = load_router("outputs/default/2026-11-25_03-00-00/checkpoints/step_10000")
    router.route(["What is 12 * 7?"])             # -> ["mixtral-8x7b"]

A ``memory_tiers`` run or export gives a :class:`~rl_router.routers.memory_tiers.MemoryTiersRouter`
(a tier per memory module, not a candidate per query). A router of any kind comes back with the
``calibration.json`` of its run directory (also when one of the run's checkpoints is loaded) or of
its exported folder, when there is one and it was fitted for these weights
(:mod:`rl_router.routers.calibration`); a file fitted for other weights (a run trained on after
``rl-router calibrate``) is left unapplied with a warning, a malformed one is refused.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from omegaconf import OmegaConf

from rl_router import __version__
from rl_router import checkpoint as ckpt
from rl_router.data.features import features_of_layout
from rl_router.routers.calibration import CALIBRATION, load_calibration
from rl_router.routers.folder import FORMAT_VERSION, POOL, ROUTER_CONFIG, ROUTER_KINDS, WEIGHTS
from rl_router.routers.llm import load_llm_exported, load_llm_run
from rl_router.routers.memory_tiers import (
    MEMORY_TIERS_ENV,
    MEMORY_TIERS_KIND,
    MemoryTiersRouter,
    load_memory_tiers_exported,
    load_memory_tiers_run,
)
from rl_router.routers.policy import (
    PolicyRouter,
    build_policy,
    descriptor_from_dict,
    observation_layout,
    pool_descriptors,
    run_features,
)
from rl_router.run import RUN_CONFIG, load_run_config, portable_config
from rl_router.trust import UntrustedConfigError, check_recorded

if TYPE_CHECKING:
    from rl_router.routers.folder import FORMAT_VERSION, POOL, ROUTER_CONFIG, ROUTER_KINDS, WEIGHTS
from rl_router.routers.llm import LLMRouter

# Exported configs may come from strangers: only our own policy classes are instantiated from them.
TRUSTED_POLICY_PREFIX = "rl_router.policies."
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
log = logging.getLogger(__name__)
Router = TypeVar("Router", PolicyRouter, LLMRouter, MemoryTiersRouter)


def load_router(
    path_or_repo_id: str | Path, revision: str | None = None
) -> PolicyRouter | LLMRouter | MemoryTiersRouter:
    """A trained router from a run directory, an exported folder or a Hub repo id.

    Args:
        path_or_repo_id: a run directory of ``rl-router train``, a folder written by
            ``rl-router export``, or ``"<user>/<name>"`` of a Hub repo holding such a folder.
            A local directory wins over a repo id of the same spelling.
        revision: Hub branch, tag or commit (repo ids only); None: the default branch.

    The Hub path calls :func:`huggingface_hub.snapshot_download` and then reads the downloaded
    folder exactly like a local export. It needs network access (or the files already in the
    Hub cache), so the test suite, which runs offline, covers local folders only.

    Raises:
        FileNotFoundError: nothing loadable at ``path_or_repo_id``, or a run without checkpoints.
        ValueError: an exported folder this version cannot read (other router kind, format
            version or observation layout, untrusted policy class).
    """
    path = Path(path_or_repo_id)
    if path.is_dir():
        if (path / RUN_CONFIG).is_file():
            return _load_run(path)
        if (path / ROUTER_CONFIG).is_file():
            return load_exported(path)
        run = run_of_policy_checkpoint(path)
        if run is not None:
            return _load_run(run, checkpoint=path)
        run = run_of_model_dir(path)
        if run is not None:
            return with_calibration(load_llm_run(run, load_run_config(run), model_dir=path), run)
        raise FileNotFoundError(
            f"{path} is neither a run directory of `rl-router train` (no {RUN_CONFIG}), one of its "
            f"checkpoints, nor a folder of `rl-router export` (no {ROUTER_CONFIG})"
        )
    if _REPO_ID.match(str(path_or_repo_id)):
        return load_exported(_download(str(path_or_repo_id), revision))
    raise FileNotFoundError(
        f"{path_or_repo_id} not found: give a run directory, an exported folder or a Hub repo id "
        "<user>/<name>"
    )


def run_of_model_dir(path: Path) -> Path | None:
    """The LLM run a transformers model folder belongs to, or None.

    ``<run>/sft_model``, ``<run>/router`` and ``<run>/checkpoints/checkpoint-N`` each hold a
    ``config.json``; their run directory (one or two levels up) holds the run's ``config.yaml``.
    """
    if not (path / "config.json").is_file():
        return None
    for parent in (path.parent, path.parent.parent):
        config = parent / RUN_CONFIG
        if config.is_file() and OmegaConf.load(config).env.get("mode") == "multi_round":
            return parent
    return None


def run_of_policy_checkpoint(path: Path) -> Path | None:
    """The policy run a ``<run>/checkpoints/step_N`` folder belongs to, or None."""
    if not (ckpt.is_checkpoint_name(path.name) and (path / ckpt.POLICY_WEIGHTS).is_file()):
        return None
    run = path.parent.parent
    return run if path.parent.name == ckpt.CHECKPOINT_DIR and (run / RUN_CONFIG).is_file() else None


def _load_run(run_dir: Path, checkpoint: Path | None = None) -> PolicyRouter | LLMRouter | MemoryTiersRouter:
    """The router of a training run: its config and ``checkpoint`` (None: the newest)."""
    cfg = load_run_config(run_dir)
    if cfg.env.get("mode") == "multi_round":
        return with_calibration(load_llm_run(run_dir, cfg), run_dir)
    if cfg.env.get("_target_") == MEMORY_TIERS_ENV:  # a tier router over memory modules
        _check_policy_config(OmegaConf.to_container(cfg.policy, resolve=True), run_dir / RUN_CONFIG)
        return with_calibration(load_memory_tiers_run(run_dir, cfg, checkpoint), run_dir)
    latest = checkpoint if checkpoint is not None else ckpt.latest_checkpoint(run_dir)
    if latest is None:
        raise FileNotFoundError(f"{run_dir} holds no checkpoint (checkpoints/step_*): has training started?")
    descriptors = pool_descriptors(cfg.pool)
    _check_policy_config(OmegaConf.to_container(cfg.policy, resolve=True), run_dir / RUN_CONFIG)
    features = run_features(cfg.env)
    policy = build_policy(cfg.policy, descriptors, features)
    ckpt.load_policy_weights(latest, policy)
    training = portable_config(cfg)
    router = PolicyRouter(policy.eval(), descriptors, checkpoint=latest, training=training, features=features)
    return with_calibration(router, run_dir)


def load_exported(folder: str | Path) -> PolicyRouter | LLMRouter | MemoryTiersRouter:
    """The router of a folder written by ``rl-router export`` (see :func:`load_router`)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config = json.loads((folder / ROUTER_CONFIG).read_text())
    kind = config.get("router_kind")
    if kind == MEMORY_TIERS_KIND:  # a tier router over memory modules
        return with_calibration(load_memory_tiers_exported(folder, config), folder)
    if kind not in ROUTER_KINDS:
        raise ValueError(
            f"{folder / ROUTER_CONFIG}: router_kind={kind!r}; rl-router {__version__} loads "
            f"{' and '.join(repr(k) for k in ROUTER_KINDS)} routers"
        )
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{folder / ROUTER_CONFIG}: format_version={config.get('format_version')!r}, this rl-router "
            f"reads version {FORMAT_VERSION}; install the rl-router version that wrote it "
            f"({config.get('rl_router_version')})"
        )
    if kind == "llm":
        return with_calibration(load_llm_exported(folder, config), folder)
    descriptors = [descriptor_from_dict(d) for d in json.loads((folder / POOL).read_text())]
    layout = config.get("observation") or {}
    parts = [p for p in layout.get("parts", []) if p.get("name") != "descriptor_features"]
    features = features_of_layout(parts, str(folder / ROUTER_CONFIG))
    expected = observation_layout(descriptors, features)
    if layout != expected:
        raise ValueError(
            f"{folder / ROUTER_CONFIG}: observation layout {config.get('observation')} differs from what "
            f"this rl-router builds for pool.json ({expected})"
        )
    policy_cfg = config["policy"]
    _check_policy_config(policy_cfg, folder / ROUTER_CONFIG)
    policy = build_policy(policy_cfg, descriptors, features)
    policy.load_state_dict(load_file(str(folder / WEIGHTS)))
    training = dict(config.get("training") or {})
    router = PolicyRouter(policy.eval(), descriptors, checkpoint=folder, training=training, features=features)
    return with_calibration(router, folder)


def with_calibration(router: Router, folder: Path) -> Router:
    """``router`` with the ``calibration.json`` of ``folder`` attached, when it fits these weights.

    Raises:
        CalibrationError: the file is malformed (naming the file and the field).
    """
    calibration = load_calibration(folder, router.model_names)
    if calibration is not None and calibration.weights_sha256 != router.weights_digest():
        log.warning(
            "%s was fitted for other weights than %s: not applied (run rl-router calibrate again)",
            folder / CALIBRATION,
            router.checkpoint,
        )
        calibration = None
    router.calibration = calibration
    return router


def router_home(path: str | Path) -> Path:
    """The folder whose ``calibration.json`` applies to the router at ``path``: the run directory
    (also for one of its checkpoints or model folders) or the exported folder.

    Raises:
        FileNotFoundError: ``path`` is none of those (a Hub repo id is not a local folder).
    """
    path = Path(path)
    if path.is_dir() and ((path / RUN_CONFIG).is_file() or (path / ROUTER_CONFIG).is_file()):
        return path
    run = run_of_policy_checkpoint(path) if path.is_dir() else None
    run = run or (run_of_model_dir(path) if path.is_dir() else None)
    if run is None:
        raise FileNotFoundError(
            f"{path} is not a local run directory of `rl-router train`, one of its checkpoints, nor a "
            "folder of `rl-router export` (download a Hub router first and give its folder)"
        )
    return run


def _check_policy_config(policy_cfg: Mapping[str, Any], where: Path) -> None:
    """Refuse a recorded policy config that would make Hydra call anything but one of our policies.

    ``instantiate`` imports and calls ``_target_`` and, recursively, any nested ``_target_``; a
    recorded config may only name one of this project's policy classes and hold plain values.
    """
    check_recorded(policy_cfg, "policy", str(where))
    if "_target_" in json.dumps({k: v for k, v in policy_cfg.items() if k != "_target_"}):
        raise UntrustedConfigError(f"{where}: the policy config may hold plain values only besides _target_")


def _download(repo_id: str, revision: str | None) -> Path:
    """The files of an exported router on the Hub, in the local Hub cache (weights and JSON only)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        # Never fetch pickles: an exported router is JSON, safetensors and text.
        patterns = ["*.json", "*.safetensors", "*.txt", "*.jinja", "*.md", "*.model"]
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except (LocalEntryNotFoundError, RepositoryNotFoundError) as err:
        raise FileNotFoundError(
            f"{repo_id} is not a local directory, and the Hub repo could not be fetched: {err}"
        ) from err
