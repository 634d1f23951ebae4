"""Evaluate a router on a routing table (recorded outcomes): the trained policy against baselines.

Everything is computed from the table, so evaluation costs no generation: per row ``i`` and model
``m`` the table holds the recorded score ``S[i, m]`` and token counts, priced with the pool's
descriptors into dollars ``D[i, m]``. A policy is a matrix of routing probabilities ``P[i, m]``;
its greedy decision is ``argmax_m P[i, m]``, or, for a router carrying a calibration
(``rl-router calibrate``), ``argmax_m (log P[i, m] + offset_m)``: accuracy, dollars and route shares
are those of these decisions, while the threshold metrics below always read the raw ``P``.

Baselines: ``random`` (uniform, reported in expectation), ``single/<model>`` (always that model),
``oracle`` (the cheapest model with the row's best score). For two-model pools the
RouteLLM threshold metrics (APGR, CPT(50%), CPT(80%)) are computed from ``P[:, strong]``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rl_router.eval import routellm_metrics as rm
from rl_router.eval.pareto import plot_pareto
from rl_router.pool.types import ModelDescriptor, dearest

if TYPE_CHECKING:
    from rl_router.data.routing_table import RoutingTable
    from rl_router.routers.policy import PolicyRouter


def dollar_matrix(
    descriptors: Sequence[ModelDescriptor], input_tokens: np.ndarray, output_tokens: np.ndarray
) -> np.ndarray:
    """List-price dollars of every (row, model) call: ``float64 [n, m]``."""
    price_in = np.array([d.price_in for d in descriptors], dtype=np.float64)
    price_out = np.array([d.price_out for d in descriptors], dtype=np.float64)
    return (input_tokens * price_in + output_tokens * price_out) / 1e6


def summarize(choice_probs: np.ndarray, scores: np.ndarray, dollars: np.ndarray) -> dict[str, float]:
    """Expected accuracy, dollars and calls per query of a (possibly stochastic) routing.

    Args:
        choice_probs: ``[n, m]`` probability that row ``i`` goes to model ``m`` (rows sum to 1).
        scores: ``[n, m]`` recorded score of each model on each row.
        dollars: ``[n, m]`` list-price cost of each call.

    >>> s = np.array([[0.0, 1.0], [1.0, 1.0]]); d = np.array([[1.0, 10.0], [1.0, 10.0]])
    >>> summarize(np.array([[0.0, 1.0], [1.0, 0.0]]), s, d)["accuracy"]
    1.0
    """
    n = max(len(scores), 1)
    return {
        "accuracy": float((choice_probs * scores).sum() / n),
        "dollars_per_query": float((choice_probs * dollars).sum() / n),
        "dollars_total": float((choice_probs * dollars).sum()),
        "calls_per_query": 1.0,
    }


def baseline_choices(scores: np.ndarray, dollars: np.ndarray) -> dict[str, np.ndarray]:
    """Routing matrices of the baselines, keyed by report name (model names filled in by caller).

    The oracle takes, per row, the cheapest of the models with the row's best score: for 0/1 scores
    the cheapest correct model (the cheapest overall when none is correct); for graded scores
    (MT-Bench, F1) the best answer, bought as cheaply as it can be.

    >>> scores = np.array([[0.3, 0.9, 0.9], [0.1, 0.1, 0.1]]); dollars = np.array([[1.0, 5.0, 2.0]] * 2)
    >>> baseline_choices(scores, dollars)["oracle"].argmax(axis=1).tolist()
    [2, 0]
    """
    n, m = scores.shape
    out = {"random": np.full((n, m), 1.0 / m)}
    best = scores == scores.max(axis=1, keepdims=True)
    oracle = np.where(best, dollars, np.inf).argmin(axis=1)  # ties on price: the first such column
    out["oracle"] = np.eye(m)[oracle]
    return out


def evaluate_table(
    probs: np.ndarray,
    scores: np.ndarray,
    dollars: np.ndarray,
    model_names: Sequence[str],
    strong: int | None = None,
    choice: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Accuracy / dollars / calls for the router's decisions and every baseline.

    Args:
        probs: ``[n, m]`` the router's routing probabilities (the threshold metrics read them).
        scores, dollars: ``[n, m]`` recorded scores and call prices.
        model_names: the pool's model names, column-aligned.
        strong: column of the strong model for two-model pools (RouteLLM metrics); None skips them.
        choice: ``[n]`` the router's decisions (a calibrated router's); None: ``argmax(probs)``.
    """
    n, m = scores.shape
    greedy = np.eye(m)[probs.argmax(axis=1) if choice is None else np.asarray(choice)]
    router = summarize(greedy, scores, dollars)
    router["route_share"] = {name: float(greedy[:, j].mean()) for j, name in enumerate(model_names)}
    if strong is not None and m == 2:
        weak = 1 - strong
        p_strong = probs[:, strong]
        if np.isclose(scores[:, weak].mean(), scores[:, strong].mean()):
            # PGR divides by the quality gap: undefined on rows where both models score the same
            router.update(apgr=None, cpt50=None, cpt80=None)
        else:
            router["apgr"] = float(rm.apgr(p_strong, scores[:, weak], scores[:, strong]))
            router["cpt50"] = float(rm.cpt(p_strong, scores[:, weak], scores[:, strong], 0.5))
            router["cpt80"] = float(rm.cpt(p_strong, scores[:, weak], scores[:, strong], 0.8))
    report = {"router": router}
    for name, choice in baseline_choices(scores, dollars).items():
        report[name] = summarize(choice, scores, dollars)
    for j, name in enumerate(model_names):
        report[f"single/{name}"] = summarize(np.eye(m)[np.full(n, j)], scores, dollars)
    return report


