"""``rl-router export`` of a ``memory_tiers`` run: the compact tier policy as a Hub folder.

Written by :func:`write_memory_tiers_folder` into the temporary folder :func:`rl_router.hub.export_router`
assembles (no pickle anywhere)::

    model.safetensors    the policy's weights (the checkpoint exported)
    router_config.json   router_kind "memory_tiers_policy", the policy's hyperparameters and sizes, the
                         env config it observes (strategy, tiers, encoder), the run's data and trainer
    pool.json            the tiers in action order (Low, Mid, High) with their kind, model and prices
    README.md            a short card with the held-out report
    report.json, report.md, pareto.png    the run's evaluation, when it has one
    calibration.json     the run's operating point (``rl-router calibrate``: one offset per tier), when
                         it has one fitted for these weights

:func:`load_memory_tiers_policy` builds a :class:`~rl_router.policies.memory_tiers.MemoryTierPolicy`
from the recorded sizes (no ``_target_`` is instantiated; calibrated when the folder holds a
``calibration.json``); :func:`rl_router.routers.load.load_router` gives the
:class:`~rl_router.routers.memory_tiers.MemoryTiersRouter`. The folder is loaded back before it is
kept: its weights and its calibration must equal the run's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file, save_file

from envs.memory_modules import MODULES, TIERS
from rl_router import __version__
from rl_router import checkpoint as ckpt
from rl_router.rollout.env_factory import env_schema
from rl_router.routers.folder import FORMAT_VERSION, POOL, ROUTER_CONFIG, WEIGHTS
from rl_router.routers.load import load_router, with_calibration
from rl_router.routers.memory_tiers import MEMORY_TIERS_KIND, load_memory_tiers_exported
from rl_router.routers.policy import pool_descriptors

REPORTS = ("report.json", "report.md", "pareto.png")


def load_memory_tiers_policy(folder: str | Path) -> torch.nn.Module:
    """The exported tier policy of ``folder``: ``policy(obs [B, 2D + 5], mask [B, 3]) -> (logits, value)``,
    at the folder's operating point when it holds a ``calibration.json``."""
    folder = Path(folder)
    config = json.loads((folder / ROUTER_CONFIG).read_text())
    if config.get("router_kind") != MEMORY_TIERS_KIND:
        raise ValueError(f"{folder}: router_kind={config.get('router_kind')!r}, not {MEMORY_TIERS_KIND}")
    return with_calibration(load_memory_tiers_exported(folder, config), folder).tier_policy()


def write_memory_tiers_folder(tmp: Path, run_dir: Path, cfg: DictConfig, repo_id: str, latest: Path) -> None:
    """Fill ``tmp`` with the export of checkpoint ``latest`` of ``run_dir`` (see the module docstring)."""
    env = env_schema(cfg.env)
    prices = {d.name: d for d in pool_descriptors(cfg.pool)}
    run_router = load_router(latest)  # the run's policy and its calibration.json, if any
    weights = load_file(str(latest / ckpt.POLICY_WEIGHTS))
    save_file(weights, str(tmp / WEIGHTS), metadata={"format": "pt"})
    descriptor_dim = int(weights["descriptors"].shape[1])
    obs_dim = int(weights["actor.0.weight"].shape[1]) - descriptor_dim + len(MODULES)
    config: dict[str, Any] = {
        "router_kind": MEMORY_TIERS_KIND,
        "format_version": FORMAT_VERSION,
        "rl_router_version": __version__,
        "checkpoint": latest.name,
        "policy": OmegaConf.to_container(cfg.policy, resolve=True),
        "obs_dim": obs_dim,
        "modules": list(MODULES),
        "tiers": list(TIERS),
        "env": OmegaConf.to_container(cfg.env, resolve=True),
        "training": {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("data", "trainer")}
        | {"pool": run_router.training["pool"]},  # what calibrate replays on; env reads stay ${oc.env:..}
    }
    (tmp / ROUTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    tiers = []
    for name, tier in zip(TIERS, env.tiers, strict=True):
        d = prices.get(tier.model) if tier.kind == "llm" else tier.descriptor()
        price_in, price_out = (d.price_in, d.price_out) if d is not None else (0.0, 0.0)
        tiers.append(
            {
                "tier": name,
                "kind": tier.kind,
                "model": tier.model,
                "price_in": price_in,
                "price_out": price_out,
            }
        )
    (tmp / POOL).write_text(json.dumps(tiers, indent=2) + "\n")
    for name in REPORTS:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, tmp / name)
    if run_router.calibration is not None:
        run_router.calibration.save(tmp)
    report = (run_dir / "report.md").read_text() if (run_dir / "report.md").is_file() else ""
    fit = run_router.calibration
    operating_point = (
        f"Operating point (`calibration.json`): {fit.describe()}, offsets "
        + ", ".join(f"{t} {v:+.4g}" for t, v in zip(TIERS, fit.offsets, strict=True))
        + " added to each tier's log-probability.\n\n"
        if fit is not None
        else ""
    )
    listed = ", ".join(f"{t['tier']}: {t['model']} (${t['price_in']:g}/1M)" for t in tiers)
    card = (
        "---\nlibrary_name: rl-router\ntags: [rl-router, memory-tiers, budgetmem, routing]\n---\n\n"
        f"# {repo_id}\n\n"
        f"A compact tier router for agent memory (rl-router `memory_tiers`, BudgetMem on LoCoMo): for each "
        f"of the modules {', '.join(MODULES)} it picks a tier ({listed}; strategy {env.strategy}). "
        f"Trained on LoCoMo (research, non-commercial use).\n\n"
        f"```python\nfrom rl_router.eval.memory_tiers_export import load_memory_tiers_policy\n"
        f'policy = load_memory_tiers_policy("<this folder>")\n```\n\n{operating_point}{report}'
    )
    (tmp / "README.md").write_text(card)
    exported = with_calibration(load_memory_tiers_exported(tmp, config), tmp)
    if exported.weights_digest() != run_router.weights_digest():
        raise RuntimeError(f"the exported weights of {latest} do not load back to the run's: export refused")
    if exported.calibration != run_router.calibration:
        raise RuntimeError(f"the export of {latest} does not load back at the run's operating point: refused")
