"""``rl-router export``: a Hub-ready folder for a trained router, uploaded when asked.

``rl-router export checkpoint=<run dir> repo_id=<user>/<name> [push=true] [out_dir=<dir>]`` writes
(default ``<checkpoint>/export/<name>/``)::

    model.safetensors    the policy's weights (newest checkpoint), safetensors only
    router_config.json   router kind, policy config (with _target_), observation layout, versions
    pool.json            the candidates in action order: name, model, params_b, description, prices, sampling
    README.md            model card: YAML front matter, candidates, how to load it, the eval table
    report.json, report.md, pareto.png    the run's evaluation of that checkpoint, when there is one

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
import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from safetensors.torch import load_file, save_file

from rl_router import __version__
from rl_router import checkpoint as ckpt
from rl_router.config import typed
from rl_router.embeddings import EMBED_DIM
from rl_router.pool.types import ModelDescriptor
from rl_router.routers.folder import FORMAT_VERSION, POOL, ROUTER_CONFIG, WEIGHTS
from rl_router.routers.load import load_exported, load_router, run_of_model_dir, run_of_policy_checkpoint
from rl_router.routers.policy import EMBEDDING_MODEL, descriptor_dict, observation_layout, pool_descriptors
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
CARD_TAGS = ["router", "reinforcement-learning", "ppo", "llm-routing"]
LICENSE = "apache-2.0"
REPORT_FILES = ("report.json", "report.md", "pareto.png")
REMOVED_ENDPOINT = "<endpoint removed on export: give eval pool=<option>>"
REMOVED_PATH = "<local path removed on export>"
MACHINE_KEYS = frozenset({"cache_dir"})  # where this machine keeps its caches: never published
_LOCAL_PATH = re.compile(r"^(/|~|\.{1,2}/|[A-Za-z]:[\\/])")
TRAINING_LABEL = "Held-out split of the training data, scored by training"
CARD_TAGS_LLM = ["router", "reinforcement-learning", "grpo", "llm-routing", "router-r1"]
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
    latest = latest or ckpt.latest_checkpoint(run_dir)
    if latest is None:
        raise FileNotFoundError(f"{run_dir} holds no checkpoint (checkpoints/step_*): nothing to export")
    descriptors = pool_descriptors(cfg.pool)
    reports = find_reports(run_dir, latest)

    def write(tmp: Path) -> None:
        weights = load_file(str(latest / ckpt.POLICY_WEIGHTS))
        save_file(weights, str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / POOL).write_text(json.dumps([descriptor_dict(d) for d in descriptors], indent=2) + "\n")
        config = router_config(cfg, descriptors, latest)
        (tmp / ROUTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        card = model_card(repo_id, cfg, descriptors, config["training"], _copy_reports(reports, tmp))
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
        card = llm_model_card(repo_id, cfg, router, _copy_reports(reports, tmp))
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


def llm_model_card(repo_id: str, cfg: DictConfig, router: Any, evaluations: Sequence[Evaluation]) -> str:
    """``README.md`` of an LLM router: front matter, protocol, candidates, usage and evaluation."""
    meta = {
        "library_name": "transformers",
        "license": LICENSE,
        "tags": [*CARD_TAGS_LLM, "rl-router"],
        "pipeline_tag": "text-generation",
    }
    base = str(cfg.trainer.model)
    from rl_router.zoo import ZOO

    upstream = ZOO[base].hf_id if base in ZOO else base  # zoo models name their Hub original
    if "/" in upstream and not Path(upstream).exists():
        meta["base_model"] = upstream
    p = router.protocol
    lines = [
        *_card_head(meta, repo_id),
        f"An LLM router trained with GRPO by rl-router {__version__} in Router-R1's multi-round protocol "
        "(Zhang et al., 2025, Router-R1: Teaching LLMs Multi-Round Routing and Aggregation via "
        "Reinforcement Learning). Given a question and the candidate list below, it thinks in "
        "`<think>`, asks a candidate with `<search>MODEL: sub-query</search>`, reads the reply that the "
        "caller pastes back in `<information>...</information>`, and ends with `<answer>...</answer>`. "
        f"At most {p.max_routes} routes per question; replies are cut to {p.info_token_cap} tokens.",
        "",
        f"Base model: `{upstream}`; reward: format, outcome (`{p.outcome}`) and cost with alpha = {p.alpha} "
        f"(a correct answer scores (1 - alpha) + alpha * C); {cfg.trainer.max_steps} GRPO steps, seed "
        f"{cfg.seed}.",
        "",
        "## Candidates (as the prompt lists them)",
        "",
        "| name | model | params (B) | $ / 1M in | $ / 1M out | description |",
        "|---|---|---|---|---|---|",
    ]
    lines += [_candidate_row(d) for d in router.descriptors]
    lines += [
        *_usage_head(repo_id),
        'router.route(["What is the capital of Peru?"])  # -> the candidate its first turn asks',
        "router.play(pool, rows)  # whole episodes against a live rl-router pool of these candidates",
        "```",
        "",
        "Plain transformers loads it too (the prompt template is in `router_config.json`):",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'model = AutoModelForCausalLM.from_pretrained("{repo_id}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")',
        "```",
        "",
        f"Files: the transformers model (`{WEIGHTS}`, `config.json`, tokenizer), `{ROUTER_CONFIG}` "
        f"(prompt template, protocol settings, training config), `{POOL}` (the candidates). No pickle files.",
        "",
        "## Evaluation",
        "",
    ]
    lines += _evaluation_section(evaluations)
    lines += ["## Licence", "", f"Weights: {LICENSE}; the base model's licence applies as well.", ""]
    return "\n".join(lines)


def _card_head(meta: Mapping[str, Any], repo_id: str) -> list[str]:
    """The card's YAML front matter and title."""
    return [
        "---",
        yaml.safe_dump(dict(meta), sort_keys=False).rstrip(),
        "---",
        "",
        f"# {repo_id.split('/')[-1]}",
        "",
    ]


