"""`rl-router export`: the Hub folder of a tiny trained run, its card, the push guard, and load-back."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file

from rl_router import __version__, load_router
from rl_router.checkpoint import latest_checkpoint
from rl_router.data.routellm import load_routing_splits
from rl_router.hub import NO_TOKEN, export_router, run_export

TINY = ["debug=tiny", "data.limit=300", "trainer.total_steps=256", "trainer.checkpoint_every=128"]
REPO_ID = "alice/tiny-router"
FOLDER_FILES = {
    "model.safetensors",
    "router_config.json",
    "pool.json",
    "README.md",
    "report.json",
    "report.md",
    "pareto.png",
}
PICKLE_SUFFIXES = {".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt"}


def compose(config_name: str, overrides: list[str]):
    from rl_router.cli import compose_config

    return compose_config(config_name, overrides)


def _no_network(*args, **kwargs):
    raise AssertionError("export without push=true opened a network connection")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny trained run and its export (default out_dir), written with sockets disabled."""
    from rl_router.recipes.policy_router_ppo import train as train_in

    run_dir = tmp_path_factory.mktemp("run")
    train_in(compose("config", TINY), run_dir, progress=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _no_network)
        folder = run_export(compose("export", [f"checkpoint={run_dir}", f"repo_id={REPO_ID}"]))
    return run_dir, folder


def held_out_prompts() -> list[str]:
    test = load_routing_splits(test_fraction=0.3, split_seed=0, limit=300).test
    return test.prompts


def test_export_writes_the_hub_folder_without_pickles(exported):
    run_dir, folder = exported
    assert folder == run_dir / "export" / "tiny-router"
    names = {p.name for p in folder.iterdir()}
    assert names == FOLDER_FILES
    assert not {Path(n).suffix for n in names} & PICKLE_SUFFIXES
    for name in names - {"model.safetensors", "pareto.png"}:
        assert not (folder / name).read_bytes().startswith(b"\x80"), f"{name} looks like a pickle"
    # nothing else was left beside it (no temporary directory, no Hydra log)
    assert [p.name for p in (run_dir / "export").iterdir()] == ["tiny-router"]


def test_weights_are_the_newest_checkpoint_tensors(exported):
    run_dir, folder = exported
    latest = latest_checkpoint(run_dir)
    assert latest.name == "step_0000000256"
    exported_weights = load_file(str(folder / "model.safetensors"))
    checkpoint_weights = load_file(str(latest / "policy.safetensors"))
    assert exported_weights.keys() == checkpoint_weights.keys()
    assert len(exported_weights) > 0
    for key, tensor in checkpoint_weights.items():
        assert torch.equal(exported_weights[key], tensor), key
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        assert f.metadata() == {"format": "pt"}


def test_router_config_and_pool_describe_the_policy_router(exported):
    run_dir, folder = exported
    config = json.loads((folder / "router_config.json").read_text())
    assert config["router_kind"] == "policy"
    assert config["rl_router_version"] == __version__
    assert config["policy"]["_target_"] == "rl_router.policies.router_policy.RouterPolicy"
    assert config["policy"]["query_hidden"] == [256]
    assert config["embedding_model"] == {"name": "sentence-transformers/all-MiniLM-L6-v2", "dim": 384}
    assert config["observation"]["dim"] == 384 + 3 * 2
    parts = config["observation"]["parts"]
    assert [(part["name"], part["size"]) for part in parts] == [
        ("query_embedding", 384),
        ("descriptor_features", 6),
    ]
    assert config["prompt_template"] is None
    assert "not applicable" in config["prompt_template_note"]
    assert config["action_names"] == ["mixtral-8x7b", "gpt-4"]
    assert config["training"]["global_step"] == 256
    assert config["training"]["env"]["alpha"] == 0.2  # the default experiment's cost weight

    pool = json.loads((folder / "pool.json").read_text())
    assert [c["name"] for c in pool] == ["mixtral-8x7b", "gpt-4"]
    assert [c["model"] for c in pool] == ["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"]
    assert [(c["price_in"], c["price_out"]) for c in pool] == [(0.24, 0.24), (24.7, 24.7)]
    assert pool[0]["params_b"] == 46.7
    assert pool[0]["description"].startswith("Open mixture-of-experts model")
    assert pool[0]["sampling"] == {"temperature": 0.0, "max_tokens": 512, "top_p": 1.0, "seed": 0}


