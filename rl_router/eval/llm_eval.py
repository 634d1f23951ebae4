"""Evaluation of an LLM router on QA rows against a live pool: resumable, per benchmark, with baselines.

:func:`evaluate_llm_router` plays the router's greedy episodes on every row (batched: one
generation and one pool call per turn for a batch of episodes) and asks every candidate each
question alone. Every scored row is appended to ``<out_dir>/scored.jsonl`` as soon as its batch
ends, so a crashed or interrupted evaluation started again with the same ``out_dir`` scores only the
rows that are missing. Each scored row carries the key of what makes it valid (:func:`row_key`): the
router's weights (their hash, not the folder they lie in), the pool (its config: models, revisions,
sampling, prices, backend options), the protocol and the row's own content; a single candidate's
rows leave the weights out. A row whose key differs (new weights after ``resume=``, another pool,
protocol or data) is scored again, never reused.

Policies in the report:

* ``router``: the LLM router's episodes (format-valid rate, accuracy, Router-R1 dollars, candidate
  tokens and calls per question, route shares);
* ``only <model>``: each candidate answering every question directly;
* ``oracle``: per question, the cheapest candidate that answered it correctly (the cheapest
  candidate when none did), from the single-candidate answers;
* ``random``: per question, a uniformly random candidate (seeded by the row id), from the same answers.

Dollars are Router-R1's charge (output tokens x ``price_out``); list-price dollars (input and output)
are reported beside them. Accuracy is reported overall (every row weighs the same) and per source;
``report.md`` lays the per-source accuracy out like Router-R1's Table 1 (one column per benchmark,
General QA first, then Multi-Hop QA, and the unweighted average over benchmarks).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from envs.router_r1_protocol import direct_request
from rl_router.eval.pareto import plot_pareto
from rl_router.pool.types import CandidatePool

log = logging.getLogger(__name__)

SCORED = "scored.jsonl"  # one line per (policy, row): what resuming reads back
ROUTER = "router"
ORACLE = "oracle"
RANDOM = "random"
SINGLE = "only "  # the single-candidate policies are "only <model>"
# Router-R1's Table 1 (Zhang et al., 2025): General QA, then Multi-Hop QA.
ROUTER_R1_COLUMNS = {
    "nq": "NQ",
    "triviaqa": "TriviaQA",
    "popqa": "PopQA",
    "hotpotqa": "HotpotQA",
    "2wikimultihopqa": "2wiki",
    "musique": "Musique",
    "bamboogle": "Bamboogle",
}


def row_source(row: Mapping[str, Any]) -> str:
    """A row's benchmark: its ``source``, else the prefix of its ``<source>/<id>`` id."""
    return str(row.get("source") or str(row["id"]).split("/", 1)[0])


def source_columns(sources: Sequence[str]) -> list[str]:
    """Sources in table order: Router-R1's seven benchmarks in their paper order, then the rest sorted.

    >>> source_columns(["musique", "capitals", "nq", "hotpotqa"])
    ['nq', 'hotpotqa', 'musique', 'capitals']
    """
    known = [s for s in ROUTER_R1_COLUMNS if s in sources]
    return known + sorted(set(sources) - set(known))


