"""Score a policy router with RouteLLM's own evaluation code, on rows of our data (issue #13).

RouteLLM (Ong et al., 2024, https://github.com/lm-sys/RouteLLM) ships its benchmarks and their
metrics in ``routellm.evals``: ``benchmarks.MMLU`` / ``benchmarks.GSM8K`` read a directory of
recorded outcomes, ``Benchmark.evaluate`` thresholds a router's ``calculate_strong_win_rate`` at the
quantile edges of its scores, and ``evaluate.generate_results`` prints the APGR and the strong-call
percentages for 20 / 50 / 80% of the quality gap, and draws the curve. This module:

1. writes the rows of a routing table in that directory layout (:func:`write_routellm_layout`):
   ``mmlu/responses/mmlu_<subject>.csv``, ``gsm8k/gsm8k_responses.csv`` and each benchmark's
   ``contaminated_prompts.jsonl``;
2. points ``routellm.evals.benchmarks.CURRENT_DIR`` at it, registers
   :class:`~rl_router.routers.routellm_router.RouteLLMRouter` as ``rl_router``, and runs RouteLLM's
   ``Controller``, its benchmark class (``MMLU`` over the subjects present, where the CLI takes all 57
   of ``ALL_MMLU_DOMAINS``) and ``generate_results`` (:func:`run_routellm_eval`);
3. returns RouteLLM's printed numbers next to ours on the same rows: :func:`quantile_apgr` (RouteLLM's
   sampling of the curve, which must agree) and :func:`apgr` (every threshold, what ``rl-router eval``
   reports).

It does not run ``evaluate.py`` as a script. In RouteLLM 0.2.0 its ``__main__`` block passes
``controller.model_pair.strong`` (a model name) as ``generate_results``' ``routed_pair``, which then
fails on ``routed_pair.weak`` after every threshold is scored; here the same loop calls it with the
pair. The ``random`` router's repeated runs and ``mt-bench`` are left out: one deterministic router on
MMLU or GSM8K is what is scored.

``make install`` installs RouteLLM 0.2.0 (the ``routellm`` extra). Its ``evaluate.py`` imports
``pandarallel``, whose 1.6.5 fails to import on pandas 3; it is needed only for routers without
``NO_PARALLEL``, so a stand-in takes its place while RouteLLM loads. The import needs
``OPENAI_API_KEY`` (any value: nothing is called) and, offline, ``LITELLM_LOCAL_MODEL_COST_MAP=True``;
:func:`import_routellm_evals` sets both when unset.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rl_router.data.routellm import SHIPPED_DIR, read_contaminated_prompts
from rl_router.data.routing_table import RoutingTable
from rl_router.eval.routellm_metrics import apgr, cpt, quantile_apgr
from rl_router.eval.table_eval import table_columns
from rl_router.pool.types import dearest
from rl_router.routers.policy import PolicyRouter
from rl_router.routers.routellm_router import ROUTER_NAME, register

BENCHMARKS = ("mmlu", "gsm8k")  # RouteLLM's benchmarks that read recorded CSV outcomes
OFFLINE_ENV = {"OPENAI_API_KEY": "not-used-offline", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
INSTALL_HINT = "`make install` adds it (the `routellm` extra: pip install -e '.[routellm]')"


class _NoPandarallel:
    """Stands in for ``pandarallel`` where it cannot be imported (1.6.5 fails on pandas 3)."""

    @staticmethod
    def initialize(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("pandarallel is not importable here: run routers with NO_PARALLEL = True")


@contextlib.contextmanager
def _pandarallel_or_stand_in() -> Iterator[None]:
    """``evaluate.py`` imports pandarallel at the top, but only its CLI block and routers without
    ``NO_PARALLEL`` use it; :class:`RouteLLMRouter` has it. Where the real one fails to import, a
    stand-in that refuses to run is in ``sys.modules`` while RouteLLM's modules load."""
    try:
        import pandarallel  # noqa: F401

        yield
        return
    except ImportError:
        for name in [n for n in sys.modules if n == "pandarallel" or n.startswith("pandarallel.")]:
            del sys.modules[name]
    stand_in = types.ModuleType("pandarallel")
    stand_in.pandarallel = _NoPandarallel  # type: ignore[attr-defined]
    sys.modules["pandarallel"] = stand_in
    try:
        yield
    finally:
        sys.modules.pop("pandarallel", None)


def import_routellm_evals() -> dict[str, Any]:
    """RouteLLM's evaluation modules: ``benchmarks``, ``evaluate`` and ``Controller``.

    Raises:
        ImportError: RouteLLM (or a dependency of its evals) is missing, with how to install it.
    """
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    try:
        with _pandarallel_or_stand_in():
            from routellm.controller import Controller
            from routellm.evals import benchmarks, evaluate
    except ImportError as error:
        raise ImportError(
            f"RouteLLM's evaluation code could not be imported ({error}): {INSTALL_HINT}"
        ) from error
    return {"benchmarks": benchmarks, "evaluate": evaluate, "Controller": Controller}