def test_report_is_copied_and_its_table_is_in_the_card(exported):
    run_dir, folder = exported
    published, own = (json.loads((d / "report.json").read_text()) for d in (folder, run_dir))
    assert published["meta"]["checkpoint"] == Path(own["meta"]["checkpoint"]).name  # no local path
    assert {**published, "meta": own["meta"]} == own
    assert (folder / "pareto.png").read_bytes() == (run_dir / "pareto.png").read_bytes()
    card = (folder / "README.md").read_text()
    table_rows = [line for line in (run_dir / "report.md").read_text().splitlines() if line.startswith("|")]
    assert len(table_rows) > 6
    for row in table_rows:
        assert row in card
    router = json.loads((run_dir / "report.json").read_text())["overall"]["router"]
    assert f"| router | {router['accuracy']:.4f} | {router['dollars_per_query']:.6f} |" in card
    assert "![accuracy vs cost](pareto.png)" in card


def test_card_has_front_matter_candidates_and_usage(exported):
    _, folder = exported
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n")
    front, body = card[4:].split("\n---\n", 1)
    meta = yaml.safe_load(front)
    assert meta == {
        "library_name": "rl-router",
        "license": "apache-2.0",
        "tags": ["router", "reinforcement-learning", "ppo", "llm-routing"],
        "datasets": ["routellm"],
    }
    assert "| 0 | mixtral-8x7b | mistralai/Mixtral-8x7B-Instruct-v0.1 | 46.7 | 0.24 | 0.24 |" in body
    assert "| 1 | gpt-4 | gpt-4-1106-preview | n/a | 24.7 | 24.7 |" in body
    assert "from rl_router import load_router" in body
    assert f'router = load_router("{REPO_ID}")' in body
    assert "alpha = 0.2" in body


def test_loaded_folder_decides_exactly_like_the_run(exported):
    run_dir, folder = exported
    from_run, from_folder = load_router(run_dir), load_router(folder)
    assert from_folder.descriptors == from_run.descriptors
    assert from_folder.checkpoint == folder
    prompts = held_out_prompts()
    emb = from_run.embed(prompts)
    probs_run, probs_folder = from_run.probs(emb), from_folder.probs(emb)
    assert probs_run.shape == (len(prompts), 2)
    assert np.array_equal(probs_run, probs_folder)
    assert from_folder.route(prompts[:5]) == from_run.route(prompts[:5])


def test_push_without_token_stops_before_writing(exported, monkeypatch, tmp_path):
    run_dir, _ = exported
    monkeypatch.delenv("HF_TOKEN", raising=False)
    out = tmp_path / "never"
    cfg = compose("export", [f"checkpoint={run_dir}", f"repo_id={REPO_ID}", "push=true", f"out_dir={out}"])
    with pytest.raises(SystemExit) as err:
        run_export(cfg)
    assert str(err.value) == NO_TOKEN
    assert "HF_TOKEN" in NO_TOKEN and "nothing was written" in NO_TOKEN
    assert not out.exists()


