"""RouteLLM's own evaluation code scores a policy router on our rows, and agrees with our metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from policy_helpers import make_run

from rl_router import load_router
from rl_router.data.routing_table import RoutingTable
from rl_router.eval.routellm_harness import parse_metrics, run_routellm_eval, write_routellm_layout
from rl_router.eval.run import eval_table

WEAK, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"


def _table(sources: list[str], scores: list[list[float]]) -> RoutingTable:
    n = len(sources)
    return RoutingTable(
        name="t",
        models=[WEAK, STRONG],
        ids=[f"{s}/{i:04d}" for i, s in enumerate(sources)],
        prompts=[f"question {i}" for i in range(n)],
        sources=sources,
        scores=np.asarray(scores, dtype=np.float32),
        responses=[[None, None] for _ in range(n)],
        input_tokens=np.ones((n, 2)),
        output_tokens=np.ones((n, 2)),
    )


def test_layout_is_routellms_directory_format(tmp_path):
    table = _table(
        ["mmlu/anatomy", "gsm8k", "mmlu/virology", "mmlu/anatomy"], [[0, 1], [1, 1], [1, 0], [0, 0]]
    )
    written = write_routellm_layout(table, tmp_path, [WEAK, STRONG], contaminated_from=None)
    assert written == {"mmlu": ["anatomy", "virology"], "gsm8k": []}
    anatomy = pd.read_csv(tmp_path / "mmlu/responses/mmlu_anatomy.csv")  # as RouteLLM reads it
    assert anatomy["prompt"].tolist() == ["question 0", "question 3"]
    assert anatomy[STRONG].tolist() == [True, False] and anatomy[WEAK].dtype == bool
    gsm8k = pd.read_csv(tmp_path / "gsm8k/gsm8k_responses.csv")
    assert gsm8k.to_dict("records") == [{"prompt": "question 1", WEAK: True, STRONG: True}]
    # an empty contamination list still has the column RouteLLM filters on, and excludes nothing
    listed = pd.read_json(tmp_path / "mmlu/contaminated_prompts.jsonl", lines=True)["eval_prompt"]
    assert not anatomy["prompt"].isin(listed.tolist()).any()


def test_layout_refuses_what_routellms_csv_benchmarks_cannot_score(tmp_path):
    with pytest.raises(ValueError, match=r"also has \['mt_bench'\]"):
        write_routellm_layout(_table(["mt_bench/writing"], [[0, 1]]), tmp_path, [WEAK, STRONG])
    with pytest.raises(ValueError, match="graded scores"):
        write_routellm_layout(_table(["gsm8k"], [[0.4, 1]]), tmp_path, [WEAK, STRONG])
    with pytest.raises(ValueError, match="no rl_router row"):
        parse_metrics("Metrics:\n     method  20% qual\n0  random  50.00%")


def test_routellms_harness_scores_our_test_rows_as_our_metrics_do(compose, tmp_path):
    run = make_run(compose(["debug=tiny"]), tmp_path / "run")
    router = load_router(run)
    table = eval_table(router.training["data"], "test")
    for benchmark in ("mmlu", "gsm8k"):
        rows = [i for i, s in enumerate(table.sources) if s.split("/")[0] == benchmark]
        result = run_routellm_eval(router, table, tmp_path / benchmark, benchmark)
        assert result.rows == len(rows)  # RouteLLM kept every row: our loader already decontaminated
        scores = table.scores[rows]
        assert result.weak_accuracy == pytest.approx(float(scores[:, 0].mean()))
        assert result.strong_accuracy == pytest.approx(float(scores[:, 1].mean()))
        assert len(result.points) == 11
        shares = sorted(p["strong_percentage"] for p in result.points)
        assert shares[0] == 0.0 and shares[-1] == 100.0
        # RouteLLM's printed APGR (6 decimals) is our quantile APGR of the same scores and outcomes
        assert result.routellm["apgr"] == pytest.approx(result.ours["quantile_apgr"], abs=2e-6)
        assert abs(result.ours["apgr"] - result.ours["quantile_apgr"]) < 0.1
        assert (tmp_path / benchmark / f"{benchmark}.png").stat().st_size > 0