def _bool_column(values: np.ndarray, model: str) -> list[bool]:
    if not np.all((values == 0.0) | (values == 1.0)):
        raise ValueError(
            f"{model}: RouteLLM's MMLU / GSM8K benchmarks need 0/1 outcomes, found graded scores"
        )
    return [bool(v) for v in values]


def write_routellm_layout(
    table: RoutingTable,
    dest: str | Path,
    models: Sequence[str],
    contaminated_from: str | Path | None = SHIPPED_DIR,
) -> dict[str, list[str]]:
    """Write ``table``'s rows as a RouteLLM eval directory (what ``CURRENT_DIR`` points at).

    Args:
        table: Rows whose sources are ``gsm8k`` or ``mmlu/<subject>``.
        dest: The directory to fill (created).
        models: The table columns to write (RouteLLM's model names, e.g. its weak and strong model).
        contaminated_from: A RouteLLM-format directory whose ``<benchmark>/contaminated_prompts.jsonl``
            is copied, so RouteLLM drops the same prompts our loader did; None (or no list there):
            an empty list is written.

    Returns:
        ``{"mmlu": [subjects in row order], "gsm8k": []}`` for the benchmarks present.

    Raises:
        ValueError: A source is not GSM8K or MMLU, a model is not a column, or outcomes are graded.
    """
    dest = Path(dest)
    benchmark_of = [source.split("/", 1)[0] for source in table.sources]
    unknown = sorted(set(benchmark_of) - set(BENCHMARKS))
    if unknown:
        raise ValueError(
            f"RouteLLM's harness scores {BENCHMARKS} from recorded CSVs; the table also has {unknown}"
        )
    missing = [m for m in models if m not in table.models]
    if missing:
        raise ValueError(f"table {table.name!r} has no column {missing}; its models are {table.models}")
    columns = [table.models.index(m) for m in models]
    subject_of = [source.split("/", 1)[1] if "/" in source else "all" for source in table.sources]
    frame = pd.DataFrame({"prompt": table.prompts, "subject": subject_of})
    for model, col in zip(models, columns, strict=True):
        frame[model] = _bool_column(table.scores[:, col], model)
    written: dict[str, list[str]] = {}
    for benchmark in BENCHMARKS:
        rows = frame[[b == benchmark for b in benchmark_of]]
        if rows.empty:
            continue
        (dest / benchmark).mkdir(parents=True, exist_ok=True)
        listed = None
        if contaminated_from is not None and (Path(contaminated_from) / benchmark).is_dir():
            listed = read_contaminated_prompts(Path(contaminated_from) / benchmark)
        with open(dest / benchmark / "contaminated_prompts.jsonl", "w") as f:
            for prompt in sorted(listed or ()):
                f.write(json.dumps({"eval_prompt": prompt}) + "\n")
            if not listed:  # pandas needs the column even when nothing is listed
                f.write(json.dumps({"eval_prompt": None}) + "\n")
        if benchmark == "gsm8k":
            rows[["prompt", *models]].to_csv(dest / "gsm8k" / "gsm8k_responses.csv", index=False)
            written["gsm8k"] = []
            continue
        subjects = list(dict.fromkeys(rows["subject"]))
        (dest / "mmlu" / "responses").mkdir(exist_ok=True)
        for subject in subjects:
            part = rows[rows["subject"] == subject]
            part[["prompt", *models]].to_csv(dest / "mmlu" / "responses" / f"mmlu_{subject}.csv", index=False)
        written["mmlu"] = subjects
    return written


@contextlib.contextmanager
def _pointed_at(benchmarks: Any, root: Path) -> Iterator[None]:
    """RouteLLM's benchmark directory (``benchmarks.CURRENT_DIR``) swapped for ours, then restored."""
    old = benchmarks.CURRENT_DIR
    benchmarks.CURRENT_DIR = str(root)
    try:
        yield
    finally:
        benchmarks.CURRENT_DIR = old


@dataclass
class HarnessResult:
    """One benchmark scored by RouteLLM's code, with our metrics on the same rows."""

    benchmark: str
    rows: int  # rows RouteLLM kept after its decontamination
    routellm: dict[str, float]  # apgr, auc, cpt_20/50/80 (% strong calls) as RouteLLM printed them
    weak_accuracy: float  # RouteLLM's printed accuracy of the weak model, in [0, 1]
    strong_accuracy: float
    ours: dict[str, float]  # quantile_apgr (RouteLLM's sampling), apgr and cpt_50 (every threshold)
    points: list[dict[str, float]] = field(default_factory=list)  # threshold, strong %, accuracy
    stdout: str = ""  # everything RouteLLM printed

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "stdout"}