def _candidate_row(d: ModelDescriptor) -> str:
    """One candidate as a card table row: name, model, size, prices, description."""
    params = f"{d.params_b:g}" if d.params_b else "n/a"
    return f"| {d.name} | {d.model} | {params} | {d.price_in:g} | {d.price_out:g} | {d.description} |"


def _usage_head(repo_id: str) -> list[str]:
    """The card's usage section up to the first call on the loaded router."""
    return [
        "",
        "## Usage",
        "",
        "```python",
        "from rl_router import load_router",
        "",
        f'router = load_router("{repo_id}")  # or the path of this folder',
    ]


def _evaluation_section(evaluations: Sequence[Evaluation]) -> list[str]:
    """The card's evaluations: training's held-out report first, then each later one, labelled."""
    if not evaluations:
        return ["No evaluation report of this checkpoint was found; run `rl-router eval` on the run.", ""]
    lines: list[str] = []
    for evaluation in evaluations:
        lines += [f"### {evaluation.label}", ""] + _demote(evaluation.markdown, levels=2)
        if evaluation.pareto is not None:
            lines += [f"![accuracy vs cost]({evaluation.pareto})", ""]
    return lines


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of the exported checkpoint, as the card shows it."""

    label: str  # what was evaluated on, and by whom
    markdown: str  # its report.md
    pareto: str | None  # its plot, relative to the exported folder


def _copy_reports(reports: Sequence[tuple[str, Path]], folder: Path) -> list[Evaluation]:
    """Copy each evaluation into the export (training's at the top, later ones under ``evals/<name>/``)."""
    out = []
    for i, (label, source) in enumerate(reports):
        target = folder if i == 0 and label.startswith(TRAINING_LABEL) else folder / "evals" / source.name
        target.mkdir(parents=True, exist_ok=True)
        for name in REPORT_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, target / name)
        report = json.loads((target / "report.json").read_text())
        if report.get("meta", {}).get("checkpoint"):  # the checkpoint's name, not where it lay here
            report["meta"]["checkpoint"] = Path(report["meta"]["checkpoint"]).name
            (target / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        plot = target / "pareto.png"
        pareto = plot.relative_to(folder).as_posix() if plot.is_file() else None
        out.append(Evaluation(label, (target / "report.md").read_text(), pareto))
    return out


def _check_llm_round_trip(router: Any, folder: Path) -> None:
    """The exported LLM router must write the same first turns as the run's."""
    expected = router.first_turns(PROBE_QUERIES)
    got = load_exported(folder).first_turns(PROBE_QUERIES)
    if expected != got:
        raise RuntimeError(f"the router exported to {folder} does not reproduce {router.checkpoint}")


def find_reports(run_dir: Path, checkpoint: Path) -> list[tuple[str, Path]]:
    """``(label, folder)`` of every evaluation of ``checkpoint`` kept in the run, training's first.

    Training writes its held-out evaluation beside the run (``<run>/report.json``; ``eval_sft/`` for an
    LLM run's warm start); each ``rl-router eval`` writes a folder of its own (``<run>/eval`` by
    default, or any ``out_dir`` inside the run). Every one is kept, labelled with the data it scored.
    A report of another checkpoint (e.g. written before ``resume=``) is left out.
    """
    folders = [run_dir, run_dir / "eval_sft"]
    folders += sorted(p for p in run_dir.iterdir() if p.is_dir() and p not in folders)
    folders.append(checkpoint / "eval")
    found, seen = [], set()
    for folder in folders:
        path = folder / "report.json"
        if not path.is_file() or not (folder / "report.md").is_file():
            continue
        report = json.loads(path.read_text())
        meta = report.get("meta", {})
        evaluated = meta.get("checkpoint")
        if not evaluated or Path(evaluated).name != checkpoint.name:
            log.info("%s evaluates %s, not the exported %s: left out", path, evaluated, checkpoint.name)
            continue
        markdown = (folder / "report.md").read_text()
        if markdown in seen:  # an LLM run copies its training evaluation beside the run
            continue
        seen.add(markdown)
        by_training = folder in (run_dir, run_dir / "eval_sft") or (
            folder == run_dir / "eval" and (run_dir / "report.md").is_file() and not found
        )
        what = data_label(report)
        label = f"{TRAINING_LABEL} ({what})" if by_training else f"`rl-router eval` on {what}"
        found.append((label, folder))
    return found


def data_label(report: Mapping[str, Any]) -> str:
    """What an evaluation scored, from its ``report.json``: the table or the benchmarks, and the count."""
    meta = report.get("meta", {})
    if meta.get("table"):
        return f"{meta['table']}, {meta.get('rows', '?')} rows"
    sources = [str(s) for s in report.get("sources") or []]
    return f"{', '.join(sources) or 'QA rows'}, {meta.get('questions', '?')} questions"


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
        "observation": observation_layout(descriptors),
        "decision": "argmax over candidates of the policy's logits (probs = softmax(logits))",
        "prompt_template": None,
        "prompt_template_note": "not applicable: a policy router reads query embeddings, not a prompt",
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


def card_datasets(data_cfg: Mapping[str, Any]) -> list[str]:
    """Dataset names for the card's front matter: ``routellm`` for the shipped RouteLLM table."""
    target = str(data_cfg.get("_target_", ""))
    if target.endswith("routellm.load_routing_splits") and not data_cfg.get("path"):
        return ["routellm"]
    return []


def model_card(
    repo_id: str,
    cfg: DictConfig,
    descriptors: Sequence[ModelDescriptor],
    training: Mapping[str, Any],
    evaluations: Sequence[Evaluation],
) -> str:
    """``README.md``: YAML front matter, what the router does, its candidates, usage and evaluation."""
    meta = {"library_name": "rl-router", "license": LICENSE, "tags": CARD_TAGS}
    datasets = card_datasets(cfg.data)
    if datasets:
        meta["datasets"] = datasets
    names = ", ".join(f"`{d.name}`" for d in descriptors)
    benchmarks = ", ".join(cfg.data.get("benchmarks") or [])
    lines = [
        *_card_head(meta, repo_id),
        f"A query router trained with reinforcement learning (PPO) by rl-router {__version__}. For each "
        f"query it picks one of {len(descriptors)} candidate LLMs ({names}), trading answer quality "
        f"against list-price cost. It is a small policy network over the query's {EMBEDDING_MODEL} "
        "embedding and the candidates' size and price features; it runs on CPU in milliseconds and "
        "never calls an LLM itself.",
        "",
        f"Trained on {'RouteLLM recorded outcomes' if datasets == ['routellm'] else 'a routing table'}"
        + (f" ({benchmarks})" if benchmarks else "")
        + f" with cost weight alpha = {cfg.env.alpha} (a correct answer scores (1 - alpha) + alpha * C, "
        f"C the normalised cheapness of the call), {training['global_step']} environment steps, "
        f"seed {cfg.seed}.",
        "",
        "## Candidates (action order)",
        "",
        "| # | name | model | params (B) | $ / 1M in | $ / 1M out | description |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {i} " + _candidate_row(d) for i, d in enumerate(descriptors)]
    lines += [
        *_usage_head(repo_id),
        'router.route(["What is 12 * 7?"])  # -> the candidate name for each query',
        'router.probs(router.embed(["What is 12 * 7?"]))  # -> float32 [n, '
        + f"{len(descriptors)}] routing probabilities",
        "```",
        "",
        "The router only decides; send the query to the chosen model yourself. Files: "
        f"`{WEIGHTS}` (policy weights), `{ROUTER_CONFIG}` (policy config and observation layout), "
        f"`{POOL}` (the candidates). No pickle files.",
        "",
        "## Evaluation",
        "",
    ]
    lines += _evaluation_section(evaluations)
    lines += ["## Licence", "", "Weights: Apache-2.0."]
    if datasets == ["routellm"]:
        lines[-1] += " The RouteLLM recorded outcomes used for training are Apache-2.0 (lm-sys/RouteLLM)."
    lines.append("")
    return "\n".join(lines)


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


def _demote(markdown: str, levels: int = 1) -> list[str]:
    """report.md for the card: its title as a sentence, its section headings ``levels`` down."""
    out = []
    for line in markdown.rstrip().splitlines():
        if line.startswith("# "):
            out.append(f"Evaluation of this checkpoint: {line[2:]}.")
        elif line.startswith("#"):
            out.append("#" * levels + line)
        else:
            out.append(line)
    return [*out, ""]


def _check_round_trip(run_dir: Path, folder: Path) -> None:
    """The exported folder must route exactly like the run it came from."""
    probe = np.random.default_rng(0).standard_normal((64, EMBED_DIM)).astype(np.float32)
    probe /= np.linalg.norm(probe, axis=1, keepdims=True)
    expected, got = load_router(run_dir).probs(probe), load_exported(folder).probs(probe)
    if not np.array_equal(expected, got):
        diff = float(np.abs(expected - got).max())
        raise RuntimeError(f"the router exported to {folder} does not reproduce {run_dir}: max diff {diff}")
