"""Operating points for policy routers: per-candidate logit offsets fitted to a share or a budget.

A trained policy router routes each query to ``argmax_j p_j``. A *calibration* moves that decision
without retraining: it adds one offset per candidate to the log-probabilities,

    choice_i = argmax_j (log p_ij + offset_j)        (ties: the lower candidate index)

and is fitted on calibration rows so that a target is met there (``rl-router calibrate``):

* ``{"share": x, "model": name}``: ``name`` answers a share ``x`` of the queries
  (:func:`fit_share_offsets`; only ``name``'s offset is non-zero);
* ``{"cost_per_query": usd}``: the mean dollars per query is at most ``usd`` and as close to it as
  the rows allow (:func:`fit_cost_offsets`; ``offset_j = -lambda * c_j``, with ``c_j`` the
  candidate's expected dollars per query).

It is kept beside the weights as ``calibration.json`` (JSON only), read by
:func:`load_calibration`, which refuses anything but the documented fields and types: the file may
come from a stranger. ``probs()`` of a router stays raw; ``decide()`` and ``route()`` apply it.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION = "calibration.json"  # beside a run's config.yaml, or in an exported folder
FORMAT_VERSION = 1
RULE = "argmax over candidates of log p + offset (ties: the lower candidate index)"
MAX_BYTES = 1_000_000  # a calibration file is a few hundred bytes; anything this big is not one
FIELDS = (
    "format_version",
    "rule",
    "target",
    "models",
    "offsets",
    "weights_sha256",
    "fitted_on",
    "achieved",
    "cost_model",
)


class CalibrationError(ValueError):
    """A ``calibration.json`` that does not hold what this version writes; names the file and field."""


@dataclass
class Calibration:
    """Logit offsets that put a policy router at an operating point.

    Attributes:
        target: ``{"share": x, "model": name}`` or ``{"cost_per_query": usd}``.
        models: the router's candidate names, in action order (what ``offsets`` are aligned to).
        offsets: one float per candidate, added to its log-probability before the argmax.
        weights_sha256: digest of the policy weights it was fitted for
            (:meth:`~rl_router.routers.policy.PolicyRouter.weights_digest`).
        fitted_on: ``{"source": what the rows were, "rows": how many}``.
        achieved: on those rows: ``{"route_share": {name: x}, "dollars_per_query": usd or None}``.
        cost_model: cost targets only: ``{"lambda": ..., "expected_dollars": {name: usd},
            "source": where the expected dollars came from}``; None for share targets.
    """

    target: dict[str, Any]
    models: list[str]
    offsets: list[float]
    weights_sha256: str
    fitted_on: dict[str, Any]
    achieved: dict[str, Any]
    cost_model: dict[str, Any] | None = None

    @classmethod
    def fitted(
        cls,
        *,
        target: dict[str, Any],
        models: Sequence[str],
        offsets: np.ndarray | Sequence[float],
        weights_sha256: str,
        choices: np.ndarray,
        source: str,
        rows: int,
        dollars_per_query: float | None,
        cost_model: dict[str, Any] | None = None,
    ) -> Calibration:
        """A calibration with what it achieved on the rows it was fitted on: each candidate's share
        of ``choices`` (``int [n]``, candidate indices) and the mean dollars (None if unknown)."""
        choices = np.asarray(choices)
        return cls(
            target=target,
            models=list(models),
            offsets=[float(v) for v in offsets],
            weights_sha256=weights_sha256,
            fitted_on={"source": source, "rows": rows},
            achieved={
                "route_share": {n: float(np.mean(choices == j)) for j, n in enumerate(models)},
                "dollars_per_query": dollars_per_query,
            },
            cost_model=cost_model,
        )

    def decide(self, log_probs: np.ndarray) -> np.ndarray:
        """``int64 [n]``: the candidate index per row of ``log_probs [n, m]`` under the offsets."""
        return decide(log_probs, np.asarray(self.offsets, dtype=np.float64))

    def describe(self) -> str:
        """The target in words, e.g. ``share 0.3 of gpt-4`` or ``$0.001 per query``."""
        if "share" in self.target:
            return f"share {self.target['share']:g} of {self.target['model']}"
        return f"${self.target['cost_per_query']:g} per query"

    def to_json(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "rule": RULE, **asdict(self)}

    def save(self, folder: str | Path) -> Path:
        """Write ``<folder>/calibration.json`` (replacing an older one); returns its path."""
        path = Path(folder) / CALIBRATION
        tmp = path.with_name(f".{CALIBRATION}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n")
        tmp.replace(path)
        return path


def decide(log_probs: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``argmax_j (log_probs[i, j] + offsets[j])`` per row (numpy's argmax: ties go to the lower index).

    >>> decide(np.log([[0.7, 0.3], [0.45, 0.55]]), np.array([0.0, 1.0])).tolist()
    [1, 1]
    """
    return np.argmax(np.asarray(log_probs, dtype=np.float64) + offsets, axis=1)


