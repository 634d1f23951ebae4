"""LLM routers: loading a run, exporting it for the Hub, loading it back, and `rl-router eval` on both."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from grpo_helpers import ROWS, tiny_data_overrides, tiny_model, tiny_tokenizer
from omegaconf import OmegaConf

from rl_router import load_router
from rl_router.eval.run import run_eval
from rl_router.hub import PROBE_QUERIES, export_router
from rl_router.routers.llm import ANSWERS_ITSELF, INVALID_TURN, LLMRouter, router_model_dir

REPO_ID = "alice/tiny-llm-router"
PICKLE_MAGIC = b"\x80"  # every pickle protocol >= 2 starts with PROTO


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory as `rl-router train experiment=router_r1_tiny` leaves it: config and router/."""
    from hydra import compose, initialize_config_dir

    from rl_router.cli import conf_dir
    from rl_router.registry import register_configs

    tmp = tmp_path_factory.mktemp("llm-run")
    overrides = [
        "experiment=router_r1_tiny",
        *tiny_data_overrides(tmp),
        "trainer.max_turn_tokens=12",
        "trainer.max_completion_tokens=96",
    ]
    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    run = tmp / "run"
    run.mkdir()
    OmegaConf.save(cfg, run / "config.yaml", resolve=True)
    tok = tiny_tokenizer()
    for folder, seed in (("router", 3), ("sft_model", 5)):  # the trained router and its warm start
        tiny_model(tok, seed=seed).save_pretrained(run / folder)
        tok.save_pretrained(run / folder)
    return run


def test_a_run_loads_as_an_llm_router(run_dir):
    router = load_router(run_dir)
    assert isinstance(router, LLMRouter) and router.kind == "llm"
    assert router.model_names == ["fake-small", "fake-large"]
    assert (router.protocol.max_routes, router.protocol.max_turn_tokens, router.protocol.outcome) == (
        2,
        12,
        "reply",
    )
    routes = router.route(list(PROBE_QUERIES))
    assert len(routes) == 4 and all(r in (*router.model_names, ANSWERS_ITSELF, INVALID_TURN) for r in routes)
    turns = router.first_turns(list(PROBE_QUERIES))
    assert turns == router.first_turns(list(PROBE_QUERIES))  # greedy: the same every time
    assert all(len(t) <= 12 * 16 for t in turns)  # 12 new tokens at most (a token is <= 16 chars here)


