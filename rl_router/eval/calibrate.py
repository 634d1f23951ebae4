"""``rl-router calibrate checkpoint=<run | exported folder> target.share=<0..1> [target.model=<name>]``,
or ``target.cost_per_query=<usd>``: an operating point for a trained policy router, without retraining.

The router's decision becomes ``argmax(log p + offsets)`` (:mod:`rl_router.routers.calibration`),
with offsets fitted on calibration rows so that the target is met there:

* a **share** target gives ``target.model`` (default: the most expensive candidate by
  ``price_in + price_out``) that share of the queries;
* a **cost** target makes the mean list-price dollars per query at most ``target.cost_per_query``,
  as close to it as the rows allow.

Calibration rows: by default a fixed random subset (seed 0) of ``rows`` rows (default 2000) of the
TRAINING split of the router's recorded data option (or of ``data=<option>``), never its validation
or test rows, so that ``rl-router eval`` reports the operating point on rows it was not fitted on.
Or ``prompts=<file.jsonl>``: your own traffic, one JSON object per line with ``"prompt"`` or
``"question"`` (every line is used). A share target needs nothing else; a cost target on prompts
takes each candidate's expected dollars per query from the router's recorded training table (mean
recorded cost of each model) and says so.

Writes ``calibration.json`` into the run directory (also when one of its checkpoints is given) or
the exported folder; ``route()``, ``rl-router eval`` (``calibration=false`` to ignore it) and
``rl-router export`` honour it.

A ``memory_tiers`` tier router (a run or an export) takes both: a share target is the share of
module decisions at ``target.model`` (a tier, default High), a cost target its module dollars per
query; the offsets are one per tier, fitted by replaying the router's LoCoMo training questions
(:mod:`rl_router.eval.memory_tiers_calibrate`; ``pool=<option>`` serves its tiers instead of the
recorded pool). ``prompts=`` does not apply: a question is routed over its conversation.

LLM routers take share targets: the offsets act on the candidate each routing turn names
(:mod:`rl_router.routers.llm_choice`: where the turn first writes a candidate's name, in its think
or after ``<search>``), fitted on the names' log-probabilities at each calibration query's first
routing decision; the share is of the first turns that route (a first turn that answers
by itself is not a routing decision). Cost targets are for policy routers only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import MISSING, DictConfig, OmegaConf

from rl_router.config import typed
from rl_router.data.routing_table import RoutingTable
from rl_router.data.splits import DataSplits
from rl_router.eval.memory_tiers_calibrate import calibrate_memory_tiers
from rl_router.eval.table_eval import table_columns
from rl_router.generation import chat_prompt_ids
from rl_router.pool.types import dearest
from rl_router.routers.calibration import Calibration, decide, fit_cost_offsets, fit_share_offsets
from rl_router.routers.folder import ROUTER_CONFIG
from rl_router.routers.llm import LLMRouter
from rl_router.routers.llm_choice import CalibratedTurns, first_choice_log_probs
from rl_router.routers.load import load_router, router_home
from rl_router.routers.memory_tiers import MemoryTiersRouter
from rl_router.routers.policy import PolicyRouter
from rl_router.run import RUN_CONFIG
from rl_router.trust import check_recorded

ONE_TARGET = (
    "give exactly one target: target.share=<0..1> [target.model=<name>] or target.cost_per_query=<usd>"
)


@dataclass
class TargetConfig:
    """The operating point: one model's share of the queries, or a mean cost per query."""

    share: float | None = None  # the share of queries target.model answers, in [0, 1]
    model: str | None = (
        None  # share targets: the candidate (or tier); None: the dearest (price_in + price_out)
    )
    cost_per_query: float | None = None  # instead of a share: mean list-price dollars per query (> 0)

    def __post_init__(self) -> None:
        if self.share is not None and not 0.0 <= self.share <= 1.0:
            raise ValueError(f"target.share={self.share}: use a share of queries in [0, 1]")
        if self.cost_per_query is not None and not self.cost_per_query > 0.0:
            raise ValueError(f"target.cost_per_query={self.cost_per_query}: use dollars per query > 0")