def share_margins(log_probs: np.ndarray, model: int) -> np.ndarray:
    """``d_i = max_{j != model} log p_ij - log p_i,model``: the offset ``model`` needs to win row ``i``.

    >>> share_margins(np.log([[0.5, 0.25, 0.25], [0.1, 0.2, 0.7]]), 0).round(3).tolist()
    [-0.693, 1.946]
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    others = np.delete(lp, model, axis=1)
    return others.max(axis=1) - lp[:, model]


def fit_share_offsets(log_probs: np.ndarray, model: int, share: float) -> np.ndarray:
    """Offsets (only ``model``'s non-zero) under which ``model`` wins a ``share`` of the rows.

    With offset ``b`` on ``model``, row ``i`` goes to it when ``d_i < b`` (:func:`share_margins`),
    so the share reached is ``mean(d < b)``: ``b`` is the ``share`` quantile of the margins. It is
    put halfway between two consecutive distinct margins, so no calibration row sits on the
    boundary. Rows with equal margins (a saturated router) move together: the share reached is then
    the reachable one closest to ``share`` (the lower of two equally close). Share 0 and 1 put ``b``
    one nat beyond the extreme margin.

    >>> lp = np.log([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5], [0.2, 0.8]])
    >>> offsets = fit_share_offsets(lp, model=1, share=0.75)
    >>> float((decide(lp, offsets) == 1).mean())
    0.75
    >>> float(offsets[0]), float((decide(lp, fit_share_offsets(lp, 1, 0.0)) == 1).mean())
    (0.0, 0.0)
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share={share}: use a value in [0, 1]")
    d = np.sort(share_margins(log_probs, model))
    n = len(d)
    if n == 0:
        raise ValueError("no calibration rows")
    # how many rows a cut between distinct margins leaves below it: 0, each step in d, n
    counts = np.concatenate([[0], np.flatnonzero(np.diff(d) > 0) + 1, [n]])
    count = int(counts[np.argmin(np.abs(counts - share * n))])
    if count == 0:
        b = d[0] - 1.0
    elif count == n:
        b = d[-1] + 1.0
    else:
        b = (d[count - 1] + d[count]) / 2.0
    offsets = np.zeros(np.asarray(log_probs).shape[1])
    offsets[model] = b
    return offsets


