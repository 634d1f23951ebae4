"""The model card of an exported router, and the evaluations it shows.

A card opens with Hub metadata and the candidates, shows how to load and ask the router, then every
evaluation of the exported checkpoint kept in its run: training's own held-out report first, then
each later ``rl-router eval``, labelled with the data it scored (:func:`find_reports`).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from rl_router import __version__
from rl_router.embeddings import EMBEDDING_MODEL
from rl_router.pool.types import ModelDescriptor
from rl_router.routers.calibration import CALIBRATION, Calibration
from rl_router.routers.folder import POOL, ROUTER_CONFIG, WEIGHTS
from rl_router.routers.policy import run_features
from rl_router.run import VALIDATION_DIR

log = logging.getLogger(__name__)

CARD_TAGS = ["router", "reinforcement-learning", "ppo", "llm-routing"]
LICENSE = "apache-2.0"
REPORT_FILES = ("report.json", "report.md", "pareto.png")
CARD_TAGS_LLM = ["router", "reinforcement-learning", "grpo", "llm-routing", "router-r1"]
TRAINING_LABEL = "Held-out split of the training data, scored by training"


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of the exported checkpoint, as the card shows it."""

    label: str  # what was evaluated on, and by whom
    markdown: str  # its report.md
    pareto: str | None  # its plot, relative to the exported folder


def find_reports(run_dir: Path, checkpoint: Path) -> list[tuple[str, Path]]:
    """``(label, folder)`` of every evaluation of ``checkpoint`` kept in the run, training's first.

    Training writes its held-out evaluation beside the run (``<run>/report.json``; ``eval_sft/`` for an
    LLM run's warm start); each ``rl-router eval`` writes a folder of its own (``<run>/eval`` by
    default, or any ``out_dir`` inside the run). Every one is kept, labelled with the data it scored.
    A report of another checkpoint (e.g. written before ``resume=``) is left out.
    """
    folders = [run_dir, run_dir / "eval_sft"]
    # validation is what choices are made on, not a reported number: cards show test evaluations
    folders += sorted(
        p for p in run_dir.iterdir() if p.is_dir() and p not in folders and p.name != VALIDATION_DIR
    )
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


def copy_reports(reports: Sequence[tuple[str, Path]], folder: Path) -> list[Evaluation]:
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


def model_card(
    repo_id: str,
    cfg: DictConfig,
    descriptors: Sequence[ModelDescriptor],
    training: Mapping[str, Any],
    evaluations: Sequence[Evaluation],
    calibration: Calibration | None = None,
) -> str:
    """``README.md``: YAML front matter, what the router does, its candidates, its operating point
    (when it carries a calibration), usage and evaluation."""
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
        "against list-price cost. It is a small policy network over features of the query text "
        f"({', '.join(run_features(cfg.env))}; the embedding is {EMBEDDING_MODEL}'s) and the "
        "candidates' size and price features; it runs on CPU in milliseconds and "
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
    lines += _calibration_section(calibration)
    lines += [
        *_usage_head(repo_id),
        'router.route(["What is 12 * 7?"])  # -> the candidate name for each query',
        'router.probs(router.embed(["What is 12 * 7?"]))  # -> float32 [n, '
        + f"{len(descriptors)}] routing probabilities",
        "```",
        "",
        "The router only decides; send the query to the chosen model yourself. Files: "
        f"`{WEIGHTS}` (policy weights), `{ROUTER_CONFIG}` (policy config and observation layout), "
        f"`{POOL}` (the candidates)"
        + (f", `{CALIBRATION}` (its operating point)" if calibration is not None else "")
        + ". No pickle files.",
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


def _calibration_section(calibration: Calibration | None) -> list[str]:
    """The card's operating point: the calibration's target, offsets and what it reached (or nothing)."""
    if calibration is None:
        return []
    reached = calibration.achieved
    shares = ", ".join(f"{name} {x:.3f}" for name, x in reached["route_share"].items())
    dollars = reached["dollars_per_query"]
    offsets = ", ".join(
        f"`{name}` {v:+.4g}" for name, v in zip(calibration.models, calibration.offsets, strict=True)
    )
    return [
        "",
        "## Operating point",
        "",
        f"This router carries a calibration (`{CALIBRATION}`, written by `rl-router calibrate`) with target "
        f"**{calibration.describe()}**: it routes each query to the argmax of log p + a per-candidate "
        f"offset ({offsets}). Fitted on {calibration.fitted_on['source']} "
        f"({calibration.fitted_on['rows']} rows), where it reached route share {shares}"
        + (f" at ${dollars:.6f} per query." if dollars is not None else "."),
        "`router.route` and `rl-router eval` apply it; `router.probs` stays raw, and "
        "`router.calibration = None` (or `rl-router eval calibration=false`) gives the raw argmax.",
    ]


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


def card_datasets(data_cfg: Mapping[str, Any]) -> list[str]:
    """Dataset names for the card's front matter: ``routellm`` for the shipped RouteLLM table."""
    target = str(data_cfg.get("_target_", ""))
    if target.endswith("routellm.load_routing_splits") and not data_cfg.get("path"):
        return ["routellm"]
    return []


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
