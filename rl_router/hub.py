"""``rl-router export``: a Hub-ready folder for a trained router, uploaded when asked.

``rl-router export checkpoint=<run dir> repo_id=<user>/<name> [push=true] [out_dir=<dir>]`` writes
(default ``<checkpoint>/export/<name>/``)::

    model.safetensors    the policy's weights (newest checkpoint), safetensors only
    router_config.json   router kind, policy config (with _target_), observation layout, versions
    pool.json            the candidates in action order: name, model, params_b, description, prices, sampling
    README.md            model card: YAML front matter, candidates, how to load it, the eval table
    report.json, report.md, pareto.png    the run's evaluation of that checkpoint, when there is one
    calibration.json     the run's operating point (``rl-router calibrate``), when it has one for
                         these weights

No file in the folder is a pickle, and :func:`rl_router.load_router` reads it back
(``load_router("<folder or repo id>")``) to the same decisions as the run directory.

An LLM router's run (``env.mode=multi_round``) exports as a transformers folder instead
(:func:`export_llm_router`): ``model.safetensors``, ``config.json``, ``generation_config.json`` and
the tokenizer files (with its chat template), plus ``router_config.json`` (``router_kind: "llm"``,
the prompt template and the protocol settings it was trained under), ``pool.json``, the model card
and the report. ``AutoModelForCausalLM.from_pretrained(folder)`` loads it as well.

``push=true`` creates the repo and uploads the folder with :class:`huggingface_hub.HfApi`, using the
token in ``$HF_TOKEN``; without one it stops before writing anything. Without ``push`` nothing
touches the network.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from omegaconf import MISSING, DictConfig, OmegaConf
from safetensors.torch import load_file, save_file

from rl_router import __version__
from rl_router import checkpoint as ckpt
from rl_router.config import typed
from rl_router.embeddings import EMBED_DIM, EMBEDDING_MODEL
from rl_router.eval.agent_steps_eval import AGENT_STEPS_ENV
from rl_router.eval.agent_steps_export import write_agent_steps_folder, write_agent_steps_llm_folder
from rl_router.eval.memory_tiers_export import write_memory_tiers_folder
from rl_router.model_card import copy_reports, find_reports, llm_model_card, model_card
from rl_router.pool.types import ModelDescriptor
from rl_router.routers.calibration import Calibration
from rl_router.routers.folder import FORMAT_VERSION, POOL, ROUTER_CONFIG, WEIGHTS
from rl_router.routers.load import load_exported, load_router, run_of_model_dir, run_of_policy_checkpoint
from rl_router.routers.memory_tiers import MEMORY_TIERS_ENV
from rl_router.routers.policy import descriptor_dict, observation_layout, pool_descriptors, run_features
from rl_router.run import load_run_config, portable_config
from rl_router.trust import DEFAULT_BASE_URL

log = logging.getLogger(__name__)


@dataclass
class ExportConfig:
    """Root of ``rl-router export``: a Hub-ready folder from a trained run."""

    checkpoint: str = MISSING  # a run directory written by ``rl-router train``
    repo_id: str = MISSING  # Hub repository, "<user>/<name>"
    out_dir: str | None = None  # where the folder is written; None: <checkpoint>/export/<repo name>
    push: bool = False  # upload with huggingface_hub (token from HF_TOKEN)
    private: bool = False  # push=true: create the Hub repo as private (an existing repo keeps its setting)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", self.repo_id):
            raise ValueError(f"repo_id={self.repo_id!r}: use <user>/<name>, e.g. alice/routellm-router")


TOKEN_ENV = "HF_TOKEN"
NO_TOKEN = (
    f"rl-router export: push=true needs a Hugging Face write token in ${TOKEN_ENV} "
    "(create one at https://huggingface.co/settings/tokens); nothing was written. "
    "Set it, or leave out push=true to only write the folder."
)
REMOVED_ENDPOINT = "<endpoint removed on export: give eval pool=<option>>"
REMOVED_PATH = "<local path removed on export>"
MACHINE_KEYS = frozenset({"cache_dir"})  # where this machine keeps its caches: never published
_LOCAL_PATH = re.compile(r"^(/|~|\.{1,2}/|[A-Za-z]:[\\/])")
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}
# Fixed questions on which an exported LLM router must write the same first turns as its run.
PROBE_QUERIES = (
    "What is the capital of Peru?",
    "What is 17 + 25?",
    "Who wrote the novel Moby-Dick?",
    "Which planet is closest to the Sun?",
)


class HubApi(Protocol):
    """The two calls of :class:`huggingface_hub.HfApi` that a push makes."""

    def create_repo(
        self,
        repo_id: str,
        *,
        repo_type: str | None = None,
        private: bool | None = None,
        exist_ok: bool = False,
    ) -> Any: ...

    def upload_folder(
        self,
        *,
        repo_id: str,
        folder_path: str | Path,
        repo_type: str | None = None,
        commit_message: str | None = None,
    ) -> Any: ...


def run_export(cfg: DictConfig, api: HubApi | None = None) -> Path:
    """The Hydra task of ``rl-router export``; returns the written folder.

    Args:
        cfg: the composed ``export`` config (:class:`~rl_router.config.ExportConfig`).
        api: what uploads when ``push=true``; None: ``HfApi(token=$HF_TOKEN)``.
    """
    config: ExportConfig = typed(cfg)
    token = os.environ.get(TOKEN_ENV, "").strip() if config.push else ""
    if config.push and not token:
        raise SystemExit(NO_TOKEN)
    out_dir = Path(config.out_dir) if config.out_dir else default_out_dir(config.checkpoint, config.repo_id)
    folder = export_router(config.checkpoint, config.repo_id, out_dir)
    print(f"exported {config.checkpoint} -> {folder}")
    for path in sorted(folder.iterdir()):
        print(f"  {path.name:<20} {path.stat().st_size:>10,d} bytes")
    if config.push:
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi(token=token)
        url = push_folder(folder, config.repo_id, api, private=config.private, secret=token)
        print(f"pushed to {url}")
    else:
        print(f"upload: rl-router export checkpoint={config.checkpoint} repo_id={config.repo_id} push=true")
    return folder


def default_out_dir(checkpoint: str | Path, repo_id: str) -> Path:
    """``<run dir>/export/<repo name>`` (also for one model folder of an LLM run, e.g. its sft_model)."""
    run = run_of_model_dir(Path(checkpoint))
    return (run if run is not None else Path(checkpoint)) / "export" / repo_id.split("/")[-1]


def export_router(run_dir: str | Path, repo_id: str, out_dir: str | Path) -> Path:
    """Write the Hub folder of a run's newest checkpoint into ``out_dir`` (replacing an older export).

    The folder is assembled in a temporary directory beside ``out_dir``, loaded back and checked to
    decide exactly like the run, then renamed into place.

    Raises:
        FileNotFoundError: ``run_dir`` is not a run directory, or has no checkpoint.
        FileExistsError: ``out_dir`` holds files but is not an earlier export.
    """
    source, out = Path(run_dir), Path(out_dir)
    run = run_of_model_dir(source)
    if run is not None:  # one model folder of an LLM run (e.g. <run>/sft_model)
        return export_llm_router(run, load_run_config(run), repo_id, out, model_dir=source)
    run = run_of_policy_checkpoint(source)
    if run is not None:  # one checkpoint of a policy run: <run>/checkpoints/step_N
        run_dir, latest = run, source
    else:
        run_dir, latest = source, None
    cfg = load_run_config(run_dir)
    if cfg.env.get("mode") == "multi_round":
        return export_llm_router(run_dir, cfg, repo_id, out)
    if cfg.env.get("_target_") == AGENT_STEPS_ENV and cfg.env.get("mode") == "text":  # a GRPO tier router
        return _assemble(out, lambda tmp: write_agent_steps_llm_folder(tmp, Path(run_dir), cfg, repo_id))
    latest = latest or ckpt.latest_checkpoint(run_dir)
    if latest is None:
        raise FileNotFoundError(f"{run_dir} holds no checkpoint (checkpoints/step_*): nothing to export")
    if cfg.env.get("_target_") == AGENT_STEPS_ENV:  # a tier router over game steps, not a QA router
        return _assemble(out, lambda tmp: write_agent_steps_folder(tmp, Path(run_dir), cfg, repo_id, latest))
    if cfg.env.get("_target_") == MEMORY_TIERS_ENV:  # a tier router over memory modules
        return _assemble(out, lambda tmp: write_memory_tiers_folder(tmp, Path(run_dir), cfg, repo_id, latest))
    descriptors = pool_descriptors(cfg.pool)
    reports = find_reports(run_dir, latest)

    def write(tmp: Path) -> None:
        weights = load_file(str(latest / ckpt.POLICY_WEIGHTS))
        save_file(weights, str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / POOL).write_text(json.dumps([descriptor_dict(d) for d in descriptors], indent=2) + "\n")
        config = router_config(cfg, descriptors, latest)
        (tmp / ROUTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        calibration = _calibration_of(source)
        if calibration is not None:
            calibration.save(tmp)
        evaluations = copy_reports(reports, tmp)
        card = model_card(repo_id, cfg, descriptors, config["training"], evaluations, calibration)
        (tmp / "README.md").write_text(card)
        _check_round_trip(source, tmp)

    return _assemble(out, write)


def _assemble(out: Path, write: Callable[[Path], None]) -> Path:
    """Write a folder through ``write(tmp)`` in a temporary directory beside ``out``, then rename it.

    ``out`` is replaced only when ``write`` returned (it checks the load-back); on any error the
    temporary directory goes and ``out`` is left as it was.

    Raises:
        FileExistsError: ``out`` holds files but is not an earlier export.
    """
    if out.exists() and any(out.iterdir()) and not (out / ROUTER_CONFIG).is_file():
        raise FileExistsError(f"out_dir={out} holds other files, not an rl-router export; choose a new one")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        write(tmp)
        pickles = [p.name for p in tmp.iterdir() if p.suffix in PICKLE_SUFFIXES]
        if pickles:
            raise RuntimeError(f"the export would hold pickle files {pickles}; refusing to write it")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def export_llm_router(
    run_dir: Path, cfg: DictConfig, repo_id: str, out: Path, model_dir: Path | None = None
) -> Path:
    """Write the Hub folder of a run's LLM router (``<run>/router``, else its newest TRL checkpoint).

    The folder is a transformers folder (``config.json``, ``generation_config.json``,
    ``model.safetensors``, the tokenizer files with its chat template) plus ``router_config.json``
    (``router_kind: "llm"``, the prompt template and protocol settings), ``pool.json``, the model
    card and the run's evaluation of that model. It is assembled beside ``out``, reloaded and
    checked to write the same first turns as the run on :data:`PROBE_QUERIES`, then renamed into place.
    """
    from rl_router.routers.llm import LLMRouter

    router = load_router(model_dir or run_dir)
    assert isinstance(router, LLMRouter)
    reports = find_reports(run_dir, router.checkpoint)

    def write(tmp: Path) -> None:
        router.model.save_pretrained(str(tmp), safe_serialization=True)
        router.tokenizer.save_pretrained(str(tmp))
        (tmp / POOL).write_text(json.dumps([descriptor_dict(d) for d in router.descriptors], indent=2) + "\n")
        (tmp / ROUTER_CONFIG).write_text(json.dumps(llm_router_config(cfg, router), indent=2) + "\n")
        if router.calibration is not None:  # its choice of candidate, as the run makes it
            router.calibration.save(tmp)
        card = llm_model_card(repo_id, cfg, router, copy_reports(reports, tmp))
        (tmp / "README.md").write_text(card)
        _check_llm_round_trip(router, tmp)

    return _assemble(out, write)


def llm_router_config(cfg: DictConfig, router: Any) -> dict[str, Any]:
    """The contents of ``router_config.json`` for an LLM router."""
    return {
        "router_kind": "llm",
        "format_version": FORMAT_VERSION,
        "rl_router_version": __version__,
        "weights": WEIGHTS,
        "pool": POOL,
        "action_names": router.model_names,
        "prompt_template": router.prompt_template,
        "protocol": router.protocol_dict(),
        "decision": (
            "greedy decoding of Router-R1 turns: <think>...</think> then <search>MODEL: query</search> "
            "(the env answers in <information>...</information>) or <answer>...</answer>"
        ),
        "training": {
            "checkpoint": router.checkpoint.name if router.checkpoint else None,
            "seed": cfg.seed,
            "base_model": _portable(cfg.trainer.model, "model"),
            **portable_training(cfg, ("env", "trainer", "pool", "data")),
        },
    }


def _check_llm_round_trip(router: Any, folder: Path) -> None:
    """The exported LLM router must write the same first turns as the run's."""
    expected = router.first_turns(PROBE_QUERIES)
    got = load_exported(folder).first_turns(PROBE_QUERIES)
    if expected != got:
        raise RuntimeError(f"the router exported to {folder} does not reproduce {router.checkpoint}")