def fit_cost_offsets(
    log_probs: np.ndarray,
    expected_dollars: np.ndarray,
    cost_per_query: float,
    row_dollars: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Offsets ``-lambda * c`` under which the mean cost of the chosen models is at most the target.

    Args:
        log_probs: ``[n, m]`` the router's log-probabilities on the calibration rows.
        expected_dollars: ``[m]`` each candidate's expected dollars per query ``c_j``.
        cost_per_query: the target mean dollars per query.
        row_dollars: ``[n, m]`` recorded dollars of each call, when the rows are a routing table;
            None: every call costs its ``c_j``.

    Returns:
        ``(offsets [m], lambda)``.

    As ``lambda`` grows each row's choice moves to candidates with a lower ``c_j``, so with
    ``row_dollars`` None (or ordered like ``c``) the mean cost falls monotonically. ``lambda`` may be
    negative: a router that spends less than the target is moved toward dearer candidates. The search
    range is ``[-L, L]`` with ``L = R / g + 1``, ``R`` the spread of ``log_probs`` and ``g`` the
    smallest gap between distinct ``c_j``: at ``L`` every row goes to a cheapest candidate, at ``-L``
    to a dearest. Bisection keeps ``cost(hi) <= target < cost(lo)`` and halves until the midpoint
    equals an end in float64 (at most 200 halvings); it returns ``hi``. A target below the cheapest
    candidates' cost raises ValueError; one at or above the dearest's saturates (every row to the
    dearest) with a warning.

    >>> lp = np.log([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5], [0.2, 0.8]])
    >>> offsets, lam = fit_cost_offsets(lp, np.array([1.0, 10.0]), cost_per_query=5.5)
    >>> choice = decide(lp, offsets); float(np.array([1.0, 10.0])[choice].mean())
    5.5
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    c = np.asarray(expected_dollars, dtype=np.float64)
    costs = np.broadcast_to(c, lp.shape) if row_dollars is None else np.asarray(row_dollars, np.float64)
    rows = np.arange(len(lp))

    def mean_cost(lam: float) -> float:
        return float(costs[rows, decide(lp, -lam * c)].mean())

    distinct = np.unique(c)
    if len(distinct) < 2:
        raise ValueError("every candidate has the same expected cost: a cost target cannot move the router")
    span = float(lp.max() - lp.min()) / float(np.diff(distinct).min()) + 1.0
    cheapest, dearest = mean_cost(span), mean_cost(-span)
    if cost_per_query < cheapest:
        raise ValueError(
            f"cost_per_query={cost_per_query:g} is below ${cheapest:g} per query, what the cheapest "
            "candidates cost on the calibration rows: no routing among these candidates reaches it"
        )
    if cost_per_query >= dearest:
        warnings.warn(
            f"cost_per_query={cost_per_query:g} is at or above ${dearest:g} per query, what the dearest "
            "candidates cost on the calibration rows: every query goes to them",
            stacklevel=2,
        )
        return span * c, -span
    lo, hi = -span, span
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if mid in (lo, hi):
            break
        if mean_cost(mid) <= cost_per_query:
            hi = mid
        else:
            lo = mid
    return -hi * c, hi


def load_calibration(folder: str | Path, model_names: Sequence[str] | None = None) -> Calibration | None:
    """The ``calibration.json`` of ``folder``, validated; None when there is none.

    Args:
        folder: a run directory or an exported folder.
        model_names: the router's candidates, in action order: ``models`` must equal them and
            ``offsets`` hold one number each. None: only checked against the file's own ``models``.

    Raises:
        CalibrationError: naming the file and the field, for anything but the documented fields with
            their types (finite numbers, a share in [0, 1], a positive cost, known model names).
    """
    path = Path(folder) / CALIBRATION
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_BYTES:
        raise CalibrationError(f"{path}: {path.stat().st_size} bytes is no calibration file; refusing it")

    def refuse(value: str) -> Any:
        raise CalibrationError(f"{path}: {value} is not a JSON number this file may hold; refusing it")

    try:
        data = json.loads(path.read_text(), parse_constant=refuse)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CalibrationError(f"{path}: not valid JSON ({err}); refusing it") from err
    return _validated(data, path, model_names)


