"""``rl-router export`` of an ``agent_steps`` run: the compact tier router as a Hub folder.

Written by :func:`write_agent_steps_folder` into the temporary folder :func:`rl_router.hub.export_router`
assembles (no pickle anywhere)::

    model.safetensors    the policy's weights (the checkpoint exported)
    router_config.json   router_kind "agent_steps_policy", the policy config, the env config it observes
                         (the observation layout follows from it), the run's training config, versions
    pool.json            the tiers in action order (prices: what the budget masks by)
    README.md            a short card with the held-out report
    report.json, report.md, pareto.png    the run's evaluation, when it has one

The folder is loaded back before it is kept: the weights must give the same logits as the run's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file, save_file

from rl_router import __version__
from rl_router import checkpoint as ckpt
from rl_router.eval.agent_steps_eval import PARETO_PNG, REPORT_JSON, REPORT_MD
from rl_router.routers.folder import FORMAT_VERSION, POOL, ROUTER_CONFIG, WEIGHTS
from rl_router.routers.policy import descriptor_dict, pool_descriptors
from rl_router.trust import check_recorded

ROUTER_KIND = "agent_steps_policy"


def load_agent_steps_policy(folder: str | Path) -> torch.nn.Module:
    """The exported tier policy of ``folder`` (``policy(obs [B, D], mask [B, A]) -> (logits, value)``)."""
    folder = Path(folder)
    config = json.loads((folder / ROUTER_CONFIG).read_text())
    if config.get("router_kind") != ROUTER_KIND:
        raise ValueError(f"{folder}: router_kind={config.get('router_kind')!r}, not {ROUTER_KIND}")
    check_recorded(config["policy"], "policy", str(folder / ROUTER_CONFIG))
    policy = instantiate(config["policy"], obs_dim=config["obs_dim"], num_actions=config["num_actions"])
    policy.load_state_dict(load_file(str(folder / WEIGHTS)))
    return policy.eval()


def write_agent_steps_folder(tmp: Path, run_dir: Path, cfg: DictConfig, repo_id: str, latest: Path) -> None:
    """Fill ``tmp`` with the export of checkpoint ``latest`` of ``run_dir`` (see the module docstring)."""
    descriptors = pool_descriptors(cfg.pool)
    weights = load_file(str(latest / ckpt.POLICY_WEIGHTS))
    save_file(weights, str(tmp / WEIGHTS), metadata={"format": "pt"})
    first = next(w for k, w in weights.items() if k.startswith("actor.") and k.endswith("weight"))
    config: dict[str, Any] = {
        "router_kind": ROUTER_KIND,
        "format_version": FORMAT_VERSION,
        "rl_router_version": __version__,
        "checkpoint": latest.name,
        "policy": OmegaConf.to_container(cfg.policy, resolve=True),
        "obs_dim": int(first.shape[1]),
        "num_actions": len(descriptors),
        "env": OmegaConf.to_container(cfg.env, resolve=True),
        "training": {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("data", "trainer")},
    }
    (tmp / ROUTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    (tmp / POOL).write_text(json.dumps([descriptor_dict(d) for d in descriptors], indent=2) + "\n")
    report = ""
    for name in (REPORT_JSON, REPORT_MD, PARETO_PNG):
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, tmp / name)
    if (run_dir / REPORT_MD).is_file():
        report = (run_dir / REPORT_MD).read_text()
    tiers = ", ".join(f"{d.name} (${d.price_in:g}/${d.price_out:g} per 1M)" for d in descriptors)
    card = (
        f"---\nlibrary_name: rl-router\ntags: [rl-router, agent-steps, routing]\n---\n\n# {repo_id}\n\n"
        f"A compact tier router for text-game agents (rl-router `agent_steps`): before every agent step it "
        f"picks one of {tiers}, under a per-task hard budget masked before sampling. BoPO reward and "
        f"reference baseline: rl-router's reconstruction.\n\n"
        f"```python\nfrom rl_router.eval.agent_steps_export import load_agent_steps_policy\n"
        f'policy = load_agent_steps_policy("<this folder>")\n```\n\n{report}'
    )
    (tmp / "README.md").write_text(card)
    # load-back: the folder must decide exactly like the run's checkpoint
    run_policy = instantiate(cfg.policy, obs_dim=config["obs_dim"], num_actions=config["num_actions"])
    ckpt.load_policy_weights(latest, run_policy)
    exported = load_agent_steps_policy(tmp)
    if ckpt.weights_digest(exported) != ckpt.weights_digest(run_policy.eval()):
        raise RuntimeError(f"the exported weights of {latest} do not load back to the run's: export refused")