@dataclass
class CalibrateConfig:
    """Root of ``rl-router calibrate``: fit a policy router's logit offsets to a target."""

    checkpoint: str = MISSING  # a run directory (or one of its checkpoints) or an exported folder
    target: TargetConfig = field(default_factory=TargetConfig)  # target.share or target.cost_per_query
    rows: int | None = 2000  # a fixed random subset (seed 0) of this many training rows; None: all of them
    prompts: str | None = None  # your own prompts instead: JSONL, "prompt" or "question" on each line
    data: Any = None  # a data option whose training split replaces the router's recorded one
    pool: Any = None  # memory_tiers routers: a pool option serving the tiers; None: the recorded one

    def __post_init__(self) -> None:
        if (self.target.share is None) == (self.target.cost_per_query is None):
            given = f"target.share={self.target.share}, target.cost_per_query={self.target.cost_per_query}"
            raise ValueError(f"{ONE_TARGET} (got {given})")
        if self.target.model is not None and self.target.share is None:
            raise ValueError(
                f"target.model={self.target.model!r} names a share target's model: add target.share"
            )
        if self.rows is not None and self.rows < 1:
            raise ValueError(f"rows={self.rows}: use 1 or more (or null for every training row)")


def run_calibrate(cfg: DictConfig) -> Calibration:
    """The Hydra task of ``rl-router calibrate``: fit, write ``calibration.json``, print what it reached."""
    config: CalibrateConfig = typed(cfg)
    home = router_home(config.checkpoint)
    if _is_llm_router(home) and config.target.cost_per_query is not None:
        raise ValueError(
            f"{config.checkpoint} is an LLM router: it takes share targets (target.share=<0..1> "
            "[target.model=<name>]); cost targets are for policy routers"
        )
    router = load_router(config.checkpoint)
    if isinstance(router, MemoryTiersRouter):  # a tier per memory module, fitted by replaying episodes
        if config.prompts is not None or cfg.get("data") is not None:
            raise ValueError(
                f"{config.checkpoint} is a memory_tiers router: it calibrates on its LoCoMo training "
                "questions, each over its conversation; drop prompts= / data="
            )
        calibration = calibrate_memory_tiers(router, config.target, config.rows, cfg.get("pool"))
        path = calibration.save(home)
        print(summary(calibration, []))
        print(f"wrote {path}")
        return calibration
    data_cfg = cfg.data if cfg.get("data") is not None else router.training.get("data")
    if cfg.get("data") is None and data_cfg is not None:
        check_recorded(data_cfg, "data", f"{router.checkpoint} (recorded training config)")

    if config.prompts is not None:
        prompts, table = read_prompts(config.prompts), None
        source = f"prompts file {Path(config.prompts).name}"  # its name only: the file may be published
    else:
        prompts, table, source = training_rows(data_cfg, config.rows)
    notes: list[str] = []
    if isinstance(router, LLMRouter):
        calibration = fit_llm_calibration(router, prompts, config.target, source)
    elif config.target.cost_per_query is not None and table is None:
        expected, cost_source = training_costs(data_cfg, router)
        notes.append(f"expected dollars per query: {cost_source}")
        calibration = fit_calibration(router, prompts, config.target, source, None, expected, cost_source)
    else:
        calibration = fit_calibration(router, prompts, config.target, source, table)
    path = calibration.save(home)
    print(summary(calibration, notes, expected_dollars=table is None))
    print(f"wrote {path}")
    return calibration