def threshold_cost_curve(
    p_strong: np.ndarray, scores: np.ndarray, dollars: np.ndarray, strong: int, points: int = 21
) -> tuple[np.ndarray, np.ndarray]:
    """The router's quality-vs-dollars curve as the strong-model threshold sweeps: ``(dollars, acc)``."""
    weak = 1 - strong
    costs, accs = [], []
    for q in np.linspace(0.0, 1.0, points):
        # route the top-q fraction of rows (by p_strong) to the strong model
        k = int(round(q * len(p_strong)))
        to_strong = np.zeros(len(p_strong), dtype=bool)
        to_strong[np.argsort(-p_strong, kind="stable")[:k]] = True
        col = np.where(to_strong, strong, weak)
        rows = np.arange(len(col))
        costs.append(dollars[rows, col].mean())
        accs.append(scores[rows, col].mean())
    return np.asarray(costs), np.asarray(accs)


def write_report(
    out_dir: str | Path,
    report: dict,
    curve: tuple[np.ndarray, np.ndarray] | None = None,
    title: str = "router vs baselines",
) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``pareto.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(report_markdown(report, title))
    overall = report["overall"]
    points = {name: (row["dollars_per_query"], row["accuracy"]) for name, row in overall.items()}
    plot_pareto(points, curve, out / "pareto.png")
    return {"json": out / "report.json", "md": out / "report.md", "png": out / "pareto.png"}


def report_markdown(report: dict, title: str) -> str:
    """A table per split: accuracy, $/query, calls, and the RouteLLM metrics for the router."""
    lines = [f"# {title}", ""]
    calibration = (report.get("meta") or {}).get("calibration")
    if calibration:
        router = report["overall"]["router"]
        shares = ", ".join(f"{name} {x:.3f}" for name, x in router["route_share"].items())
        reached = (
            f"Reached on these rows: route share {shares}; ${router['dollars_per_query']:.6f} per query."
        )
        lines += [calibration_note(calibration), "", reached, ""]
    for split, rows in report.items():
        if not isinstance(rows, dict) or "router" not in rows:
            continue
        lines += [
            f"## {split}",
            "",
            "| policy | accuracy | $ / query | calls / query | APGR | CPT(50%) | CPT(80%) |",
        ]
        lines.append("|---|---|---|---|---|---|---|")
        for name, row in rows.items():
            extra = [_cell(row, k) for k in ("apgr", "cpt50", "cpt80")]
            lines.append(
                f"| {name} | {row['accuracy']:.4f} | {row['dollars_per_query']:.6f} | "
                f"{row['calls_per_query']:.2f} | " + " | ".join(extra) + " |"
            )
        lines.append("")
    return "\n".join(lines)


def calibration_note(calibration: dict) -> str:
    """The report's line on an applied calibration: its target, offsets and where it was fitted.

    >>> calibration_note({"target": {"share": 0.3, "model": "gpt-4"}, "offsets": [0.0, 0.125],
    ...                   "fitted_on": {"source": "training split of t", "rows": 10}}).split(";")[0]
    'Calibration applied (calibration.json): target share 0.3 of gpt-4'
    """
    target = calibration["target"]
    if "share" in target:
        what = f"share {target['share']:g} of {target['model']}"
    else:
        what = f"${target['cost_per_query']:g} per query"
    offsets = ", ".join(f"{v:.4g}" for v in calibration["offsets"])
    fitted = calibration["fitted_on"]
    return (
        f"Calibration applied (calibration.json): target {what}; offsets [{offsets}], fitted on "
        f"{fitted['source']} ({fitted['rows']} rows). Route shares and $ / query are those of the "
        "calibrated decisions; APGR and CPT read the raw probabilities."
    )