def digest(value: Any) -> str:
    """A short sha256 of JSON data (keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:24]


def row_key(*parts: Any) -> str:
    """The key a scored row is valid for: a digest of everything that decides its score."""
    return digest(list(parts))


class ScoredRows:
    """``scored.jsonl``: scored rows keyed by ``(policy, row id, validity key)``, appended batch by batch."""

    def __init__(self, out_dir: Path, resume: bool = True) -> None:
        self.path = out_dir / SCORED
        out_dir.mkdir(parents=True, exist_ok=True)
        self.rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        if resume and self.path.is_file():
            for line in self.path.read_text().splitlines():
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # the last line of a killed run may be cut short
                    log.warning("%s: skipped an unreadable line (an interrupted write)", self.path)
                    continue
                if "key" in record:  # rows written before rows carried keys are never reused
                    self.rows[record["policy"], record["id"], record["key"]] = record
        else:
            self.path.write_text("")
        self.resumed = 0

    def missing(self, policy: str, rows: Sequence[Mapping[str, Any]], keys: Mapping[str, str]) -> list:
        """The rows without a scored record of ``policy`` under their key (``keys``: row id -> key)."""
        todo = [row for row in rows if (policy, str(row["id"]), keys[str(row["id"])]) not in self.rows]
        self.resumed += len(rows) - len(todo)
        return todo

    def add(self, records: Sequence[dict[str, Any]], keys: Mapping[str, str]) -> None:
        with self.path.open("a") as f:
            for record in records:
                record = {**record, "key": keys[record["id"]]}
                self.rows[record["policy"], record["id"], record["key"]] = record
                f.write(json.dumps(record) + "\n")
            f.flush()

    def get(self, policy: str, row_id: str, key: str) -> dict[str, Any]:
        return self.rows[policy, row_id, key]


def router_record(row: Mapping[str, Any], episode: Mapping[str, Any]) -> dict[str, Any]:
    """What ``scored.jsonl`` keeps of one router episode."""
    return {
        "policy": ROUTER,
        "id": str(row["id"]),
        "source": row_source(row),
        "correct": float(episode["correct"]),
        "format_ok": bool(episode["format_ok"]),
        "cost_usd": float(episode["cost_usd"]),
        "list_cost_usd": float(episode["list_cost_usd"]),
        "tokens": int(episode["input_tokens"]) + int(episode["output_tokens"]),
        "calls": dict(episode["calls"]),
        "answer": episode["answer"],
        "truncated": bool(episode.get("truncated", False)),
        "candidate_errors": int(episode["candidate_errors"]),
        "completion": episode["completion"],
    }


def single_records(
    pool: CandidatePool, rows: Sequence[Mapping[str, Any]], model: str, score: Callable[..., list]
) -> list[dict[str, Any]]:
    """Candidate ``model`` answering each row's question directly (one batched pool call)."""
    descriptor = next(d for d in pool.descriptors if d.name == model)
    results = pool.generate([direct_request(model, row) for row in rows])
    scores = score([r.text for r in results], golden_answers=[list(row["golden_answers"]) for row in rows])
    return [
        {
            "policy": SINGLE + model,
            "id": str(row["id"]),
            "source": row_source(row),
            "correct": float(s or 0.0),
            "format_ok": None,
            "cost_usd": descriptor.price_out * r.output_tokens / 1e6,
            "list_cost_usd": float(r.cost_usd),
            "tokens": int(r.input_tokens + r.output_tokens),
            "calls": {model: 1},
            "answer": r.text,
            "candidate_errors": int(r.error is not None),
        }
        for row, r, s in zip(rows, results, scores, strict=True)
    ]