def fit_calibration(
    router: PolicyRouter,
    prompts: list[str],
    target: TargetConfig,
    source: str,
    table: RoutingTable | None = None,
    expected_dollars: np.ndarray | None = None,
    expected_source: str = "given expected dollars",
) -> Calibration:
    """The calibration of ``router`` that meets ``target`` on ``prompts``.

    Args:
        router: a policy router (its calibration, if any, is not used: offsets apply to raw log p).
        prompts: the calibration rows' queries.
        target: a share or a cost target.
        source: what the rows are, as ``calibration.json`` records it.
        table: the rows' routing table (same order as ``prompts``), when they are recorded outcomes:
            a cost target then uses each call's recorded dollars, and the dollars reached are reported.
        expected_dollars: ``[m]`` each candidate's expected dollars per query, for a cost target
            without ``table``; ``expected_source`` says where they came from.
    """
    log_probs = router.log_probs(router.embed(prompts, progress=True))
    names = router.model_names
    row_dollars = table_columns(table, router.descriptors)[1] if table is not None else None
    if target.share is not None:
        model = target.model or most_expensive(router)
        if model not in names:
            raise ValueError(f"target.model={model!r} is not one of the router's candidates {names}")
        offsets = fit_share_offsets(log_probs, names.index(model), target.share)
        target_json: dict[str, Any] = {"share": target.share, "model": model}
        cost_model = None
    else:
        if row_dollars is not None:
            expected, cost_source = row_dollars.mean(axis=0), "mean recorded dollars per model on these rows"
        elif expected_dollars is not None:
            expected, cost_source = np.asarray(expected_dollars, np.float64), expected_source
        else:
            raise ValueError(
                "a cost target needs the rows' routing table or each candidate's expected dollars"
            )
        offsets, lam = fit_cost_offsets(log_probs, expected, target.cost_per_query, row_dollars)
        target_json = {"cost_per_query": target.cost_per_query}
        cost_model = {
            "lambda": float(lam),
            "expected_dollars": {n: float(c) for n, c in zip(names, expected, strict=True)},
            "source": cost_source,
        }
    choice = decide(log_probs, offsets)
    if row_dollars is not None:
        dollars: float | None = float(row_dollars[np.arange(len(choice)), choice].mean())
    elif cost_model is not None:
        dollars = float(np.mean([cost_model["expected_dollars"][names[i]] for i in choice]))
    else:
        dollars = None
    return Calibration.fitted(
        target=target_json,
        models=names,
        offsets=offsets,
        weights_sha256=router.weights_digest(),
        choices=choice,
        source=source,
        rows=len(prompts),
        dollars_per_query=dollars,
        cost_model=cost_model,
    )


