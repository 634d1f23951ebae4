"""Per-request share targets for an LLM router: `rl-router calibrate`'s offsets, served per request.

A tiny Llama is taught whole Router-R1 episodes (route either candidate, half of the time each, then
answer what it was told) on the questions of its own training split, as
``tests/routers/test_llm_calibration.py`` teaches one. The served target must then be exactly
``rl-router calibrate``'s: the same offsets on the same rows, and, over a batch of requests on
those rows sent with the official ``openai`` client to a real ``rl-router serve`` on loopback, the
share of first routes the target asked for.
"""

from __future__ import annotations

import json

import numpy as np
import openai
import pytest
import torch
from grpo_helpers import teach, tiny_model, tiny_tokenizer
from omegaconf import OmegaConf
from serve_helpers import compose, serving

from envs.router_r1_protocol import information_block
from rl_router import load_router
from rl_router.eval.calibrate import TargetConfig, fit_llm_calibration, training_rows
from rl_router.generation import chat_prompt_ids
from rl_router.serve.targets import TargetError, TargetOffsets

QUESTIONS = [f"What is {i} plus {i + 3}?" for i in range(20)]
ANSWERS = {"fake-small": "Paris", "fake-large": "42"}  # what each fake candidate always says


def _teach_episodes(router, questions: list[str], steps: int = 150) -> None:
    """Whole episodes: a route to either name, the env's information block (not learnt), an answer."""
    tok = router.tokenizer

    def sample(rng):
        examples = []
        for i in rng.choice(len(questions), 6, replace=False):
            name = router.model_names[int(rng.integers(2))]
            parts = [
                (f"<think>Ask.</think>\n<search>{name}: sum</search>", True),
                (information_block(ANSWERS[name]), False),
                (f"<think>Done.</think>\n<answer>{ANSWERS[name]}</answer>", True),
            ]
            examples.append((chat_prompt_ids(tok, router.prompt(questions[i])), parts))
        return examples

    teach(router.model, tok, sample, steps)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread, as a serve replica has (serve.torch_threads): on 2 shared cores it is
    several times faster than two for this tiny model."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def llm_run(tmp_path_factory):
    """An LLM run (config + router/) whose router plays whole episodes on its training questions."""
    tmp = tmp_path_factory.mktemp("llm-targets")
    data = tmp / "sums.jsonl"
    data.write_text(
        "".join(
            json.dumps({"id": f"sums/{i}", "question": q, "golden_answers": [str(2 * i + 3)]}) + "\n"
            for i, q in enumerate(QUESTIONS)
        )
    )
    cfg = compose(
        "config",
        [
            "experiment=router_r1_tiny",
            "pool=fake",
            "pool.models.0.fake.answers=[Paris]",
            "pool.models.1.fake.answers=['42']",
            "logger=none",
            f"data.parts=[{{_target_:rl_router.data.qa.load_qa_file,path:'{data}'}}]",
            "trainer.max_turn_tokens=48",
            "trainer.progress=false",
        ],
    )
    run = tmp / "run"
    run.mkdir()
    OmegaConf.save(cfg, run / "config.yaml", resolve=True)
    tok = tiny_tokenizer()
    tiny_model(tok, seed=1).save_pretrained(run / "router")
    tok.save_pretrained(run / "router")
    router = load_router(run)
    questions, _, _ = training_rows(router.training["data"], None)
    torch.manual_seed(0)
    _teach_episodes(router, questions)
    router.model.save_pretrained(run / "router")
    return run


def test_llm_share_targets_are_rl_router_calibrates_offsets_on_the_same_rows(llm_run):
    router = load_router(llm_run)
    targets = TargetOffsets.from_llm_training(router, 256)  # serve.llm_calibration_rows
    prompts, _, source = training_rows(router.training["data"], 256)
    assert targets.log_probs.shape == (len(prompts), 2)  # every first turn routes
    for share in (0.25, 0.75):
        offsets = targets.offsets({"share": share, "model": "fake-large"})
        expected = fit_llm_calibration(router, prompts, TargetConfig(share=share), source)
        assert offsets.tolist() == pytest.approx(expected.offsets)
        assert targets.offsets({"share": share}) is offsets  # cached: a repeated target costs nothing
    with pytest.raises(TargetError, match="LLM router takes share targets") as err:
        targets.offsets({"cost_per_query": 0.001})
    assert err.value.field == "routing.target.cost_per_query"


def test_a_served_llm_router_meets_each_requests_share_target(llm_run, tmp_path):
    router = load_router(llm_run)
    questions, _, _ = training_rows(router.training["data"], None)  # the rows the replica fits on
    with serving(llm_run, [], tmp_path / "serve.log") as (url, _):
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=120)

        def first_routes(target: dict) -> list[str]:
            routes = []
            for q in questions:
                reply = client.chat.completions.create(
                    model="rl-router",
                    messages=[{"role": "user", "content": q}],
                    extra_body={"routing": {"target": target}},
                )
                assert reply.routing["kind"] == "llm" and reply.routing["target"] == target
                assert reply.choices[0].message.content == ANSWERS[reply.routing["models"][0]]
                routes.append(reply.routing["models"][0])
            return routes

        for share in (0.25, 0.75):
            routes = first_routes({"share": share, "model": "fake-large"})
            reached = np.mean([r == "fake-large" for r in routes])
            assert reached == pytest.approx(share, abs=1.01 / len(questions))
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(
                model="rl-router",
                messages=[{"role": "user", "content": questions[0]}],
                extra_body={"routing": {"target": {"cost_per_query": 0.001}}},
            )
        assert err.value.body["param"] == "routing.target.cost_per_query"
        assert "LLM router takes share targets" in err.value.body["message"]