def test_the_newest_trl_checkpoint_stands_in_for_a_missing_router(tmp_path):
    for step in (2, 10, 9):
        (tmp_path / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
        (tmp_path / "checkpoints" / f"checkpoint-{step}" / "config.json").write_text("{}")
    assert router_model_dir(tmp_path).name == "checkpoint-10"  # numeric order, not text order
    (tmp_path / "router").mkdir()
    (tmp_path / "router" / "config.json").write_text("{}")
    assert router_model_dir(tmp_path).name == "router"
    with pytest.raises(FileNotFoundError, match=r"holds no trained LLM router"):
        router_model_dir(tmp_path / "nothing")


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    return export_router(run_dir, REPO_ID, tmp_path_factory.mktemp("export") / "tiny-llm-router")


def test_the_export_is_a_transformers_folder_without_pickles(exported):
    names = {p.name for p in exported.iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "router_config.json",
        "pool.json",
        "README.md",
    } <= names
    for path in exported.iterdir():
        assert not path.read_bytes().startswith(PICKLE_MAGIC), f"{path.name} is a pickle"
        assert path.suffix not in {".bin", ".pt", ".pth", ".pkl", ".ckpt"}
    config = json.loads((exported / "router_config.json").read_text())
    assert config["router_kind"] == "llm"
    assert config["protocol"]["max_routes"] == 2 and "{question}" in config["prompt_template"]
    assert config["training"]["pool"]["models"][0]["name"] == "fake-small"
    assert [d["name"] for d in json.loads((exported / "pool.json").read_text())] == [
        "fake-small",
        "fake-large",
    ]
    card = (exported / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "transformers" and "grpo" in meta["tags"]
    assert "| fake-small | " in card and "AutoModelForCausalLM.from_pretrained" in card


def test_the_export_decides_like_the_run_and_loads_in_plain_transformers(run_dir, exported):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run, back = load_router(run_dir), load_router(exported)
    queries = [*PROBE_QUERIES, *(r["question"] for r in ROWS)]
    assert back.first_turns(queries) == run.first_turns(queries)
    assert back.route(queries) == run.route(queries)
    model = AutoModelForCausalLM.from_pretrained(exported)
    tok = AutoTokenizer.from_pretrained(exported)
    ids = torch.tensor([tok("What is the capital of Peru?")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, run.model(ids).logits)


def eval_config(checkpoint, out_dir, *extra):
    from hydra import compose, initialize_config_dir

    from rl_router.cli import conf_dir
    from rl_router.registry import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(
            config_name="eval", overrides=[f"checkpoint={checkpoint}", f"out_dir={out_dir}", *extra]
        )


def local_data(run_dir) -> list[str]:
    """The run's data file, named again: an export publishes no local path, so eval needs it given."""
    return ["data=qa_local", f"data.path={run_dir.parent / 'qa.jsonl'}"]


def test_eval_of_an_export_trained_on_a_local_file_asks_for_the_data(exported, tmp_path):
    with pytest.raises(Exception, match="local path removed on export"):
        run_eval(eval_config(exported, tmp_path / "eval"))


def test_eval_runs_on_the_run_and_on_its_export_alike(run_dir, exported, tmp_path):
    from_run = run_eval(eval_config(run_dir, tmp_path / "run-eval"))
    from_export = run_eval(eval_config(exported, tmp_path / "export-eval", *local_data(run_dir)))
    assert from_run["router"]["questions"] == 3  # the recorded eval_data: the three rows
    assert from_run["single"]["fake-small"]["accuracy"] == pytest.approx(
        1 / 3
    )  # the recorded pool knows Paris
    assert from_export["policies"] == from_run["policies"]
    again = run_eval(eval_config(exported, tmp_path / "export-eval", *local_data(run_dir)))
    assert again["meta"]["resumed_rows"] == 9


def test_eval_takes_another_pool_and_data_and_a_limit(exported, tmp_path):
    data = tmp_path / "more.jsonl"
    data.write_text("".join(json.dumps({**r, "id": f"x/{i}"}) + "\n" for i, r in enumerate(ROWS * 2)))
    extra = [
        "pool=fake",
        "pool.models.0.fake.answers=[Lima]",
        "data=qa_local",
        f"data.path={data}",
        "limit=4",
    ]
    report = run_eval(eval_config(exported, tmp_path / "eval", *extra))
    assert report["router"]["questions"] == 4
    assert report["single"]["fake-small"]["accuracy"] == pytest.approx(1 / 4)  # Peru, once in the first 4


def test_eval_refuses_a_pool_with_other_candidates(run_dir, exported, tmp_path):
    extra = ["pool=fake", "pool.models.0.name=other-small", *local_data(run_dir)]
    with pytest.raises(ValueError, match=r"trained to route between \['fake-small', 'fake-large'\]"):
        run_eval(eval_config(exported, tmp_path / "eval", *extra))


def test_one_model_folder_of_a_run_loads_evaluates_and_exports(run_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    warm = load_router(run_dir / "sft_model")
    assert isinstance(warm, LLMRouter) and warm.checkpoint == run_dir / "sft_model"
    assert warm.model_names == ["fake-small", "fake-large"]  # the run's pool and protocol
    ids = torch.tensor([warm.tokenizer("What is 17 + 25?")["input_ids"]])
    plain = AutoModelForCausalLM.from_pretrained(run_dir / "sft_model")
    with torch.no_grad():
        assert torch.equal(warm.model(ids).logits, plain(ids).logits)
        assert not torch.equal(warm.model(ids).logits, load_router(run_dir).model(ids).logits)  # not router/
    report = run_eval(eval_config(run_dir / "sft_model", tmp_path / "eval"))
    assert report["meta"]["checkpoint"] == str((run_dir / "sft_model").resolve())
    folder = export_router(run_dir / "sft_model", "alice/warm-start", tmp_path / "export")
    assert json.loads((folder / "router_config.json").read_text())["training"]["checkpoint"] == "sft_model"
    assert load_router(folder).first_turns(list(PROBE_QUERIES)) == warm.first_turns(list(PROBE_QUERIES))


def test_a_model_folder_outside_any_run_is_refused_clearly(tmp_path):
    tok = tiny_tokenizer()
    tiny_model(tok).save_pretrained(tmp_path / "loose")
    with pytest.raises(FileNotFoundError, match=r"neither a run directory"):
        load_router(tmp_path / "loose")


def test_eval_scores_with_another_outcome_when_asked(run_dir, exported, tmp_path):
    # trained with outcome=reply ("the answer a sentence states"); exact match is stricter
    report = run_eval(eval_config(exported, tmp_path / "eval", "outcome=em", *local_data(run_dir)))
    assert report["meta"]["outcome"] == "em"
    assert report["single"]["fake-small"]["accuracy"] == pytest.approx(1 / 3)  # "Paris" is exact
    # the same out_dir with the training outcome: every row is scored again under it, none reused
    again = run_eval(eval_config(exported, tmp_path / "eval", *local_data(run_dir)))
    assert again["meta"]["outcome"] == "reply" and again["meta"]["resumed_rows"] == 0


@pytest.mark.parametrize("which", ["run", "model folder", "export"])
def test_calibrate_refuses_a_cost_target_for_an_llm_router(run_dir, exported, which, compose):
    """LLM routers take share targets (tests/routers/test_llm_calibration.py); a cost target stops."""
    from rl_router.eval.calibrate import run_calibrate

    checkpoint = {"run": run_dir, "model folder": run_dir / "sft_model", "export": exported}[which]
    cfg = compose([f"checkpoint={checkpoint}", "target.cost_per_query=0.001"], config_name="calibrate")
    with pytest.raises(ValueError, match=r"is an LLM router: it takes share targets"):
        run_calibrate(cfg)
    assert not (run_dir / "calibration.json").exists() and not (exported / "calibration.json").exists()
