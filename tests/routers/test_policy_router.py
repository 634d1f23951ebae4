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
from policy_helpers import make_run

from rl_router import load_router
from rl_router.checkpoint import save_checkpoint
from rl_router.data.features import ALL_FEATURES, DEFAULT_FEATURES, feature_dim
from rl_router.hub import export_router
from rl_router.routers.load import load_exported
from rl_router.routers.policy import build_policy, descriptor_dict, descriptor_from_dict, pool_descriptors
from rl_router.run import RUN_CONFIG

QUERY_DIM = feature_dim(DEFAULT_FEATURES)  # the default config's query features


@pytest.fixture
def run_dir(compose, tmp_path):
    """A run directory of the default config (the embedding alone as query features)."""
    return make_run(compose(["debug=tiny"]), tmp_path / "run")


@pytest.fixture
def featured_run(compose, tmp_path):
    """A run directory whose router also reads every text block of the query."""
    return make_run(
        compose(["debug=tiny", f"env.features=[{','.join(ALL_FEATURES)}]"]), tmp_path / "featured"
    )


def probe(n: int = 32) -> np.ndarray:
    x = np.random.default_rng(1).standard_normal((n, QUERY_DIM)).astype(np.float32)
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


def test_a_run_recorded_before_env_features_loads_as_embedding_only(run_dir, tmp_path):
    """Older run directories and exports observe the 384-d embedding alone, and still load."""
    cfg = OmegaConf.load(run_dir / RUN_CONFIG)
    del cfg.env["features"]
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    OmegaConf.save(cfg, legacy / RUN_CONFIG)
    torch.manual_seed(0)
    policy = build_policy(cfg.policy, pool_descriptors(cfg.pool), ["embedding"])
    save_checkpoint(legacy, 64, policy, torch.optim.Adam(policy.parameters()), {"global_step": 64})
    router = load_router(legacy)
    assert router.features == ("embedding",) and router.query_dim == 384
    folder = export_router(legacy, "alice/old-router", tmp_path / "export")
    layout = json.loads((folder / "router_config.json").read_text())["observation"]
    assert [part["name"] for part in layout["parts"]] == ["query_embedding", "descriptor_features"]
    x = probe()[:, :384]
    assert np.array_equal(load_router(folder).probs(x), router.probs(x))


def test_router_computes_the_observation_the_env_trained_on(featured_run):
    """`router.embed(text)` is the env's observation of that row, minus the descriptor features."""
    from envs.multi_llm_qa import MultiLLMQAEnv
    from rl_router.data.routellm import load_routing_table
    from rl_router.embeddings import embed_queries

    class Candidates:  # reset() only reads the pool's descriptors
        descriptors = load_router(featured_run).descriptors

    router = load_router(featured_run)
    table = load_routing_table(limit=6)  # shipped prompts: their embeddings are in the shipped cache
    rows = [
        {"id": i, "question": p, "golden_answers": []} for i, p in zip(table.ids, table.prompts, strict=True)
    ]
    embeddings = embed_queries(table.prompts, progress=False)
    env = MultiLLMQAEnv(Candidates(), rows, embeddings, features=router.features)
    ours = router.embed(table.prompts)
    for i in range(len(rows)):
        obs, _ = env.reset(options={"index": i})
        assert np.array_equal(obs[: router.query_dim], ours[i])
    assert obs.shape == (router.query_dim + 3 * 2,)


def test_a_router_with_text_features_exports_them_and_refuses_bare_embeddings(featured_run, tmp_path):
    router = load_router(featured_run)
    assert router.features == ALL_FEATURES
    folder = export_router(featured_run, "alice/featured-router", tmp_path / "export")
    parts = json.loads((folder / "router_config.json").read_text())["observation"]["parts"]
    assert [(p["name"], p["size"]) for p in parts] == [
        ("query_embedding", 384),
        ("length", 2),
        ("format", 2),
        ("text_stats", 8),
        ("descriptor_features", 6),
    ]
    from rl_router.data.routellm import load_routing_table

    x = router.embed(load_routing_table(limit=2).prompts)  # shipped prompts: embeddings cached
    assert x.shape == (2, 396) and np.array_equal(load_router(folder).probs(x), router.probs(x))
    with pytest.raises(
        ValueError, match=r"query features of shape \(32, 384\), but this router reads \[n, 396\]"
    ):
        router.probs(probe()[:, :384])
