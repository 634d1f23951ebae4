"""The shared run helper: resumed configs keep what was trained, rows a resume redoes are trimmed."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from rl_router.run import portable_config, resumed_config, trim_jsonl


def recorded_of(compose, overrides):
    return OmegaConf.create(OmegaConf.to_container(compose(overrides), resolve=False))


def test_resume_keeps_the_recorded_experiment_and_logger(compose, tmp_path):
    recorded = recorded_of(compose, ["experiment=local_pool", "logger=none"])
    # `train resume=<run>` composes the default experiment (wandb logger, replay pool) ...
    composed = compose([f"resume={tmp_path}"])
    cfg = resumed_config(composed, recorded, [f"resume={tmp_path}"])
    # ... but the run continues on what it recorded
    assert cfg.logger._target_ == "rl_router.loggers.NullLogger"
    assert cfg.pool == recorded.pool and cfg.data == recorded.data and cfg.name == "local_pool"
    assert cfg.resume == str(tmp_path)


def test_resume_accepts_harmless_overrides(compose, tmp_path):
    recorded = recorded_of(compose, ["logger=none"])
    overrides = [f"resume={tmp_path}", "logger=wandb", "logger.mode=disabled", "trainer.total_steps=40000"]
    cfg = resumed_config(compose(overrides), recorded, overrides)
    assert cfg.logger._target_ == "rl_router.loggers.WandbLogger" and cfg.logger.mode == "disabled"
    assert cfg.trainer.total_steps == 40000 and cfg.trainer.lr == recorded.trainer.lr


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.lr=0.5", "trainer.lr"),
        ("env.alpha=0.9", "env.alpha"),
        ("data.limit=50", "data.limit"),
        ("seed=3", "seed"),
        ("experiment=local_pool", "pool."),
    ],
)
def test_resume_refuses_overrides_that_change_what_was_trained(compose, tmp_path, override, key):
    recorded = recorded_of(compose, [])
    overrides = [f"resume={tmp_path}", override]
    with pytest.raises(ValueError, match=rf"resume: the overrides change .*{key}") as err:
        resumed_config(compose(overrides), recorded, overrides)
    assert "recorded" in str(err.value) and "requested" in str(err.value)


def test_trim_jsonl_drops_rows_after_the_step_and_keeps_what_keep_says(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": 1}, {"step": 2}, {"step": 3, "sft/loss": 0.5}, {"step": 4}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    trim_jsonl(path, 2, keep=lambda row: "sft/loss" in row)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3]


def test_portable_config_keeps_environment_variables_unresolved(monkeypatch):
    monkeypatch.setenv("RLR_TEST_URL", "http://10.1.2.3:9999/v1")
    cfg = OmegaConf.create({"seed": 3, "trainer": {"seed": "${seed}"}, "url": "${oc.env:RLR_TEST_URL}"})
    out = portable_config(cfg)
    assert out == {"seed": 3, "trainer": {"seed": 3}, "url": "${oc.env:RLR_TEST_URL}"}
    assert "10.1.2.3" not in json.dumps(out)