def router_config(
    cfg: DictConfig, descriptors: Sequence[ModelDescriptor], checkpoint: Path
) -> dict[str, Any]:
    """The contents of ``router_config.json`` for a run's policy router."""
    return {
        "router_kind": "policy",
        "format_version": FORMAT_VERSION,
        "rl_router_version": __version__,
        "policy": OmegaConf.to_container(cfg.policy, resolve=True),
        "weights": WEIGHTS,
        "pool": POOL,
        "action_names": [d.name for d in descriptors],
        "embedding_model": {"name": EMBEDDING_MODEL, "dim": EMBED_DIM},
        "observation": observation_layout(descriptors, run_features(cfg.env)),
        "decision": (
            "argmax over candidates of the policy's logits (probs = softmax(logits)); with a "
            "calibration.json, argmax of log probs + its per-candidate offsets"
        ),
        "prompt_template": None,
        "prompt_template_note": "not applicable: a policy router reads query features, not a prompt",
        "training": {
            "checkpoint": checkpoint.name,
            "global_step": ckpt.checkpoint_step(checkpoint),
            "seed": cfg.seed,
            **portable_training(
                cfg, ("pool", "env", "trainer", "data")
            ),  # rl-router eval rebuilds pool, data
        },
    }


def portable_training(cfg: DictConfig, groups: Sequence[str]) -> dict[str, Any]:
    """The training config's ``groups`` as an export may publish them: no endpoint, no local path.

    Environment-variable interpolations stay as written (``${oc.env:ROUTER_R1_BASE_URL,...}``: the
    loader's own environment fills them in); a literal endpoint other than OpenAI's default and any
    local path become placeholders that name what was removed; machine-specific keys (``cache_dir``)
    are dropped, so the loader's defaults apply.
    """
    recorded = portable_config(cfg)
    return {group: _portable(recorded[group], group) for group in groups}


