"""Pool configs: schema checks, the four shipped pool files, and Hydra instantiation of build_pool."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from pool_helpers import req

from rl_router.pool import ModelConfig, ModelPool, PoolConfig
from rl_router.pool.fake import FakeBackend

POOL_CONF = Path(__file__).parents[2] / "conf" / "pool"


@pytest.fixture
def compose_pool():
    """Compose ``conf/pool/<name>.yaml`` on its own, with the schema registered as the lead will."""
    ConfigStore.instance().store(name="pool_schema", node=PoolConfig)

    def _compose(name: str, overrides: list[str] | None = None):
        with initialize_config_dir(config_dir=str(POOL_CONF), version_base="1.3"):
            return compose(config_name=name, overrides=overrides or [])

    return _compose


@pytest.mark.parametrize("name", ["fake", "replay", "local", "router_r1"])
def test_shipped_pool_files_compose_and_validate(compose_pool, name):
    cfg = OmegaConf.to_object(compose_pool(name))
    assert isinstance(cfg, PoolConfig) and all(isinstance(m, ModelConfig) for m in cfg.models)
    first_line = (POOL_CONF / f"{name}.yaml").read_text().splitlines()[:2]
    assert first_line[0].startswith("# ") and first_line[1].startswith("# Launch: rl-router train pool=")


def test_router_r1_prices_and_gpu_placement(compose_pool):
    cfg = OmegaConf.to_object(compose_pool("router_r1"))
    prices = {m.model.split("/")[1]: m.price_out for m in cfg.models}
    assert prices == {
        "Qwen2.5-7B-Instruct": 0.30,
        "Llama-3.1-8B-Instruct": 0.18,
        "Llama-3.1-70B-Instruct": 0.88,
        "Mistral-7B-Instruct-v0.3": 0.20,
        "Mixtral-8x22B-Instruct-v0.1": 1.20,
        "gemma-2-27b-it": 0.80,
    }
    assert all(m.in_ray and m.num_gpus == m.vllm.tensor_parallel_size for m in cfg.models)


def test_replay_file_matches_routellm_prices(compose_pool):
    cfg = OmegaConf.to_object(compose_pool("replay"))
    assert [(m.price_in, m.price_out) for m in cfg.models] == [(0.24, 0.24), (24.7, 24.7)]


def test_custom_resources_and_start_timeout_compose_from_overrides(compose_pool):
    cfg = OmegaConf.to_object(
        compose_pool("fake", ["+models.0.resources={candidate_host: 1}", "ray.start_timeout_s=60"])
    )
    assert (cfg.models[0].resources, cfg.models[1].resources) == ({"candidate_host": 1.0}, {})
    assert cfg.ray.start_timeout_s == 60.0


def test_misspelt_key_fails_at_compose(compose_pool):
    with pytest.raises(ConfigCompositionException, match="latncy_s"):
        compose_pool("fake", ["models.0.fake.latncy_s=1"])


def test_hydra_instantiate_builds_the_pool(compose_pool, tmp_path):
    cfg = compose_pool("fake", [f"cache_dir={tmp_path}", "models.1.fake.failure_rate=1.0", "retries=0"])
    with instantiate(cfg) as pool:
        assert isinstance(pool, ModelPool)
        assert isinstance(pool.backends["fake-small"], FakeBackend)
        ok, failed = pool.generate([req("fake-small", "q"), req("fake-large", "q")])
    assert ok.text in {"42", "Paris", "I do not know."} and failed.error == "fake failure of fake-large"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"models": []}, "pool.models is empty"),
        ({"models": [{"name": "a"}, {"name": "a"}]}, "duplicate names"),
        ({"models": [{"name": "a", "backend": "tgi"}]}, "backend='tgi'"),
        ({"models": [{"name": "a", "backend": "hf"}]}, "set `model`"),
        (
            {"models": [{"name": "a", "backend": "vllm", "model": "m", "ray_actor": False}]},
            "always runs in a Ray",
        ),
        ({"models": [{"name": "a", "sampling": {"temperature": -1}}]}, "sampling.temperature"),
        ({"models": [{"name": "a"}], "timeout_s": 0}, "pool.timeout_s"),
        ({"models": [{"name": "a"}], "retries": -1}, "pool.retries"),
        ({"models": [{"name": "a", "resources": {"GPU": 1}}]}, r"resources \['GPU'\]: set num_cpus"),
        ({"models": [{"name": "a", "resources": {"node_a": -1}}]}, "amounts must be >= 0"),
        ({"models": [{"name": "a"}], "ray": {"start_timeout_s": 0}}, "pool.ray.start_timeout_s"),
    ],
)
def test_config_checks_say_what_to_change(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PoolConfig(**kwargs)


def test_descriptor_carries_prices_and_default_sampling():
    d = ModelConfig(
        name="a",
        backend="fake",
        params_b=7.0,
        price_in=1.0,
        price_out=2.0,
        sampling={"temperature": 0.5, "max_tokens": 64},
    ).descriptor()
    assert (d.params_b, d.price_in, d.price_out, d.sampling.temperature, d.sampling.max_tokens) == (
        7.0,
        1.0,
        2.0,
        0.5,
        64,
    )


def test_replay_file_builds_on_the_shipped_routellm_table(compose_pool):
    from rl_router.data.routellm import load_routing_table

    table = load_routing_table(limit=20)
    with instantiate(compose_pool("replay", ["replay.limit=20"])) as pool:
        mixtral, gpt4 = pool.generate(
            [
                req("mixtral-8x7b", table.prompts[0], query_id=table.ids[0]),
                req("gpt-4", "", query_id=table.ids[0]),
            ]
        )
    assert (mixtral.score, gpt4.score) == (float(table.scores[0, 0]), float(table.scores[0, 1]))
    assert gpt4.cost_usd == pytest.approx((table.input_tokens[0, 1] + table.output_tokens[0, 1]) * 24.7 / 1e6)