def oracle_record(singles: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The cheapest correct single answer to a row (the cheapest answer when none is correct).

    >>> a = {"policy": "only a", "correct": 0.0, "cost_usd": 1.0}
    >>> b = {"policy": "only b", "correct": 1.0, "cost_usd": 5.0}
    >>> oracle_record([a, b])["calls"], oracle_record([a])["calls"]
    ({'b': 1}, {'a': 1})
    """
    correct = [s for s in singles if s["correct"] > 0]
    best = min(correct or singles, key=lambda s: (-s["correct"], s["cost_usd"]))
    return {**best, "policy": ORACLE, "calls": {best["policy"][len(SINGLE) :]: 1}}


def random_record(singles: Sequence[Mapping[str, Any]], row_id: str) -> dict[str, Any]:
    """A uniformly random single answer to a row, drawn from a hash of its id (reproducible)."""
    pick = int(hashlib.sha256(row_id.encode()).hexdigest(), 16) % len(singles)
    best = singles[pick]
    return {**best, "policy": RANDOM, "calls": {best["policy"][len(SINGLE) :]: 1}}


def summarize(records: Sequence[Mapping[str, Any]], model_names: Sequence[str]) -> dict[str, Any]:
    """One policy's numbers over its records (every row weighs the same)."""
    n = max(len(records), 1)
    routes = {m: sum(r["calls"].get(m, 0) for r in records) for m in model_names}
    total = sum(routes.values())
    by_source: dict[str, list[float]] = {}
    for r in records:
        by_source.setdefault(r["source"], []).append(r["correct"])
    valid = [r["format_ok"] for r in records if r["format_ok"] is not None]
    return {
        "questions": len(records),
        "format_valid": sum(valid) / len(valid) if valid else None,
        "accuracy": sum(r["correct"] for r in records) / n,
        "dollars_per_question": sum(r["cost_usd"] for r in records) / n,
        "list_dollars_per_question": sum(r["list_cost_usd"] for r in records) / n,
        "tokens_per_question": sum(r["tokens"] for r in records) / n,
        "calls_per_question": total / n,
        "route_share": {m: (c / total if total else 0.0) for m, c in routes.items()},
        "candidate_errors": sum(r["candidate_errors"] for r in records),
        "by_source": {s: sum(v) / len(v) for s, v in sorted(by_source.items())},
    }


def evaluate_llm_router(
    router: Any,
    pool: CandidatePool | Callable[[], CandidatePool],
    rows: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    *,
    batch_size: int = 16,
    resume: bool = True,
    progress: bool = False,
    title: str | None = None,
    pool_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Score an LLM router and its baselines on ``rows``; write report.json, report.md and pareto.png.

    Args:
        router: An :class:`~rl_router.routers.llm.LLMRouter`.
        pool: The live candidates, the ones the router was trained with (same names, same order);
            or a function that builds them, called only when some row is still to score (a rerun
            over fully scored rows starts no engine), and closed at the end.
        rows: QA rows (``id``, ``question``, ``golden_answers``, optionally ``source``); ids unique.
        out_dir: Where the report and ``scored.jsonl`` go.
        batch_size: Router episodes per batch (and rows per single-candidate pool call).
        resume: Reuse the rows ``out_dir`` already scored for this router; False scores all again.
        progress: Show a progress bar over the rows.
        pool_config: What the pool is (its config as plain data): part of every row's validity key.
            None: the router's candidate descriptors (names, models, revisions, sampling, prices).

    Returns:
        The report: ``{"meta", "policies": {name: summary}, "router", "single": {model: summary},
        "oracle", "random", "best_single", "router_cost_ratio", "sources"}``. ``router_cost_ratio``
        is the router's dollars per question over the best single candidate's (the most accurate;
        the cheaper on ties).
    """
    from tqdm.auto import tqdm

    from rewards.outcome import OUTCOME_SCORERS

    out = Path(out_dir)
    ids = [str(row["id"]) for row in rows]
    if len(set(ids)) != len(ids):
        raise ValueError("evaluation rows share ids: scored rows are keyed by id")
    if not rows:
        raise ValueError("no rows to evaluate")
    names = router.model_names
    protocol = router.protocol_dict()
    score = OUTCOME_SCORERS[protocol["outcome"]]
    calibration = getattr(router, "calibration", None)
    meta = {
        "checkpoint": str(Path(router.checkpoint).resolve()) if router.checkpoint else None,
        "weights": router.weights_digest(),
        "models": names,
        "protocol": protocol,
        "calibration": None
        if calibration is None
        else {k: getattr(calibration, k) for k in ("target", "offsets", "fitted_on", "achieved")},
    }
    pool_key = digest(pool_config if pool_config is not None else [asdict(d) for d in router.descriptors])
    row_digests = {i: digest(dict(row)) for i, row in zip(ids, rows, strict=True)}
    # the calibration changes the router's choices: rows scored under other offsets are not reused
    offsets = None if calibration is None else list(calibration.offsets)
    router_keys = {
        i: row_key(meta["weights"], pool_key, protocol, offsets, d) for i, d in row_digests.items()
    }
    single_keys = {i: row_key(pool_key, protocol["outcome"], d) for i, d in row_digests.items()}
    scored = ScoredRows(out, resume=resume)
    todo_router = scored.missing(ROUTER, rows, router_keys)
    todo_single = {m: scored.missing(SINGLE + m, rows, single_keys) for m in names}
    work = len(todo_router) + sum(len(v) for v in todo_single.values())
    bar = tqdm(total=work, desc="eval", unit="answer", disable=not progress)
    if scored.resumed:
        log.info("%s: %d scored rows reused, %d answers to go", scored.path, scored.resumed, work)

    owned = callable(pool) and not hasattr(pool, "generate")
    live = (pool() if owned else pool) if work else None
    try:
        served = [d.name for d in live.descriptors] if live is not None else names
        if served != names:
            raise ValueError(
                f"the pool serves {served}, but this router was trained to route between {names} "
                "(in that order): give it the pool it was trained with"
            )
        for start in range(0, len(todo_router), batch_size):
            chunk = todo_router[start : start + batch_size]
            episodes = router.play(live, chunk, batch_size=batch_size)
            scored.add([router_record(row, ep) for row, ep in zip(chunk, episodes, strict=True)], router_keys)
            bar.update(len(chunk))
        for model, todo in todo_single.items():
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                scored.add(single_records(live, chunk, model, score), single_keys)
                bar.update(len(chunk))
    finally:
        bar.close()
        if owned and live is not None:
            live.close()

    per_policy = {ROUTER: [scored.get(ROUTER, i, router_keys[i]) for i in ids]}
    for m in names:
        per_policy[SINGLE + m] = [scored.get(SINGLE + m, i, single_keys[i]) for i in ids]
    singles_of = [[scored.get(SINGLE + m, i, single_keys[i]) for m in names] for i in ids]
    per_policy[ORACLE] = [oracle_record(s) for s in singles_of]
    per_policy[RANDOM] = [random_record(s, i) for s, i in zip(singles_of, ids, strict=True)]
    policies = {name: summarize(records, names) for name, records in per_policy.items()}

    single = {m: policies[SINGLE + m] for m in names}
    best = min(single, key=lambda m: (-single[m]["accuracy"], single[m]["dollars_per_question"]))
    best_dollars = single[best]["dollars_per_question"]
    report = {
        "meta": {
            **meta,
            "questions": len(rows),
            "resumed_rows": scored.resumed,
            "outcome": protocol["outcome"],
        },
        "sources": source_columns(sorted({row_source(r) for r in rows})),
        "policies": policies,
        "router": {**policies[ROUTER], "target": None if calibration is None else calibration.target},
        "single": single,
        "oracle": policies[ORACLE],
        "random": policies[RANDOM],
        "best_single": best,
        "router_cost_ratio": policies[ROUTER]["dollars_per_question"] / best_dollars
        if best_dollars > 0
        else None,
        "oracle_cost_ratio": policies[ORACLE]["dollars_per_question"] / best_dollars
        if best_dollars > 0
        else None,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(report_markdown(report, title or f"{router.checkpoint}"))
    points = {name: (p["dollars_per_question"], p["accuracy"]) for name, p in policies.items()}
    plot_pareto(
        points,
        None,
        out / "pareto.png",
        title="LLM router vs baselines (held-out)",
        xlabel="dollars per question (Router-R1: output tokens x price)",
    )
    return report


def report_markdown(report: Mapping[str, Any], title: str) -> str:
    """Two tables: accuracy per benchmark (Router-R1's layout) and cost / protocol numbers per policy."""
    sources = list(report["sources"])
    policies: Mapping[str, Mapping[str, Any]] = report["policies"]
    heads = [ROUTER_R1_COLUMNS.get(s, s) for s in sources]
    outcome = report["meta"]["outcome"]
    lines = [
        f"# LLM router evaluation: {title}",
        "",
        f"{report['meta']['questions']} questions; outcome `{outcome}`"
        + (
            f"; {report['meta']['resumed_rows']} scored rows reused from an earlier run"
            if report["meta"]["resumed_rows"]
            else ""
        )
        + ".",
        "",
        f"## Accuracy per benchmark ({outcome}; Avg. is the unweighted mean over benchmarks)",
        "",
        "| policy | " + " | ".join(heads) + " | Avg. |",
        "|---|" + "---:|" * (len(heads) + 1),
    ]
    for name, p in policies.items():
        cells = [p["by_source"].get(s) for s in sources]
        present = [c for c in cells if c is not None]
        avg = sum(present) / len(present) if present else 0.0
        row = " | ".join("n/a" if c is None else f"{c:.3f}" for c in cells)
        lines.append(f"| {_label(name)} | {row} | {avg:.3f} |")
    lines += [
        "",
        "## Cost and protocol",
        "",
        "| policy | format-valid | accuracy | $ / question | list $ / question | candidate tokens / question "
        "| calls / question | candidate errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, p in policies.items():
        valid = "n/a" if p["format_valid"] is None else f"{p['format_valid']:.3f}"
        lines.append(
            f"| {_label(name)} | {valid} | {p['accuracy']:.3f} | {p['dollars_per_question']:.3e} | "
            f"{p['list_dollars_per_question']:.3e} | {p['tokens_per_question']:.1f} | "
            f"{p['calls_per_question']:.2f} | {p['candidate_errors']} |"
        )
    shares = ", ".join(f"{m} {s:.2f}" for m, s in report["router"]["route_share"].items())
    ratio = report["router_cost_ratio"]
    oracle_ratio = report["oracle_cost_ratio"]
    lines += [
        "",
        f"Router route shares: {shares}. Best single candidate: {report['best_single']}; "
        f"router cost ratio {'n/a' if ratio is None else f'{ratio:.3f}'} "
        f"(oracle {'n/a' if oracle_ratio is None else f'{oracle_ratio:.3f}'}). "
        "Dollars: output tokens x price_out (Router-R1); list dollars add input tokens x price_in.",
    ]
    return "\n".join(lines) + "\n"


def _label(policy: str) -> str:
    return f"**{policy}**" if policy == ROUTER else policy
