"""LLM-router evaluation: report numbers recomputed by hand, Router-R1's table layout, resuming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from grpo_helpers import (
    ANSWER,
    ROUTE_LARGE,
    ROUTE_SMALL,
    ROWS,
    ScriptedRouter,
    fake_pool,
    tiny_model,
    tiny_tokenizer,
)

from rl_router.eval.llm_eval import SCORED, evaluate_llm_router
from rl_router.routers.llm import LLMRouter, ProtocolSettings

# Capitals go to fake-small (always "Paris"), arithmetic to fake-large (always "42"); the answer
# copies what the candidate said. Right on France and on 6 x 7, wrong on Peru.
ANSWERS = {ROWS[0]["question"]: "Paris", ROWS[1]["question"]: "42", ROWS[2]["question"]: "Paris"}


def script(question: str, turn: int, k: int = 0) -> str:
    if turn == 0:
        route = ROUTE_LARGE if "times" in question else ROUTE_SMALL
        return route.format(q=question)
    return ANSWER.format(a=ANSWERS[question])


class Scripted:
    """An LLMRouter whose turns come from :func:`script`; counts its generation calls."""

    def __init__(self, router: LLMRouter) -> None:
        self.router = router
        self.checkpoint = router.checkpoint
        self.generator = ScriptedRouter(router.tokenizer, script)

    @property
    def model_names(self):
        return self.router.model_names

    def protocol_dict(self):
        return self.router.protocol_dict()

    def weights_digest(self):
        return self.router.weights_digest()

    @property
    def descriptors(self):
        return self.router.descriptors

    def play(self, pool, rows, batch_size=16):
        return self.router.play(pool, rows, batch_size, generate=self.generator)


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture
def router(tok, tmp_path):
    pool = fake_pool()
    llm = LLMRouter(
        tiny_model(tok),
        tok,
        list(pool.descriptors),
        ProtocolSettings(max_routes=2, max_turn_tokens=64, max_completion_tokens=512, outcome="em"),
        checkpoint=tmp_path / "router",
    )
    pool.close()
    return Scripted(llm)


def price_out(pool, name):
    return next(d.price_out for d in pool.descriptors if d.name == name)


def test_report_numbers_match_a_hand_count(router, tmp_path):
    pool = fake_pool()
    report = evaluate_llm_router(router, pool, ROWS, tmp_path / "eval")
    # Each candidate's dollars, recomputed from fresh answers: output tokens x price_out.
    dollars = {}
    for name in ("fake-small", "fake-large"):
        results = pool.generate([_request(name, row["question"]) for row in ROWS])
        dollars[name] = [price_out(pool, name) * r.output_tokens / 1e6 for r in results]
    small, large = dollars["fake-small"], dollars["fake-large"]

    r = report["router"]
    assert (r["questions"], r["format_valid"], r["accuracy"]) == (3, 1.0, pytest.approx(2 / 3))
    assert r["calls_per_question"] == 1.0
    assert r["route_share"] == {"fake-small": pytest.approx(2 / 3), "fake-large": pytest.approx(1 / 3)}
    assert r["by_source"] == {"capitals": 0.5, "math": 1.0}
    assert r["dollars_per_question"] == pytest.approx((small[0] + large[1] + small[2]) / 3)

    s = report["single"]
    assert s["fake-small"]["accuracy"] == pytest.approx(1 / 3) and s["fake-large"][
        "accuracy"
    ] == pytest.approx(1 / 3)
    assert s["fake-small"]["dollars_per_question"] == pytest.approx(sum(small) / 3)
    assert s["fake-large"]["dollars_per_question"] == pytest.approx(sum(large) / 3)
    assert s["fake-small"]["format_valid"] is None
    assert report["best_single"] == "fake-small"  # tied on accuracy, cheaper

    # Oracle: France -> small (right), 6 x 7 -> large (right), Peru -> nobody right: the cheapest.
    o = report["oracle"]
    assert o["accuracy"] == pytest.approx(2 / 3)
    cheapest_peru = min(small[2], large[2])
    assert o["dollars_per_question"] == pytest.approx((small[0] + large[1] + cheapest_peru) / 3)
    assert report["router_cost_ratio"] == pytest.approx(
        r["dollars_per_question"] / s["fake-small"]["dollars_per_question"]
    )
    rnd = report["random"]
    assert rnd["calls_per_question"] == 1.0 and sum(rnd["route_share"].values()) == pytest.approx(1.0)
    assert rnd["accuracy"] in (0.0, pytest.approx(1 / 3), pytest.approx(2 / 3))

    md = (tmp_path / "eval" / "report.md").read_text()
    assert "| policy | capitals | math | Avg. |" in md
    assert "| **router** | 0.500 | 1.000 | 0.750 |" in md
    assert (tmp_path / "eval" / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["router"]["accuracy"] == pytest.approx(
        2 / 3
    )
    pool.close()


def _request(model, question):
    from rl_router.pool.types import Request

    return Request(model, ({"role": "user", "content": question},))


def test_seven_benchmarks_are_laid_out_like_router_r1(router, tmp_path):
    france = ROWS[0]["question"]
    sources = ["bamboogle", "musique", "2wikimultihopqa", "hotpotqa", "popqa", "triviaqa", "nq"]
    rows = [
        {
            "id": f"{s}/0",
            "question": france,
            "golden_answers": ["Paris" if s in ("nq", "triviaqa") else "Rome"],
            "source": s,
        }
        for s in sources
    ]
    rows += [
        {"id": f"nq/{i}", "question": france, "golden_answers": ["Paris"], "source": "nq"} for i in (1, 2)
    ]
    pool = fake_pool()
    report = evaluate_llm_router(router, pool, rows, tmp_path / "eval")
    pool.close()
    assert report["sources"] == [
        "nq",
        "triviaqa",
        "popqa",
        "hotpotqa",
        "2wikimultihopqa",
        "musique",
        "bamboogle",
    ]
    assert report["router"]["accuracy"] == pytest.approx(4 / 9)  # every row weighs the same
    md = (tmp_path / "eval" / "report.md").read_text()
    assert "| policy | NQ | TriviaQA | PopQA | HotpotQA | 2wiki | Musique | Bamboogle | Avg. |" in md
    # Avg. is Router-R1's: the unweighted mean over the seven benchmarks (2 of 7 right), not 4/9.
    assert "| **router** | 1.000 | 1.000 | 0.000 | 0.000 | 0.000 | 0.000 | 0.000 | 0.286 |" in md


def test_a_second_run_reuses_every_scored_row(router, tmp_path):
    pool = fake_pool()
    first = evaluate_llm_router(router, pool, ROWS, tmp_path / "eval")
    calls, turns = len(pool.calls), len(router.generator.calls)
    again = evaluate_llm_router(router, pool, ROWS, tmp_path / "eval")
    assert (len(pool.calls), len(router.generator.calls)) == (calls, turns)  # nothing recomputed
    assert again["meta"]["resumed_rows"] == 9  # 3 rows x (router + 2 candidates)
    assert again["policies"] == first["policies"]
    pool.close()

    def no_pool_needed():
        raise AssertionError("every row is scored: the pool must not be started")

    third = evaluate_llm_router(router, no_pool_needed, ROWS, tmp_path / "eval")
    assert third["policies"] == first["policies"]


def test_a_pool_factory_is_started_for_missing_rows_and_closed(router, tmp_path):
    pools = []

    def start():
        pools.append(fake_pool())
        return pools[-1]

    report = evaluate_llm_router(router, start, ROWS, tmp_path / "eval")
    assert len(pools) == 1 and report["router"]["questions"] == 3
    assert len(pools[0].calls) == 1 + 2  # one turn's routes, one batch per candidate
    with pytest.raises(RuntimeError):  # closed: no more calls
        pools[0].generate([_request("fake-small", "again?")])


def test_an_interrupted_run_scores_only_the_missing_rows(router, tmp_path):
    pool = fake_pool()
    first = evaluate_llm_router(router, pool, ROWS, tmp_path / "eval")
    scored = tmp_path / "eval" / SCORED
    lines = scored.read_text().splitlines()
    kept = [
        line for line in lines if not (json.loads(line)["policy"] == "only fake-large" and "math" in line)
    ]
    kept = [line for line in kept if not (json.loads(line)["policy"] == "router" and "capitals/1" in line)]
    assert len(kept) == 7
    scored.write_text("\n".join(kept) + '\n{"policy": "router", "id": "capi')  # a write cut short
    pool.calls.clear()
    again = evaluate_llm_router(router, pool, ROWS, tmp_path / "eval")
    assert sorted(pool.calls) == [1, 1]  # one route of the re-played episode, one fake-large answer
    assert again["meta"]["resumed_rows"] == 7
    assert again["policies"] == first["policies"]
    pool.close()


def test_rows_are_reused_by_weights_not_by_folder_and_rescored_when_weights_change(router, tmp_path):
    import torch

    pool = fake_pool()
    evaluate_llm_router(router, pool, ROWS, tmp_path / "eval")
    router.checkpoint = tmp_path / "a-copy-of-the-same-weights"
    router.router.checkpoint = router.checkpoint
    moved = evaluate_llm_router(router, pool, ROWS, tmp_path / "eval")
    assert moved["meta"]["resumed_rows"] == 9  # same weights elsewhere: every row stands
    with torch.no_grad():  # the weights change in place, as a resumed run's router/ does
        next(router.router.model.parameters()).add_(0.01)
    changed = evaluate_llm_router(router, pool, ROWS, tmp_path / "eval")
    assert changed["meta"]["resumed_rows"] == 6  # the candidates' answers stand; the router's do not
    assert changed["meta"]["weights"] != moved["meta"]["weights"]
    fresh = evaluate_llm_router(router, pool, ROWS, tmp_path / "eval", resume=False)
    assert fresh["meta"]["resumed_rows"] == 0
    pool.close()


def test_rows_whose_content_or_pool_changed_are_scored_again(router, tmp_path):
    pool = fake_pool()
    evaluate_llm_router(router, pool, ROWS, tmp_path / "eval", pool_config={"answers": ["Paris"]})
    edited = [dict(ROWS[0], golden_answers=["Lyon"]), *ROWS[1:]]  # same id, another golden answer
    again = evaluate_llm_router(router, pool, edited, tmp_path / "eval", pool_config={"answers": ["Paris"]})
    assert again["meta"]["resumed_rows"] == 6  # 2 unchanged rows x (router + 2 candidates)
    other_pool = evaluate_llm_router(
        router, pool, edited, tmp_path / "eval", pool_config={"answers": ["Rome"]}
    )
    assert other_pool["meta"]["resumed_rows"] == 0
    pool.close()


def test_a_pool_with_other_candidates_is_refused(tok, tmp_path):
    pool = fake_pool()
    names = list(pool.descriptors)[::-1]  # same candidates, other order: the prompt would differ
    llm = LLMRouter(tiny_model(tok), tok, names, ProtocolSettings(outcome="em"), checkpoint=Path("x"))
    with pytest.raises(ValueError, match=r"trained to route between \['fake-large', 'fake-small'\]"):
        llm.play(pool, ROWS)
    pool.close()