_METRICS_ROW = re.compile(
    rf"^\s*\d+\s+{ROUTER_NAME}\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)%\s+([-\d.eE+]+)\s+([-\d.eE+]+)\s*$", re.M
)


def parse_metrics(stdout: str) -> dict[str, float]:
    """The ``rl_router`` row of the metrics table ``generate_results`` prints.

    >>> parse_metrics("Metrics:\\n     method 20% qual 50% qual 80% qual  AUC  APGR\\n"
    ...               "0  rl_router   12.50%   31.00%   70.25%  0.75  0.61")
    {'cpt_20': 12.5, 'cpt_50': 31.0, 'cpt_80': 70.25, 'auc': 0.75, 'apgr': 0.61}
    """
    match = _METRICS_ROW.search(stdout.split("Metrics:")[-1])
    if match is None:
        raise ValueError(f"no {ROUTER_NAME} row in RouteLLM's printed metrics:\n{stdout[-2000:]}")
    c20, c50, c80, auc, value = (float(g) for g in match.groups())
    return {"cpt_20": c20, "cpt_50": c50, "cpt_80": c80, "auc": auc, "apgr": value}


def run_routellm_eval(
    router: PolicyRouter,
    table: RoutingTable,
    out_dir: str | Path,
    benchmark: str,
    num_results: int = 10,
    contaminated_from: str | Path | None = SHIPPED_DIR,
) -> HarnessResult:
    """Score ``router`` on ``table``'s ``benchmark`` rows with RouteLLM's ``routellm.evals`` code.

    The strong model is the router's dearest candidate, the weak one the other; RouteLLM sees them
    under their table column names. Writes the layout to ``out_dir/routellm_data`` and RouteLLM's plot
    to ``out_dir/<benchmark>.png``.

    Raises:
        ValueError: The router does not have exactly two candidates, or the table has no such rows.
        ImportError: RouteLLM is not installed.
    """
    if benchmark not in BENCHMARKS:
        raise ValueError(f"benchmark={benchmark!r}: RouteLLM's recorded benchmarks here are {BENCHMARKS}")
    descriptors = router.descriptors
    if len(descriptors) != 2:
        raise ValueError(f"RouteLLM scores a strong/weak pair; this router has {len(descriptors)} candidates")
    strong_i = dearest(descriptors)
    strong, weak = descriptors[strong_i].model, descriptors[1 - strong_i].model
    keep = [i for i, source in enumerate(table.sources) if source.split("/", 1)[0] == benchmark]
    if not keep:
        raise ValueError(f"table {table.name!r} has no {benchmark} rows")
    part = table.subset(keep)
    out_dir = Path(out_dir)
    root = out_dir / "routellm_data"
    subjects = write_routellm_layout(part, root, [weak, strong], contaminated_from).get("mmlu", [])

    modules = import_routellm_evals()
    register()
    captured = io.StringIO()
    points: list[dict[str, float]] = []
    with _pointed_at(modules["benchmarks"], root), contextlib.redirect_stdout(captured):
        controller = modules["Controller"](
            routers=[ROUTER_NAME],
            config={ROUTER_NAME: {"router": router}},
            strong_model=strong,
            weak_model=weak,
        )
        bench_mod = modules["benchmarks"]
        if benchmark == "mmlu":
            bench = bench_mod.MMLU(subjects, controller.model_pair, [ROUTER_NAME])
        else:
            bench = bench_mod.GSM8K(controller.model_pair, [ROUTER_NAME])
        for threshold, accuracy, counts, total in bench.evaluate(controller, ROUTER_NAME, num_results, True):
            points.append(
                {
                    "threshold": float(threshold),
                    "strong_percentage": counts[strong] / total * 100,
                    "accuracy": float(accuracy),
                }
            )
        results = pd.DataFrame(points).assign(method=ROUTER_NAME)
        out_dir.mkdir(parents=True, exist_ok=True)
        modules["evaluate"].generate_results(results, bench, benchmark, controller.model_pair, str(out_dir))
    stdout = captured.getvalue()

    # Our metrics read our table's rows and outcomes, with the scores RouteLLM's adapter memoised
    scores, _ = table_columns(part, descriptors)
    adapter = controller.routers[ROUTER_NAME]
    p_strong = np.array([adapter.calculate_strong_win_rate(prompt) for prompt in part.prompts])
    w, s = scores[:, 1 - strong_i], scores[:, strong_i]
    return HarnessResult(
        benchmark=benchmark,
        rows=len(bench.all_data),
        routellm=parse_metrics(stdout),
        weak_accuracy=bench.get_model_accuracy(weak) / 100,
        strong_accuracy=bench.get_model_accuracy(strong) / 100,
        ours={
            "quantile_apgr": quantile_apgr(p_strong, w, s, num_results),
            "apgr": apgr(p_strong, w, s),
            "cpt_50": cpt(p_strong, w, s, 0.5),
        },
        points=points,
        stdout=stdout,
    )
