"""`load_router`: run directories, exported folders and repo ids, and what it refuses to load.

A run directory is made without training (composed config + a checkpoint of a freshly built
policy), so these tests take seconds; `tests/test_hub.py` covers a trained run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from rl_router import load_router
from rl_router.checkpoint import save_checkpoint
from rl_router.hub import export_router
from rl_router.routers.load import load_exported
from rl_router.routers.policy import build_policy, descriptor_dict, descriptor_from_dict, pool_descriptors
from rl_router.run import RUN_CONFIG


@pytest.fixture
def run_dir(compose, tmp_path):
    """A run directory holding the default config and a step-64 checkpoint of random weights."""
    cfg = compose(["debug=tiny"])
    run = tmp_path / "run"
    run.mkdir()
    OmegaConf.save(cfg, run / RUN_CONFIG, resolve=True)
    torch.manual_seed(0)
    policy = build_policy(cfg.policy, pool_descriptors(cfg.pool))
    save_checkpoint(run, 64, policy, torch.optim.Adam(policy.parameters()), {"global_step": 64})
    return run


def probe(n: int = 32) -> np.ndarray:
    x = np.random.default_rng(1).standard_normal((n, 384)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_run_directory_loads_its_newest_checkpoint(run_dir):
    router = load_router(run_dir)
    assert router.model_names == ["mixtral-8x7b", "gpt-4"]
    assert router.checkpoint == run_dir / "checkpoints" / "step_0000000064"
    probs = router.probs(probe())
    assert probs.shape == (32, 2)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_exported_folder_gives_identical_probabilities(run_dir, tmp_path):
    folder = export_router(run_dir, "alice/random-router", tmp_path / "export")
    # no report in this run: the card says so and no report files are exported
    files = {"model.safetensors", "router_config.json", "pool.json", "README.md"}
    assert {p.name for p in folder.iterdir()} == files
    assert "No evaluation report of this checkpoint" in (folder / "README.md").read_text()
    from_run, from_folder = load_router(run_dir), load_router(folder)
    assert from_folder.descriptors == from_run.descriptors
    assert np.array_equal(from_run.probs(probe()), from_folder.probs(probe()))


def test_descriptor_json_round_trip_is_exact(compose):
    for descriptor in pool_descriptors(compose([]).pool):
        again = descriptor_from_dict(json.loads(json.dumps(descriptor_dict(descriptor))))
        assert again == descriptor


def _edit_config(folder, edit):
    """Rewrite the folder's router_config.json through ``edit(config: dict)``."""
    path = folder / "router_config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


@pytest.fixture
def folder(run_dir, tmp_path):
    return export_router(run_dir, "alice/random-router", tmp_path / "export")


def test_unknown_router_kind_is_refused_clearly(folder):
    _edit_config(folder, lambda c: c.update(router_kind="tree"))
    with pytest.raises(
        ValueError, match=r"router_kind='tree'; rl-router .* loads 'policy' and 'llm' routers"
    ):
        load_router(folder)


def test_untrusted_policy_target_is_never_instantiated(folder):
    _edit_config(folder, lambda c: c["policy"].update(_target_="os.system"))
    with pytest.raises(
        ValueError, match=r"policy._target_='os.system' is not one of rl-router's own policy targets"
    ):
        load_exported(folder)


def test_nested_target_in_the_policy_config_is_refused(folder):
    payload = {"_target_": "os.system", "command": "echo pwned"}
    _edit_config(folder, lambda c: c["policy"].update(query_hidden=[payload]))
    with pytest.raises(ValueError, match=r"policy.query_hidden.0._target_='os.system' is not one of"):
        load_exported(folder)


def test_newer_format_version_is_refused(folder):
    _edit_config(folder, lambda c: c.update(format_version=99))
    with pytest.raises(ValueError, match="format_version=99"):
        load_router(folder)


def test_observation_layout_mismatch_is_refused(folder):
    _edit_config(folder, lambda c: c["observation"].update(dim=999))
    with pytest.raises(ValueError, match="observation layout"):
        load_router(folder)


def test_directory_that_is_neither_run_nor_export(tmp_path):
    with pytest.raises(FileNotFoundError, match="is neither a run directory .* nor a folder of"):
        load_router(tmp_path)


def test_run_without_checkpoint(run_dir):
    import shutil

    shutil.rmtree(run_dir / "checkpoints")
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        load_router(run_dir)


def test_missing_path_that_is_not_a_repo_id(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found: give a run directory"):
        load_router(tmp_path / "no" / "such" / "run")


def test_unknown_repo_id_offline_is_a_file_not_found():
    # conftest sets HF_HUB_OFFLINE=1: snapshot_download looks in the local Hub cache only
    with pytest.raises(FileNotFoundError, match="nobody-here/no-router is not a local directory"):
        load_router("nobody-here/no-router")