def test_cli_push_without_token_exits_with_the_message_and_writes_nothing(exported, tmp_path):
    run_dir, _ = exported
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    code = "from rl_router.cli import main; main()"
    args = ["export", f"checkpoint={run_dir}", "repo_id=alice/never-pushed", "push=true"]
    cmd = [sys.executable, "-c", code, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 1
    assert NO_TOKEN in proc.stderr
    assert not (run_dir / "export" / "never-pushed").exists()
    assert list(tmp_path.iterdir()) == []  # Hydra wrote no log or output directory either


class FakeHubApi:
    """Records the calls a push makes (no network)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id, *, repo_type=None, private=None, exist_ok=False):
        options = {"repo_id": repo_id, "repo_type": repo_type, "private": private, "exist_ok": exist_ok}
        self.calls.append(("create_repo", options))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, repo_type=None, commit_message=None):
        files = sorted(p.name for p in Path(folder_path).iterdir())
        self.calls.append(("upload_folder", {"repo_id": repo_id, "files": files, "repo_type": repo_type}))


def test_push_creates_the_repo_and_uploads_the_folder_keeping_the_token_out(
    exported, monkeypatch, tmp_path, capsys
):
    run_dir, _ = exported
    secret = "hf_test_secret_0123456789"
    monkeypatch.setenv("HF_TOKEN", secret)
    api = FakeHubApi()
    out = tmp_path / "pushed"
    cfg = compose("export", [f"checkpoint={run_dir}", f"repo_id={REPO_ID}", "push=true", f"out_dir={out}"])
    assert run_export(cfg, api=api) == out
    assert api.calls == [
        ("create_repo", {"repo_id": REPO_ID, "repo_type": "model", "private": False, "exist_ok": True}),
        ("upload_folder", {"repo_id": REPO_ID, "files": sorted(FOLDER_FILES), "repo_type": "model"}),
    ]
    assert all(secret.encode() not in p.read_bytes() for p in out.iterdir())
    printed = capsys.readouterr()
    assert secret not in printed.out + printed.err
    assert f"pushed to https://huggingface.co/{REPO_ID}" in printed.out


def test_re_export_replaces_an_export_but_never_a_foreign_directory(exported, tmp_path):
    run_dir, _ = exported
    out = tmp_path / "again"
    export_router(run_dir, REPO_ID, out)
    (out / "stale.txt").write_text("from an older export")
    export_router(run_dir, REPO_ID, out)
    assert {p.name for p in out.iterdir()} == FOLDER_FILES
    assert [p.name for p in tmp_path.iterdir()] == ["again"]  # no temporary directory left

    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an rl-router export"):
        export_router(run_dir, REPO_ID, foreign)
    assert (foreign / "mine.txt").read_text() == "keep me"


def test_bad_repo_id_fails_naming_the_field(tmp_path):
    from rl_router.config import typed

    cfg = compose("export", [f"checkpoint={tmp_path}", "repo_id=no-slash"])
    with pytest.raises(ValueError, match=r"repo_id='no-slash': use <user>/<name>"):
        typed(cfg)


def test_export_of_a_directory_without_a_run_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="must be a run directory"):
        export_router(tmp_path, REPO_ID, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_eval_reads_an_exported_policy_folder_like_its_run(exported, tmp_path):
    from rl_router.eval.run import run_eval

    run_dir, folder = exported
    from_run = run_eval(compose("eval", [f"checkpoint={run_dir}", f"out_dir={tmp_path / 'run'}"]))
    from_folder = run_eval(compose("eval", [f"checkpoint={folder}", f"out_dir={tmp_path / 'folder'}"]))
    # the folder's router_config.json records the data option, so both evaluate the same held-out rows
    assert from_folder["meta"]["rows"] == from_run["meta"]["rows"] > 0
    assert from_folder["overall"] == from_run["overall"]
    assert (tmp_path / "folder" / "report.md").read_text().splitlines()[1:] == (
        tmp_path / "run" / "report.md"
    ).read_text().splitlines()[1:]


def test_a_policy_checkpoint_folder_evaluates_and_exports_as_itself(exported, tmp_path):
    from rl_router.eval.run import run_eval

    run_dir, _ = exported
    older = run_dir / "checkpoints" / "step_0000000128"
    router = load_router(older)
    assert router.checkpoint == older
    assert not np.array_equal(
        router.probs(np.eye(2, router.query_dim, dtype=np.float32)),
        load_router(run_dir).probs(np.eye(2, router.query_dim, dtype=np.float32)),
    )  # the older weights, not the newest
    report = run_eval(compose("eval", [f"checkpoint={older}", f"out_dir={tmp_path / 'eval'}"]))
    assert Path(report["meta"]["checkpoint"]).name == "step_0000000128" and report["meta"]["rows"] > 0
    folder = export_router(older, REPO_ID, tmp_path / "export")
    exported_weights = load_file(str(folder / "model.safetensors"))
    for name, tensor in load_file(str(older / "policy.safetensors")).items():
        assert torch.equal(exported_weights[name], tensor)


def test_card_keeps_the_training_evaluation_and_labels_later_ones(exported, tmp_path):
    from rl_router.eval.run import run_eval

    run_dir, _ = exported
    later = ["data=routellm", "data.benchmarks=[mmlu]", "data.limit=60", "split=all"]
    run_eval(compose("eval", [f"checkpoint={run_dir}", f"out_dir={run_dir / 'eval_mmlu'}", *later]))
    folder = export_router(run_dir, REPO_ID, tmp_path / "export")
    card = (folder / "README.md").read_text()
    training = card.index("### Held-out split of the training data, scored by training (routellm/gsm8k+mmlu,")
    other = card.index("### `rl-router eval` on routellm/mmlu, 60 rows")
    assert training < other
    # each section holds its own report's table
    train_md = (run_dir / "report.md").read_text().splitlines()
    later_md = (run_dir / "eval_mmlu" / "report.md").read_text().splitlines()
    assert train_md[2] in card[training:other] and later_md[2] in card[other:]
    assert (folder / "report.md").read_text() == (run_dir / "report.md").read_text()
    assert (folder / "evals" / "eval_mmlu" / "report.md").is_file()
