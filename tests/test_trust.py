"""Loading what others shared is data-only: tampered folders run nothing, send no key, leak no path."""

from __future__ import annotations

import json
import shutil

import pytest
from omegaconf import OmegaConf

from rl_router import load_router
from rl_router.hub import REMOVED_ENDPOINT, REMOVED_PATH, export_router, portable_training
from rl_router.trust import ALLOWED_TARGETS, UntrustedConfigError, check_recorded

TINY = ["debug=tiny", "data.limit=200", "trainer.total_steps=64", "trainer.checkpoint_every=64"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny policy run and its export."""
    from hydra import compose, initialize_config_dir

    from rl_router.cli import conf_dir
    from rl_router.recipes.policy_router_ppo import train
    from rl_router.registry import register_configs

    register_configs()
    run = tmp_path_factory.mktemp("run")
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        train(compose(config_name="config", overrides=TINY), run, progress=False)
    folder = export_router(run, "alice/tiny", tmp_path_factory.mktemp("export") / "tiny")
    return run, folder


def tampered_copy(folder, tmp_path, edit):
    copy = tmp_path / "tampered"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "router_config.json").read_text())
    edit(config)
    (copy / "router_config.json").write_text(json.dumps(config))
    return copy


def evaluate(compose, checkpoint, tmp_path, *extra):
    from rl_router.eval.run import run_eval

    return run_eval(compose([f"checkpoint={checkpoint}", f"out_dir={tmp_path / 'eval'}", *extra], "eval"))


def test_a_data_target_that_deletes_a_file_is_refused_and_deletes_nothing(trained, compose, tmp_path):
    _, folder = trained
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    payload = {"_target_": "pathlib.Path.unlink", "_args_": [str(victim)]}
    copy = tampered_copy(folder, tmp_path, lambda c: c["training"].update(data=payload))
    with pytest.raises(UntrustedConfigError, match=r"data\._target_='pathlib.Path.unlink' is not one of"):
        evaluate(compose, copy, tmp_path)
    assert victim.read_text() == "keep me"


def test_a_callable_hidden_in_a_mixture_part_is_refused_before_it_runs(trained, compose, tmp_path, capsys):
    _, folder = trained
    data = {
        "_target_": "rl_router.data.mixture.load_qa_splits",
        "parts": [{"_target_": "builtins.print", "_args_": ["pwned"]}],
    }
    copy = tampered_copy(folder, tmp_path, lambda c: c["training"].update(data=data))
    with pytest.raises(UntrustedConfigError, match=r"data\.parts\.0\._target_='builtins.print'"):
        evaluate(compose, copy, tmp_path)
    assert "pwned" not in capsys.readouterr().out


def test_a_run_whose_policy_names_other_code_is_refused(trained, tmp_path):
    run, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    cfg = OmegaConf.load(copy / "config.yaml")
    cfg.policy._target_ = "builtins.exec"
    OmegaConf.save(cfg, copy / "config.yaml")
    with pytest.raises(UntrustedConfigError, match=r"policy\._target_='builtins.exec'"):
        load_router(copy)


def test_a_recorded_pool_that_would_send_a_key_elsewhere_is_not_used(
    trained, compose, tmp_path, openai_server, monkeypatch
):
    _, folder = trained
    monkeypatch.setenv("RLR_SECRET_KEY", "sk-test-not-to-be-sent")
    pool = {
        "_target_": "rl_router.pool.build.build_pool",
        "models": [
            {"name": "echo", "backend": "openai", "model": "echo",
             "openai": {"base_url": openai_server.url, "api_key_env": "RLR_SECRET_KEY"}},
        ],
    }  # fmt: skip
    copy = tampered_copy(folder, tmp_path, lambda c: c["training"].update(pool=pool))
    with pytest.raises(UntrustedConfigError, match=r"would send \$RLR_SECRET_KEY to http://127\.0\.0\.1"):
        evaluate(compose, copy, tmp_path)
    assert openai_server.auth == [] and sum(openai_server.calls.values()) == 0


def test_the_refused_pool_message_names_both_ways_on():
    from rl_router.trust import check_recorded_pool

    pool = {"models": [{"name": "m", "openai": {"base_url": "https://evil.example/v1", "api_key_env": "K"}}]}
    with pytest.raises(UntrustedConfigError, match="give pool=<option> .* trust_recorded_pool=true"):
        check_recorded_pool(pool, "pool", "router_config.json")
    # the user's own endpoint (an env interpolation) and OpenAI's default endpoint are fine
    own = {"models": [{"name": "m", "openai": {"base_url": "${oc.env:MY_URL}", "api_key_env": "K"}}]}
    default = {
        "models": [{"name": "m", "openai": {"base_url": "https://api.openai.com/v1", "api_key_env": "K"}}]
    }
    check_recorded_pool(own, "pool", "x")
    check_recorded_pool(default, "pool", "x")


def test_every_schema_target_is_allowed():
    """The allowlist is not stale: every option's own _target_ loads from a shared folder."""
    from rl_router.registry import schemas

    for group, _, schema in schemas():
        target = getattr(schema, "_target_", None)
        if group is not None and isinstance(target, str):
            check_recorded({"_target_": target}, group, f"the {group} schema {schema.__name__}")
    assert set(ALLOWED_TARGETS) >= {"data", "pool", "policy", "env"}


def test_exports_hold_no_endpoint_and_no_local_path(compose, monkeypatch, tmp_path):
    monkeypatch.setenv("ROUTER_R1_BASE_URL", "http://10.9.8.7:1234/v1")
    cfg = compose(["experiment=router_r1", "pool=router_r1_api", f"data.local_dir={tmp_path}"])
    training = portable_training(cfg, ("pool", "data", "trainer", "env"))
    text = json.dumps(training)
    assert "10.9.8.7" not in text and str(tmp_path) not in text and "cache_dir" not in text
    urls = {m["openai"]["base_url"] for m in training["pool"]["models"]}
    assert urls == {"${oc.env:ROUTER_R1_BASE_URL,http://127.0.0.1:8000/v1}"}  # the loader's env fills it
    assert training["data"]["local_dir"] == REMOVED_PATH
    literal = OmegaConf.merge(
        cfg, {"pool": {"models": [{**cfg.pool.models[0], "openai": {"base_url": "http://h:1/v1"}}]}}
    )
    assert (
        portable_training(literal, ("pool",))["pool"]["models"][0]["openai"]["base_url"] == REMOVED_ENDPOINT
    )


def test_an_exported_folder_publishes_no_local_path(trained):
    run, folder = trained
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".md"):
            assert str(run) not in path.read_text(), f"{path.name} names the run's local directory"