def _portable(node: Any, key: str) -> Any:
    if isinstance(node, Mapping):
        return {k: _portable(v, str(k)) for k, v in node.items() if k not in MACHINE_KEYS}
    if isinstance(node, list | tuple):
        return [_portable(v, key) for v in node]
    if not isinstance(node, str) or "${oc.env:" in node:
        return node
    if key == "base_url" and node != DEFAULT_BASE_URL:
        return REMOVED_ENDPOINT
    if _LOCAL_PATH.match(node):
        return REMOVED_PATH
    return node


def push_folder(folder: Path, repo_id: str, api: HubApi, private: bool = False, secret: str = "") -> str:
    """Create ``repo_id`` (if needed) and upload ``folder``; returns the repo URL.

    Raises:
        RuntimeError: ``secret`` (the token) appears in a file of the folder; nothing is uploaded.
    """
    if secret and any(secret.encode() in path.read_bytes() for path in folder.iterdir() if path.is_file()):
        raise RuntimeError(f"{folder} contains the Hub token; not uploading it")
    url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="model",
        commit_message=f"Upload router exported by rl-router {__version__}",
    )
    return str(url)


def _calibration_of(source: Path) -> Calibration | None:
    """The calibration the run's router applies (None: none, or one fitted for other weights)."""
    router = load_router(source)
    return getattr(router, "calibration", None)


def _check_round_trip(run_dir: Path, folder: Path) -> None:
    """The exported folder must route exactly like the run it came from (calibration included)."""
    run, exported = load_router(run_dir), load_exported(folder)
    probe = np.random.default_rng(0).standard_normal((64, run.query_dim)).astype(np.float32)
    expected, got = run.probs(probe), exported.probs(probe)
    if not np.array_equal(expected, got):
        diff = float(np.abs(expected - got).max())
        raise RuntimeError(f"the router exported to {folder} does not reproduce {run_dir}: max diff {diff}")
    if run.calibration != exported.calibration or not np.array_equal(
        run.decide(probe), exported.decide(probe)
    ):
        raise RuntimeError(f"the router exported to {folder} does not decide like {run_dir} (calibration)")
