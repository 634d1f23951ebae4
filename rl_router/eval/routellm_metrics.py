"""RouteLLM's two-model router metrics (Ong et al., 2024): threshold curve, PGR, APGR, CPT.

A router scores each query with ``p_strong(i)``, its estimate that the strong model should answer.
For a threshold ``t`` it sends query ``i`` to the strong model iff ``p_strong(i) >= t``; then

* ``%strong(t) = 100 * mean_i 1[p_strong(i) >= t]``
* ``quality(t) = mean_i (strong_i if p_strong(i) >= t else weak_i)``, the recorded outcomes
* ``PGR(t) = (quality(t) - Q_weak) / (Q_strong - Q_weak)`` (performance gap recovered), with
  ``Q_weak``/``Q_strong`` the qualities of always-weak / always-strong.

Curves here use every distinct score as a threshold plus ``+inf`` (no strong call), so they run from
0% to 100% strong calls through every operating point the router has; RouteLLM's script samples the
same curve at 11 quantile thresholds. Between two operating points PGR is linear: randomising
between the two thresholds realises every point of that segment.

* ``APGR = integral_0^1 PGR(c) dc`` over the fraction of strong calls ``c``, by the trapezoid rule on
  the operating points. This is RouteLLM's ``(AUC - AUC_weak) / (AUC_strong - AUC_weak)`` and the
  limit of "average PGR over %strong-call levels 0..100% in equal steps". Random routing: 0.5.
* ``CPT(x) = min {%strong : PGR >= x}`` on the interpolated curve (RouteLLM's ``np.interp`` for
  monotone curves, the first crossing otherwise).

Percentages of calls are in ``[0, 100]``; PGR targets are fractions (``0.5`` for CPT(50%)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray
Curve = dict[str, np.ndarray]  # "pct_strong", "quality", "pgr" (+ "threshold"), ascending %strong


def _scores(weak_scores: ArrayLike, strong_scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    weak = np.asarray(weak_scores, dtype=np.float64)
    strong = np.asarray(strong_scores, dtype=np.float64)
    if weak.ndim != 1 or weak.shape != strong.shape or weak.size == 0:
        raise ValueError(
            f"weak/strong scores must be equal-length non-empty 1-D arrays, got {weak.shape}, {strong.shape}"
        )
    if not (np.all(np.isfinite(weak)) and np.all(np.isfinite(strong))):
        raise ValueError("weak/strong scores contain NaN or inf: drop or fill those rows first")
    return weak, strong


def _gap(weak: np.ndarray, strong: np.ndarray) -> tuple[float, float]:
    q_weak, q_strong = float(weak.mean()), float(strong.mean())
    if math.isclose(q_weak, q_strong, rel_tol=0.0, abs_tol=1e-12):
        raise ValueError(
            f"strong and weak models have the same quality ({q_weak:.6g}): PGR divides by their gap, "
            "so it is undefined; pick a model pair (or a data split) where they differ"
        )
    return q_weak, q_strong


def _curve(pct_strong: np.ndarray, quality: np.ndarray, q_weak: float, q_strong: float) -> Curve:
    return {"pct_strong": pct_strong, "quality": quality, "pgr": (quality - q_weak) / (q_strong - q_weak)}


def threshold_curve(p_strong: ArrayLike, weak_scores: ArrayLike, strong_scores: ArrayLike) -> Curve:
    """Quality and PGR of the router at every threshold, from 0% to 100% strong calls.

    Args:
        p_strong: ``[n]`` router scores (probability / win rate of the strong model; any monotone score).
        weak_scores: ``[n]`` recorded outcome of the weak model per query (0/1 or graded).
        strong_scores: ``[n]`` recorded outcome of the strong model per query.

    Returns:
        ``threshold``, ``pct_strong`` (0..100), ``quality`` and ``pgr``, each ``[m + 1]`` for ``m``
        distinct scores, sorted by ascending ``pct_strong`` (``threshold[0] = inf``).

    Example:
        >>> curve = threshold_curve([0.9, 0.1, 0.5, 0.5], [0, 1, 1, 0], strong_scores=[1, 1, 0, 1])
        >>> curve["pct_strong"].tolist(), curve["quality"].tolist(), curve["pgr"].tolist()
        ([0.0, 25.0, 75.0, 100.0], [0.5, 0.75, 0.75, 0.75], [0.0, 1.0, 1.0, 1.0])
    """
    weak, strong = _scores(weak_scores, strong_scores)
    p = np.asarray(p_strong, dtype=np.float64)
    if p.shape != weak.shape:
        raise ValueError(f"p_strong has shape {p.shape} but the scores have {weak.shape}: rows must align")
    if not np.all(np.isfinite(p)):
        raise ValueError("p_strong contains NaN or inf: the router must score every query")
    q_weak, q_strong = _gap(weak, strong)
    n = p.size
    order = np.argsort(-p, kind="stable")
    p_sorted = p[order]
    gain = np.cumsum(strong[order] - weak[order])  # quality gained by sending the top-k to strong
    # Ties switch together: threshold t = p_sorted[k] sends every query with p >= t, i.e. up to the
    # last position holding that value.
    last_of_value = np.flatnonzero(np.r_[p_sorted[1:] != p_sorted[:-1], True])
    counts = np.r_[0, last_of_value + 1]
    quality = q_weak + np.r_[0.0, gain[last_of_value]] / n
    # Pin the ends to the single-model qualities exactly (the cumulative sum drifts by float error).
    quality[-1] = q_strong
    curve = _curve(100.0 * counts / n, quality, q_weak, q_strong)
    curve["threshold"] = np.r_[np.inf, p_sorted[last_of_value]]
    return curve


def curve_apgr(curve: Curve) -> float:
    """Area under PGR over the fraction of strong calls (trapezoid rule on the curve's points).

    >>> curve_apgr({"pct_strong": np.array([0.0, 50.0, 100.0]), "pgr": np.array([0.0, 1.0, 1.0])})
    0.75
    """
    return float(np.trapezoid(curve["pgr"], curve["pct_strong"] / 100.0))


def curve_cpt(curve: Curve, target_pgr: float) -> float:
    """Smallest %strong calls (0..100) at which the interpolated curve reaches ``PGR >= target_pgr``.

    Returns ``nan`` when the curve never gets there (only possible for targets above 1).

    >>> curve_cpt({"pct_strong": np.array([0.0, 40.0, 100.0]), "pgr": np.array([0.0, 1.0, 1.0])}, 0.5)
    20.0
    """
    pct, pgr = curve["pct_strong"], curve["pgr"]
    reached = np.flatnonzero(pgr >= target_pgr)
    if reached.size == 0:
        return math.nan
    k = int(reached[0])
    if k == 0:
        return float(pct[0])
    share = (target_pgr - pgr[k - 1]) / (pgr[k] - pgr[k - 1])
    return float(pct[k - 1] + share * (pct[k] - pct[k - 1]))


def apgr(p_strong: ArrayLike, weak_scores: ArrayLike, strong_scores: ArrayLike) -> float:
    """APGR of a router: ``integral_0^1 PGR(c) dc`` (0.5 for random routing, see module docstring).

    >>> apgr([0.9, 0.1, 0.5, 0.5], weak_scores=[0, 1, 1, 0], strong_scores=[1, 1, 0, 1])
    0.875
    """
    return curve_apgr(threshold_curve(p_strong, weak_scores, strong_scores))


def cpt(p_strong: ArrayLike, weak_scores: ArrayLike, strong_scores: ArrayLike, target_pgr: float) -> float:
    """CPT: the %strong calls (0..100) the router needs to recover ``target_pgr`` of the gap.

    >>> cpt([0.9, 0.1, 0.5, 0.5], weak_scores=[0, 1, 1, 0], strong_scores=[1, 1, 0, 1], target_pgr=0.5)
    12.5
    """
    return curve_cpt(threshold_curve(p_strong, weak_scores, strong_scores), target_pgr)


def quantile_curve(
    p_strong: ArrayLike, weak_scores: ArrayLike, strong_scores: ArrayLike, num_results: int = 10
) -> Curve:
    """The curve as RouteLLM's ``evals/benchmarks.py`` samples it: ``num_results + 1`` thresholds.

    The thresholds are the edges of ``pd.qcut(p_strong, num_results)``, the linear-interpolation
    quantiles at ``0, 1/num_results, ..., 1``. Each edge but the last sends ``p >= t`` to the strong
    model; the last sends ``p > t`` (nothing, at the maximum). Points are sorted by ``pct_strong``.
    :func:`curve_apgr` of it is the APGR RouteLLM's ``evaluate.py`` prints when the points span 0 to
    100% strong calls, as they do unless the highest score is shared by several queries.

    Raises:
        ValueError: Two edges coincide (many tied scores); ``pd.qcut`` refuses those too.

    >>> quantile_curve([0.9, 0.1, 0.5, 0.3], [0, 1, 1, 0], [1, 1, 0, 1], num_results=2)["pct_strong"].tolist()
    [0.0, 50.0, 100.0]
    """
    weak, strong = _scores(weak_scores, strong_scores)
    p = np.asarray(p_strong, dtype=np.float64)
    if p.shape != weak.shape or not np.all(np.isfinite(p)):
        raise ValueError(f"p_strong must be finite with the scores' shape {weak.shape}, got {p.shape}")
    if num_results < 1:
        raise ValueError(f"num_results={num_results}: use 1 or more")
    q_weak, q_strong = _gap(weak, strong)
    edges = np.quantile(p, np.linspace(0.0, 1.0, num_results + 1))
    if np.any(np.diff(edges) <= 0):
        raise ValueError(f"quantile edges are not unique ({edges.tolist()}): too many tied scores")
    sent = [p >= t for t in edges[:-1]] + [p > edges[-1]]
    pct = np.array([100.0 * s.mean() for s in sent])
    quality = np.array([np.where(s, strong, weak).mean() for s in sent])
    order = np.argsort(pct, kind="stable")
    curve = _curve(pct[order], quality[order], q_weak, q_strong)
    curve["threshold"] = edges[order]
    return curve


def quantile_apgr(
    p_strong: ArrayLike, weak_scores: ArrayLike, strong_scores: ArrayLike, num_results: int = 10
) -> float:
    """RouteLLM's printed APGR: ``(AUC - AUC_weak) / (AUC_strong - AUC_weak)`` on :func:`quantile_curve`.

    The areas run over the span of strong-call fractions the points cover (all of 0..1 unless the top
    score is tied), which is what ``evaluate.py``'s ``apgr_metric`` divides by.

    >>> round(quantile_apgr([0.9, 0.1, 0.5, 0.3], [0, 1, 1, 0], [1, 1, 0, 1], num_results=2), 6)
    0.25
    """
    curve = quantile_curve(p_strong, weak_scores, strong_scores, num_results)
    span = (curve["pct_strong"][-1] - curve["pct_strong"][0]) / 100.0
    return float(curve_apgr(curve) / span)


def random_router_curve(weak_scores: ArrayLike, strong_scores: ArrayLike, num_points: int = 101) -> Curve:
    """Expected curve of routing a uniformly random fraction ``c`` of queries to the strong model.

    ``E[quality](c) = Q_weak + c * (Q_strong - Q_weak)``, so ``PGR(c) = c`` and ``APGR = 0.5``.

    >>> curve_apgr(random_router_curve([0, 1, 0], [1, 1, 0]))
    0.5
    """
    weak, strong = _scores(weak_scores, strong_scores)
    q_weak, q_strong = _gap(weak, strong)
    frac = np.linspace(0.0, 1.0, num_points)
    return _curve(100.0 * frac, q_weak + frac * (q_strong - q_weak), q_weak, q_strong)


def oracle(weak_scores: ArrayLike, strong_scores: ArrayLike) -> dict[str, float]:
    """The oracle router: strong only where it beats weak (0/1 outcomes: weak wrong, strong right).

    Returns:
        ``quality`` (mean of ``max(weak, strong)``), ``pct_strong`` (0..100), ``pgr`` and ``apgr`` (area
        under :func:`oracle_curve`, the best any router can reach on these outcomes).

    Example:
        >>> oracle(weak_scores=[1, 0, 0, 0], strong_scores=[1, 1, 1, 0])
        {'quality': 0.75, 'pct_strong': 50.0, 'pgr': 1.0, 'apgr': 0.75}
    """
    weak, strong = _scores(weak_scores, strong_scores)
    q_weak, q_strong = _gap(weak, strong)
    quality = float(np.maximum(weak, strong).mean())
    return {
        "quality": quality,
        "pct_strong": float(100.0 * np.mean(strong > weak)),
        "pgr": (quality - q_weak) / (q_strong - q_weak),
        "apgr": curve_apgr(_curve_unchecked(weak, strong)),
    }


def _curve_unchecked(weak: np.ndarray, strong: np.ndarray) -> Curve:
    n = weak.size
    gains = np.sort(np.clip(strong - weak, 0.0, None))[::-1]
    quality = weak.mean() + np.r_[0.0, np.cumsum(gains)] / n
    return _curve(100.0 * np.arange(n + 1) / n, quality, float(weak.mean()), float(strong.mean()))


def oracle_curve(weak_scores: ArrayLike, strong_scores: ArrayLike) -> Curve:
    """Best quality at each budget of strong calls (RouteLLM's ``get_optimal_accuracy``).

    With ``k`` strong calls the oracle spends them on the ``k`` largest positive gains ``strong - weak``;
    past the last helpful query the curve is flat (it never sends a query strong would answer worse).

    >>> oracle_curve([1, 0, 0, 1], [1, 1, 0, 1])["quality"].tolist()
    [0.5, 0.75, 0.75, 0.75, 0.75]
    """
    weak, strong = _scores(weak_scores, strong_scores)
    _gap(weak, strong)
    return _curve_unchecked(weak, strong)


def summary(
    p_strong: ArrayLike,
    weak_scores: ArrayLike,
    strong_scores: ArrayLike,
    targets: Sequence[float] = (0.2, 0.5, 0.8),
) -> dict[str, float]:
    """The numbers RouteLLM reports for a router: APGR, CPT at each target, both models' quality.

    Keys: ``apgr``, ``cpt_<x>`` (e.g. ``cpt_50`` in % calls), ``weak_quality``, ``strong_quality``,
    ``oracle_apgr``.
    """
    curve = threshold_curve(p_strong, weak_scores, strong_scores)
    weak, strong = _scores(weak_scores, strong_scores)
    out = {"apgr": curve_apgr(curve)}
    out.update({f"cpt_{round(100 * t)}": curve_cpt(curve, t) for t in targets})
    out.update(
        weak_quality=float(weak.mean()),
        strong_quality=float(strong.mean()),
        oracle_apgr=curve_apgr(_curve_unchecked(weak, strong)),
    )
    return out