def _validated(data: Any, path: Path, model_names: Sequence[str] | None) -> Calibration:
    def fail(field: str, problem: str) -> CalibrationError:
        sep = "" if problem.startswith("=") else " "  # "target.share=-0.2 is ...", "offsets must ..."
        return CalibrationError(f"{path}: {field}{sep}{problem}; refusing this calibration")

    def number(value: Any, field: str, lo: float = -math.inf, hi: float = math.inf) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise fail(field, f"must be a finite number, not {value!r}")
        if not lo <= value <= hi:
            raise fail(field, f"={value!r} is outside [{lo:g}, {hi:g}]")
        return float(value)

    def mapping(value: Any, field: str, keys: Sequence[str], optional: Sequence[str] = ()) -> dict:
        if not isinstance(value, Mapping):
            raise fail(field, f"must be an object, not {type(value).__name__}")
        missing = [k for k in keys if k not in value]
        extra = sorted(str(k) for k in value if k not in (*keys, *optional))
        if missing or extra:
            raise fail(field, f"must hold exactly {[*keys, *optional]} (missing {missing}, unknown {extra})")
        return dict(value)

    def text(value: Any, field: str) -> str:
        if not isinstance(value, str):
            raise fail(field, f"must be a string, not {value!r}")
        return value

    data = mapping(data, "the file", [f for f in FIELDS if f != "cost_model"], ["cost_model"])
    if data["format_version"] != FORMAT_VERSION:
        raise fail("format_version", f"={data['format_version']!r}: this rl-router reads {FORMAT_VERSION}")
    text(data["rule"], "rule")
    models = data["models"]
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise fail("models", f"must be a list of candidate names, not {models!r}")
    if model_names is not None and models != list(model_names):
        raise fail("models", f"={models} differs from the router's candidates {list(model_names)}")
    offsets = data["offsets"]
    if not isinstance(offsets, list) or len(offsets) != len(models):
        raise fail("offsets", f"must be a list of {len(models)} numbers (one per candidate), not {offsets!r}")
    offsets = [number(v, f"offsets[{i}]") for i, v in enumerate(offsets)]
    digest = text(data["weights_sha256"], "weights_sha256")
    if len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest):
        raise fail("weights_sha256", "must be 64 lowercase hex digits")

    target = data["target"]
    if isinstance(target, Mapping) and "cost_per_query" in target:
        target = mapping(target, "target", ["cost_per_query"])
        target["cost_per_query"] = number(target["cost_per_query"], "target.cost_per_query", lo=0.0)
    else:
        target = mapping(target, "target", ["share", "model"])
        target["share"] = number(target["share"], "target.share", 0.0, 1.0)
        if text(target["model"], "target.model") not in models:
            raise fail("target.model", f"={target['model']!r} is not one of the candidates {models}")

    fitted = mapping(data["fitted_on"], "fitted_on", ["source", "rows"])
    text(fitted["source"], "fitted_on.source")
    if isinstance(fitted["rows"], bool) or not isinstance(fitted["rows"], int) or fitted["rows"] < 1:
        raise fail("fitted_on.rows", f"must be a positive integer, not {fitted['rows']!r}")

    achieved = mapping(data["achieved"], "achieved", ["route_share", "dollars_per_query"])
    shares = mapping(achieved["route_share"], "achieved.route_share", models)
    achieved["route_share"] = {m: number(shares[m], f"achieved.route_share.{m}", 0.0, 1.0) for m in models}
    if achieved["dollars_per_query"] is not None:
        achieved["dollars_per_query"] = number(
            achieved["dollars_per_query"], "achieved.dollars_per_query", 0.0
        )

    cost_model = data.get("cost_model")
    if cost_model is not None:
        cost_model = mapping(cost_model, "cost_model", ["lambda", "expected_dollars", "source"])
        cost_model["lambda"] = number(cost_model["lambda"], "cost_model.lambda")
        text(cost_model["source"], "cost_model.source")
        expected = mapping(cost_model["expected_dollars"], "cost_model.expected_dollars", models)
        cost_model["expected_dollars"] = {
            m: number(expected[m], f"cost_model.expected_dollars.{m}", 0.0) for m in models
        }
    if ("cost_per_query" in target) != (cost_model is not None):
        raise fail("cost_model", "must be given for a cost target and null for a share target")
    return Calibration(target, models, offsets, digest, fitted, achieved, cost_model)
