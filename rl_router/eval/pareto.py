"""``pareto.png``: quality against cost for a router, its baselines and an optional sweep curve.

Drawn on a bare :class:`~matplotlib.figure.Figure` with the Agg canvas, so it never touches pyplot's
global state or needs a display (eval runs on headless nodes and inside tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

Point = tuple[float, float]  # (cost, quality)
LOG_SPAN = 100.0  # costs spanning more than two orders of magnitude get a log x-axis


def pareto_frontier(points: Mapping[str, Point]) -> list[str]:
    """Names of the non-dominated points (none other is as cheap and better), ordered by cost.

    >>> pareto_frontier({"small": (0.1, 0.5), "large": (1.0, 0.8), "bad": (2.0, 0.6), "router": (0.3, 0.75)})
    ['small', 'router', 'large']
    """
    frontier = []
    for name, (_, quality) in sorted(points.items(), key=lambda kv: (kv[1][0], -kv[1][1])):
        if not frontier or quality > points[frontier[-1]][1]:
            frontier.append(name)
    return frontier


def merge_coincident(points: Mapping[str, Point]) -> dict[str, Point]:
    """One label per distinct point, so a router that coincides with a baseline stays readable.

    >>> merge_coincident({"alpha=0.9": (1.0, 0.5), "single/small": (1.0, 0.5), "oracle": (2.0, 0.9)})
    {'alpha=0.9 = single/small': (1.0, 0.5), 'oracle': (2.0, 0.9)}
    """
    names: dict[Point, list[str]] = {}
    for name, point in points.items():
        names.setdefault(point, []).append(name)
    return {" = ".join(group): point for point, group in names.items()}


def _x_scale(costs: np.ndarray) -> tuple[str, dict[str, float]]:
    positive = costs[costs > 0]
    if positive.size < 2 or positive.max() / positive.min() <= LOG_SPAN:
        return "linear", {}
    if np.any(costs <= 0):
        # A free baseline (cache, always-local) cannot sit on a log axis; symlog keeps it at 0 and is
        # logarithmic from the cheapest paid point on.
        return "symlog", {"linthresh": float(positive.min())}
    return "log", {}


def plot_pareto(
    points: Mapping[str, Point],
    curve: tuple[Sequence[float], Sequence[float]] | None,
    path: str | Path,
    *,
    title: str = "Quality vs cost",
    xlabel: str = "cost (USD)",
    ylabel: str = "accuracy",
    curve_label: str = "router sweep",
) -> Path:
    """Write a PNG of labelled (cost, quality) points, their Pareto frontier and an optional curve.

    Args:
        points: Name -> ``(cost, quality)``: the router and its baselines (single models, random, oracle).
        curve: ``(costs, qualities)`` of a threshold / lambda sweep, drawn as a line; ``None`` for none.
        path: Output file (parents are created).
        title: Figure title.
        xlabel: Cost axis label (state the unit).
        ylabel: Quality axis label.
        curve_label: Legend entry for ``curve``.

    Returns:
        The written path.
    """
    if not points and curve is None:
        raise ValueError("nothing to plot: give at least one point or a curve")
    points = merge_coincident(points)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(7, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()

    all_costs = [cost for cost, _ in points.values()]
    if curve is not None:
        curve_costs, curve_quality = np.asarray(curve[0], float), np.asarray(curve[1], float)
        if curve_costs.shape != curve_quality.shape:
            raise ValueError(f"curve has {curve_costs.size} costs but {curve_quality.size} qualities")
        order = np.argsort(curve_costs, kind="stable")
        ax.plot(curve_costs[order], curve_quality[order], "-", color="tab:blue", alpha=0.7, label=curve_label)
        all_costs.extend(curve_costs.tolist())

    frontier = pareto_frontier(points)
    if len(frontier) > 1:
        ax.plot(
            [points[n][0] for n in frontier],
            [points[n][1] for n in frontier],
            "--",
            color="grey",
            linewidth=1,
            label="Pareto frontier",
        )
    for name, (cost, quality) in points.items():
        on_frontier = name in frontier
        ax.scatter([cost], [quality], s=40, zorder=3, marker="o" if on_frontier else "x")
        ax.annotate(name, (cost, quality), textcoords="offset points", xytext=(5, 5), fontsize=8)

    scale, kwargs = _x_scale(np.asarray(all_costs, dtype=float))
    ax.set_xscale(scale, **kwargs)
    ax.set_xlabel(xlabel + ("" if scale == "linear" else f" [{scale} scale]"))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path