def _cell(row: dict, key: str) -> str:
    """A RouteLLM metric cell: blank for baselines, n/a where the metric is undefined."""
    if key not in row:
        return ""
    return "n/a" if row[key] is None else f"{row[key]:.3f}"


MAX_SOURCE_GROUPS = 8  # more distinct sources than this (MMLU's 45 subjects) are grouped by benchmark


def report_groups(sources: Sequence[str]) -> list[str]:
    """The per-row group a report breaks results down by: the source itself when there are few,
    else its benchmark (the part before the first ``/``).

    >>> report_groups(["capitals", "reasoning_gym/chain_sum"])
    ['capitals', 'reasoning_gym/chain_sum']
    >>> report_groups([f"mmlu/subject{i}" for i in range(9)] + ["gsm8k"])[-2:]
    ['mmlu', 'gsm8k']
    """
    if len(set(sources)) <= MAX_SOURCE_GROUPS:
        return list(sources)
    return [source.split("/")[0] for source in sources]


def table_columns(
    table: RoutingTable, descriptors: Sequence[ModelDescriptor]
) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, dollars)``, each ``[n, m]`` with columns in the order of ``descriptors``.

    Table columns are matched by ``descriptor.model``; dollars are the descriptors' list prices.
    """
    missing = [d.model for d in descriptors if d.model not in table.models]
    if missing:
        raise ValueError(f"table {table.name!r} has no column for {missing}; its models are {table.models}")
    cols = [table.models.index(d.model) for d in descriptors]
    dollars = dollar_matrix(descriptors, table.input_tokens[:, cols], table.output_tokens[:, cols])
    return table.scores[:, cols], dollars


def strong_column(descriptors: Sequence[ModelDescriptor]) -> int | None:
    """The strong (priciest) model of a two-model pool, for the RouteLLM metrics; None otherwise."""
    if len(descriptors) != 2:
        return None
    return dearest(descriptors)


def evaluate_router_on_table(
    router: PolicyRouter, table: RoutingTable, out_dir: str | Path, progress: bool = False
) -> dict:
    """Score a trained router on a routing table, overall and per benchmark, and write the report.

    The table's columns are matched to the router's candidates by ``descriptor.model``. The router
    decides through ``router.decide`` (its calibration applied, if it carries one); APGR / CPT and
    the threshold curve read its raw probabilities. Writes ``report.json``, ``report.md`` and
    ``pareto.png`` (the router's threshold curve when the pool has two models) into ``out_dir``.

    Returns:
        The report: ``{"overall": {...}, "<benchmark>": {...}, "meta": {...}}``, each split mapping
        policy name -> accuracy, dollars per query, calls per query (and APGR / CPT for the router);
        ``overall.router.target`` is the calibration's target (None: raw argmax) and
        ``meta.calibration`` the applied calibration's target, offsets and fitting rows.
    """
    descriptors = router.descriptors
    scores, dollars = table_columns(table, descriptors)
    embeddings = router.embed(table.prompts, progress=progress)
    probs, choice = router.probs(embeddings), router.decide(embeddings)
    strong = strong_column(descriptors)
    names = router.model_names
    calibration = getattr(router, "calibration", None)

    benchmarks = np.array(report_groups(table.sources))
    report: dict = {"overall": evaluate_table(probs, scores, dollars, names, strong, choice)}
    report["overall"]["router"]["target"] = calibration.target if calibration is not None else None
    for bench in sorted(set(benchmarks)):
        rows = benchmarks == bench
        report[bench] = evaluate_table(probs[rows], scores[rows], dollars[rows], names, strong, choice[rows])
    report["meta"] = {
        "table": table.name,
        "rows": len(table),
        "rows_per_benchmark": {b: int((benchmarks == b).sum()) for b in sorted(set(benchmarks))},
        "models": names,
        "checkpoint": str(router.checkpoint) if router.checkpoint else None,
        "calibration": None
        if calibration is None
        else {k: getattr(calibration, k) for k in ("target", "offsets", "fitted_on", "achieved")},
    }
    curve = threshold_cost_curve(probs[:, strong], scores, dollars, strong) if strong is not None else None
    write_report(out_dir, report, curve, title=f"router vs baselines on {table.name} ({len(table)} rows)")
    return report