def llm_first_choices(router: LLMRouter, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The router's candidate-name log-probabilities at the first routing decision of each prompt's
    episode (where its first turn first names a candidate), ``[n, m]``, and which first turns
    routed at all, ``bool [n]`` (what LLM-router offsets are fitted on, here and in
    ``rl-router serve``'s per-request targets).

    Raises:
        ValueError: no first turn routes on these prompts (there is no decision for offsets to move).
    """
    names = router.model_names
    generate = CalibratedTurns(router.model.eval(), router.tokenizer, names, [0.0] * len(names))
    contexts = [chat_prompt_ids(router.tokenizer, router.prompt(q)) for q in prompts]
    log_probs, routed = first_choice_log_probs(generate, contexts, router.protocol.max_turn_tokens)
    if not routed.any():
        raise ValueError(
            f"the router's first turn asks no candidate on any of the {len(prompts)} calibration prompts: "
            "there is no routing decision to move"
        )
    return log_probs, routed


def fit_llm_calibration(
    router: LLMRouter, prompts: list[str], target: TargetConfig, source: str
) -> Calibration:
    """The calibration that gives ``target.model`` a share ``target.share`` of the routed first turns.

    Raises:
        ValueError: the target model is not a candidate, or no first turn routes on these prompts.
    """
    names = router.model_names
    model = target.model or most_expensive(router)
    if model not in names:
        raise ValueError(f"target.model={model!r} is not one of the router's candidates {names}")
    assert target.share is not None
    log_probs, routed = llm_first_choices(router, prompts)
    offsets = fit_share_offsets(log_probs, names.index(model), target.share)
    choice = decide(log_probs, offsets)
    return Calibration.fitted(
        target={"share": target.share, "model": model},
        models=names,
        offsets=offsets,
        weights_sha256=router.weights_digest(),
        choices=choice,
        source=f"{source}; {int(routed.sum())} first turns routed",
        rows=len(prompts),
        dollars_per_query=None,
    )


def summary(calibration: Calibration, notes: list[str], expected_dollars: bool = False) -> str:
    """What ``rl-router calibrate`` prints: the target, the offsets, and what the rows reached
    (``expected_dollars``: the $ / query is from expected, not recorded, costs)."""
    reached = calibration.achieved
    shares = ", ".join(f"{n} {s:.3f}" for n, s in reached["route_share"].items())
    lines = [
        f"target: {calibration.describe()}",
        f"fitted on: {calibration.fitted_on['source']} ({calibration.fitted_on['rows']} rows)",
        "offsets (added to log p): "
        + ", ".join(f"{n} {v:+.6g}" for n, v in zip(calibration.models, calibration.offsets, strict=True)),
        f"reached on these rows: route share {shares}",
    ]
    if reached["dollars_per_query"] is not None:
        expected = " (expected)" if expected_dollars else ""
        lines[-1] += f"; ${reached['dollars_per_query']:.6g} per query{expected}"
    return "\n".join(lines + notes)


def most_expensive(router: PolicyRouter | LLMRouter) -> str:
    """The candidate with the highest ``price_in + price_out`` (the first of equals)."""
    return router.model_names[dearest(router.descriptors)]


def training_rows(data_cfg: Any, rows: int | None) -> tuple[list[str], RoutingTable | None, str]:
    """``(prompts, table or None, source)``: a seed-0 random subset of the data's training split.

    A routing table (recorded outcomes) comes back with its rows, so a cost target can use their
    recorded dollars; questions (a live pool's data) come back as prompts only.
    """
    train = _training_split(data_cfg)
    n = len(train)
    keep = (
        np.arange(n)
        if rows is None or rows >= n
        else np.sort(np.random.default_rng(0).choice(n, rows, False))
    )
    which = f"a seed-0 random subset of its {n} rows" if len(keep) < n else "every row"
    if isinstance(train, RoutingTable):
        table = train.subset(keep)
        return table.prompts, table, f"training split of {train.name}, {which}"
    prompts = [str(train[int(i)]["question"]) for i in keep]
    return prompts, None, f"training split of the recorded questions, {which}"


def training_costs(data_cfg: Any, router: PolicyRouter) -> tuple[np.ndarray, str]:
    """Each candidate's expected dollars per query: its mean recorded cost on the training table."""
    train = _training_split(data_cfg)
    if not isinstance(train, RoutingTable):
        raise ValueError(
            "a cost target needs each candidate's dollars per query, but this router's training data "
            "are questions without recorded answers: give data=<a routing-table option> or a share target"
        )
    dollars = table_columns(train, router.descriptors)[1]
    return dollars.mean(
        axis=0
    ), f"mean recorded dollars per model on the router's training table {train.name} ({len(train)} rows)"


def read_prompts(path: str | Path) -> list[str]:
    """The prompts of a JSONL file: one object per line with a string ``"prompt"`` or ``"question"``."""
    path = Path(path)
    prompts = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not a JSON object ({err})") from err
        text = row.get("prompt", row.get("question")) if isinstance(row, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f'{path}:{number}: each line needs a non-empty string "prompt" or "question"')
        prompts.append(text)
    if not prompts:
        raise ValueError(f"{path}: no prompts in the file")
    return prompts


def _training_split(data_cfg: Any) -> Any:
    """The training part of a data option (its validation and test rows are never calibrated on)."""
    from hydra.utils import instantiate

    if data_cfg is None:
        raise ValueError("no data recorded with this router: give data=<option> or prompts=<file.jsonl>")
    loaded = instantiate(data_cfg)
    if not isinstance(loaded, DataSplits):
        raise ValueError(
            "the data option has no training split to calibrate on: give prompts=<file.jsonl>, or a data "
            "option with train / validation / test splits"
        )
    return loaded.train


def _is_llm_router(home: Path) -> bool:
    """Whether the run or exported folder at ``home`` holds an LLM router (read from its config only)."""
    if (home / RUN_CONFIG).is_file():
        return OmegaConf.load(home / RUN_CONFIG).env.get("mode") == "multi_round"
    return json.loads((home / ROUTER_CONFIG).read_text()).get("router_kind") == "llm"
