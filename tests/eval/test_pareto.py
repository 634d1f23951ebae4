"""pareto.png: a real PNG, frontier selection, log axis on wide cost ranges."""

import numpy as np

from rl_router.eval.pareto import _x_scale, pareto_frontier, plot_pareto

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_pareto_writes_a_png(tmp_path):
    points = {"small": (0.0002, 0.55), "large": (0.03, 0.8), "router": (0.004, 0.77), "random": (0.015, 0.67)}
    curve = (np.linspace(0.0002, 0.03, 20), np.linspace(0.55, 0.8, 20))
    path = plot_pareto(points, curve, tmp_path / "sub" / "pareto.png")
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 10_000  # a drawn figure, not an empty canvas


def test_plot_pareto_without_curve_and_with_a_free_point(tmp_path):
    path = plot_pareto({"cache": (0.0, 0.5), "a": (1e-4, 0.6), "b": (1.0, 0.9)}, None, tmp_path / "p.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_x_scale_goes_log_beyond_two_orders_of_magnitude():
    assert _x_scale(np.array([1.0, 50.0]))[0] == "linear"
    assert _x_scale(np.array([1.0, 500.0]))[0] == "log"
    assert _x_scale(np.array([0.0, 1.0, 500.0])) == ("symlog", {"linthresh": 1.0})


def test_pareto_frontier_drops_dominated_points():
    points = {"a": (1.0, 0.5), "b": (2.0, 0.4), "c": (2.0, 0.7), "d": (3.0, 0.7), "e": (0.5, 0.2)}
    assert pareto_frontier(points) == ["e", "a", "c"]
