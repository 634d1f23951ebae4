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

A text-mode run (an LLM router trained with GRPO, :mod:`rl_router.recipes.agent_steps_grpo`) exports
its ``router/`` model instead (:func:`write_agent_steps_llm_folder`): a transformers folder plus
``router_config.json`` with ``router_kind "agent_steps_llm"``, ``pool.json``, a card and the report;
:func:`load_agent_steps_llm` loads it.
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


LLM_ROUTER_KIND = "agent_steps_llm"
# what the round trip generates from: a transcript of the shape the env writes for the router
PROBE = "Task: pick up the coin.\nTiers: {tiers}\nStep 1: look around. Budget left: 2 large calls.\nTier:"


def load_agent_steps_llm(folder: str | Path) -> tuple[Any, Any, dict[str, Any]]:
    """``(model, tokenizer, router_config)`` of an exported agent_steps LLM router (safetensors only)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    config = json.loads((folder / ROUTER_CONFIG).read_text())
    if config.get("router_kind") != LLM_ROUTER_KIND:
        raise ValueError(f"{folder}: router_kind={config.get('router_kind')!r}, not {LLM_ROUTER_KIND}")
    model = AutoModelForCausalLM.from_pretrained(str(folder), use_safetensors=True).eval()
    return model, AutoTokenizer.from_pretrained(str(folder)), config


def _probe_reply(model: Any, tokenizer: Any, tiers: str) -> list[int]:
    ids = tokenizer(PROBE.format(tiers=tiers), return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    return out[0, ids["input_ids"].shape[1] :].tolist()


def write_agent_steps_llm_folder(tmp: Path, run_dir: Path, cfg: DictConfig, repo_id: str) -> None:
    """Fill ``tmp`` with the export of a text-mode (GRPO) agent_steps run's ``router/`` model: a
    transformers folder (weights as safetensors, tokenizer) plus ``router_config.json``
    (``router_kind: "agent_steps_llm"``, the env config whose transcript it reads), ``pool.json``
    (the tiers), a card and the run's report; loaded back before it is kept (same weights, and the
    same greedy reply to a probe transcript)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rl_router.run import ROUTER_DIR

    source = run_dir / ROUTER_DIR
    if not (source / "config.json").is_file():
        raise FileNotFoundError(f"{run_dir} holds no trained LLM router ({ROUTER_DIR}/): nothing to export")
    model = AutoModelForCausalLM.from_pretrained(str(source), use_safetensors=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    descriptors = pool_descriptors(cfg.pool)
    config: dict[str, Any] = {
        "router_kind": LLM_ROUTER_KIND,
        "format_version": FORMAT_VERSION,
        "rl_router_version": __version__,
        "tiers": [d.name for d in descriptors],
        "decision": (
            "greedy reply to the env's step transcript (ending 'Tier:'); its first word is a tier number "
            "(1-based, pool.json order) or name; the hard budget's mask still decides what is called"
        ),
        "env": OmegaConf.to_container(cfg.env, resolve=True),
        "training": {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("data", "trainer")},
    }
    (tmp / ROUTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    (tmp / POOL).write_text(json.dumps([descriptor_dict(d) for d in descriptors], indent=2) + "\n")
    for name in (REPORT_JSON, REPORT_MD, PARETO_PNG):
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, tmp / name)
    report = (run_dir / REPORT_MD).read_text() if (run_dir / REPORT_MD).is_file() else ""
    names = ", ".join(f"{i} = {d.name}" for i, d in enumerate(descriptors, start=1))
    card = (
        "---\nlibrary_name: transformers\ntags: [rl-router, agent-steps, routing, grpo]\n---\n\n"
        f"# {repo_id}\n\n"
        f"An LLM tier router for text-game agents (rl-router `agent_steps`, trained with TRL GRPO): it "
        f"reads the agent's step transcript and answers each step with a tier ({names}). A per-task "
        f"hard budget masks unaffordable tiers whatever it names.\n\n"
        f"```python\nfrom rl_router.eval.agent_steps_export import load_agent_steps_llm\n"
        f'model, tokenizer, config = load_agent_steps_llm("<this folder>")\n```\n\n{report}'
    )
    (tmp / "README.md").write_text(card)
    back, back_tok, _ = load_agent_steps_llm(tmp)
    same_weights = ckpt.weights_digest(back) == ckpt.weights_digest(model)
    if not same_weights or _probe_reply(back, back_tok, names) != _probe_reply(model, tokenizer, names):
        raise RuntimeError(f"the exported router of {run_dir} does not load back to the run's: refused")
