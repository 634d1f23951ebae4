"""LLM-router calibration: offsets on the candidate named after <search>, fitted by `rl-router calibrate`.

A tiny Llama is taught the protocol's shape on a 50/50 mix of routes, so it writes
``<think>..</think>\\n<search>NAME: ..`` with a per-query preference between the two names; the
calibration must then move its choices to the target share, and route(), export and load-back must
all make the same choices.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from grpo_helpers import teach, tiny_data_overrides, tiny_model, tiny_tokenizer
from omegaconf import OmegaConf

from rl_router import load_router
from rl_router.eval.calibrate import run_calibrate
from rl_router.eval.run import run_eval
from rl_router.generation import chat_prompt_ids
from rl_router.hub import export_router
from rl_router.routers.calibration import CALIBRATION, decide, fit_share_offsets
from rl_router.routers.llm import LLMRouter
from rl_router.routers.llm_choice import (
    CalibratedTurns,
    first_choice_log_probs,
    first_mention,
    name_ids,
)

QUERIES = [f"Question {i}: what is {i} plus {i + 3}?" for i in range(16)]


def _compose(config_name: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from rl_router.cli import conf_dir
    from rl_router.registry import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides)


def _teach_the_protocol(router: LLMRouter, steps: int = 150) -> None:
    """A few hundred Adam steps: the shape of a routing turn, with either name half of the time."""
    tok, model = router.tokenizer, router.model.train()
    rng = np.random.default_rng(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        batch = rng.choice(len(QUERIES), 4, replace=False)
        loss = torch.zeros(())
        for i in batch:
            name = router.model_names[int(rng.integers(2))]
            prompt = chat_prompt_ids(tok, router.prompt(QUERIES[i]))
            turn = tok(
                f"<think>Ask.</think>\n<search>{name}: {QUERIES[i]}</search>", add_special_tokens=False
            )
            ids = torch.tensor([prompt + turn["input_ids"]])
            labels = ids.clone()
            labels[0, : len(prompt)] = -100
            loss = loss + model(input_ids=ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def _teach_short(tok, model, contexts: list[list[int]], steps: int = 60, think: str = "Ask.") -> None:
    """The routing turn after short contexts, either name half of the time (``think`` may name the
    turn's candidate as ``{name}``)."""

    def sample(rng):
        names = [("fake-small", "fake-large")[int(rng.integers(2))] for _ in contexts]
        return [
            (context, [(f"<think>{think.format(name=n)}</think>\n<search>{n}: q</search>", True)])
            for context, n in zip(contexts, names, strict=True)
        ]

    teach(model, tok, sample, steps)


@pytest.fixture(scope="module")
def taught():
    tok = tiny_tokenizer()
    torch.manual_seed(0)
    model = tiny_model(tok, seed=1)
    contexts = [
        tok(f"<|user|>{i} plus {i + 3}?<|assistant|>", add_special_tokens=False)["input_ids"]
        for i in range(16)
    ]
    _teach_short(tok, model, contexts)
    return tok, model, contexts


def test_offsets_fitted_on_name_log_probs_move_the_generated_routes(taught):
    tok, model, contexts = taught
    names = ["fake-small", "fake-large"]
    own = CalibratedTurns(model, tok, names, [0.0, 0.0])
    log_probs, routed = first_choice_log_probs(own, contexts, 40)
    assert routed.all() and log_probs.shape == (16, 2)
    assert np.allclose(np.exp(log_probs).sum(axis=1), 1.0)  # renormalised over the two names
    for share in (0.25, 0.75):
        offsets = fit_share_offsets(log_probs, 1, share)
        assert (decide(log_probs, offsets) == 1).mean() == pytest.approx(share)
        turns = CalibratedTurns(model, tok, names, offsets)(contexts, [40] * 16)
        texts = [tok.decode(t.ids) for t in turns]
        assert sum("<search>fake-large:" in t for t in texts) == round(16 * share)
        assert all(t.endswith("</search>") and t.count("<search>") == 1 for t in texts)  # a whole turn


NAMES = ["fake-small", "fake-large"]


@pytest.mark.parametrize(
    ("turn", "before", "gap"),
    [
        ("<think>fake-large knows this.</think>\n<search>", "<think>", ""),
        ("<think>I will ask fake-small now.</think>\n<search>", "<think>I will ask", " "),
        ("<think>Ask fake-small, not fake-large.</think>\n<search>", "<think>Ask", " "),
    ],
)
def test_first_mention_finds_the_token_boundary_before_the_first_name(turn, before, gap):
    tok = tiny_tokenizer()
    ids = tok(turn, add_special_tokens=False)["input_ids"]
    k, found_gap = first_mention(tok, ids, NAMES)
    assert tok.decode(ids[:k]) == before and found_gap == gap


@pytest.mark.parametrize(
    ("turn", "names"),
    [
        ("<think>Ask.</think>\n<search>", NAMES),  # named only after <search>
        ("<think>Ask.</think>\n<search>fake-small: q</search>", NAMES),  # not before the <search>
        ("<think>fake-large knows.</think>\n<search>", ["fake-large", "fake-large-2"]),  # prefix names
    ],
)
def test_no_think_decision_without_an_unambiguous_name_before_search(turn, names):
    tok = tiny_tokenizer()
    assert first_mention(tok, tok(turn, add_special_tokens=False)["input_ids"], names) is None


@pytest.fixture(scope="module")
def taught_to_name_in_think():
    tok = tiny_tokenizer()
    model = tiny_model(tok, seed=2)
    contexts = [
        tok(f"<|user|>{i} plus {i + 3}?<|assistant|>", add_special_tokens=False)["input_ids"]
        for i in range(16)
    ]
    torch.manual_seed(0)
    _teach_short(tok, model, contexts, steps=80, think="{name} knows.")
    return tok, model, contexts


def test_a_router_that_names_its_choice_in_the_think_is_calibrated_there(taught_to_name_in_think):
    tok, model, contexts = taught_to_name_in_think
    own = CalibratedTurns(model, tok, NAMES, [0.0, 0.0])
    log_probs, routed = first_choice_log_probs(own, contexts, 40)
    assert routed.all() and set(own.last_points.values()) == {"think"}
    for share in (0.25, 0.75):
        offsets = fit_share_offsets(log_probs, 1, share)
        texts = [tok.decode(t.ids) for t in CalibratedTurns(model, tok, NAMES, offsets)(contexts, [40] * 16)]
        assert sum("<search>fake-large:" in t for t in texts) == round(16 * share)
        for text in texts:  # the think names the candidate the turn then asks, in every turn
            name = "fake-large" if "<search>fake-large:" in text else "fake-small"
            assert text.startswith(f"<think>{name} knows.</think>") and text.endswith("</search>")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """An LLM run (config + router/) whose router writes routing turns."""
    tmp = tmp_path_factory.mktemp("llm-calibration")
    cfg = _compose(
        "config", ["experiment=router_r1_tiny", *tiny_data_overrides(tmp), "trainer.max_turn_tokens=40"]
    )
    run = tmp / "run"
    run.mkdir()
    OmegaConf.save(cfg, run / "config.yaml", resolve=True)
    tok = tiny_tokenizer()
    tiny_model(tok, seed=1).save_pretrained(run / "router")
    tok.save_pretrained(run / "router")
    router = load_router(run)
    torch.manual_seed(0)
    _teach_the_protocol(router)
    router.model.save_pretrained(run / "router")
    (tmp / "prompts.jsonl").write_text("".join(json.dumps({"prompt": q}) + "\n" for q in QUERIES))
    return run


def test_names_that_tokenise_alike_are_refused():
    with pytest.raises(ValueError, match="tokenise alike"):
        name_ids(tiny_tokenizer(), ["fake-small", "fake-small"])


@pytest.mark.slow
def test_zero_offsets_keep_the_routers_own_choice(run_dir):
    router = load_router(run_dir)
    assert router.calibration is None
    raw = router.route(QUERIES)
    assert set(raw) <= set(router.model_names)  # the taught router routes every query
    generate = CalibratedTurns(router.model, router.tokenizer, router.model_names, [0.0, 0.0])
    contexts = [chat_prompt_ids(router.tokenizer, router.prompt(q)) for q in QUERIES]
    log_probs, routed = first_choice_log_probs(generate, contexts, router.protocol.max_turn_tokens)
    assert routed.all() and log_probs.shape == (len(QUERIES), 2)
    assert np.allclose(np.exp(log_probs).sum(axis=1), 1.0)  # renormalised over the two names
    chosen = [router.model_names[j] for j in log_probs.argmax(axis=1)]
    assert chosen == raw  # greedy decoding and the explicit choice agree at zero offsets


@pytest.mark.slow
def test_calibrate_moves_the_share_and_route_eval_export_honour_it(run_dir, tmp_path):
    prompts = run_dir.parent / "prompts.jsonl"
    for share in (0.25, 0.75):
        calibration = run_calibrate(
            _compose("calibrate", [f"checkpoint={run_dir}", f"target.share={share}", f"prompts={prompts}"])
        )
        assert calibration.target == {"share": share, "model": "fake-large"}  # the pricier candidate
        assert calibration.achieved["route_share"]["fake-large"] == pytest.approx(share)
        assert "16 first turns routed" in calibration.fitted_on["source"]
        router = load_router(run_dir)
        assert router.calibration == calibration  # attached on load: fitted for these weights
        routes = router.route(QUERIES)
        assert routes.count("fake-large") == round(share * len(QUERIES))
    report = run_eval(_compose("eval", [f"checkpoint={run_dir}", f"out_dir={tmp_path / 'eval'}"]))
    assert report["router"]["target"] == {"share": 0.75, "model": "fake-large"}
    assert report["meta"]["calibration"]["offsets"] == calibration.offsets
    raw = run_eval(
        _compose("eval", [f"checkpoint={run_dir}", f"out_dir={tmp_path / 'eval'}", "calibration=false"])
    )
    assert raw["router"]["target"] is None and raw["meta"]["resumed_rows"] == 6  # the singles' rows only
    out = export_router(run_dir, "alice/calibrated", tmp_path / "export")
    assert (out / CALIBRATION).is_file()
    assert load_router(out).route(QUERIES) == routes
    (run_dir / CALIBRATION).unlink()


def test_cost_targets_are_refused_for_llm_routers_before_loading(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    OmegaConf.save(_compose("config", ["experiment=router_r1_tiny"]), run / "config.yaml")
    with pytest.raises(ValueError, match="LLM router: it takes share targets"):
        run_calibrate(_compose("calibrate", [f"checkpoint={run}", "target.cost_per_query=0.001"]))
