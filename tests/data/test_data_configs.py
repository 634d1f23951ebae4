"""conf/data/*.yaml compose against their schemas and instantiate to the right objects."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from rl_router.data.fanout_qa import FanOutQADataConfig
from rl_router.data.qa import QALocalDataConfig, RouterR1DataConfig
from rl_router.data.reasoning_tasks import ReasoningGymDataConfig
from rl_router.data.routellm import RoutingTableDataConfig
from rl_router.data.routing_table import RoutingTable

DATA_CONF = Path(__file__).resolve().parents[2] / "conf" / "data"
# (group, schema name, class): what rl_router/config.py registers for the `data` group.
SCHEMAS = [
    ("data", "routellm_schema", RoutingTableDataConfig),
    ("data", "qa_local_schema", QALocalDataConfig),
    ("data", "router_r1_benchmarks_schema", RouterR1DataConfig),
    ("data", "fanoutqa_schema", FanOutQADataConfig),
    ("data", "reasoning_gym_schema", ReasoningGymDataConfig),
]


@pytest.fixture
def compose_data():
    store = ConfigStore.instance()
    for group, name, node in SCHEMAS:
        # stored both at the root (the yaml's `defaults` entry resolves next to the yaml) and in the group
        store.store(name=name, node=node)
        store.store(group=group, name=name, node=node)

    def _compose(name: str, overrides: list[str] | None = None):
        with initialize_config_dir(config_dir=str(DATA_CONF), version_base="1.3"):
            return compose(config_name=name, overrides=overrides or [])

    return _compose


@pytest.mark.parametrize(
    "name, cls",
    [
        ("routellm", RoutingTableDataConfig),
        ("qa_local", QALocalDataConfig),
        ("router_r1_benchmarks", RouterR1DataConfig),
        ("fanoutqa", FanOutQADataConfig),
        ("reasoning_gym", ReasoningGymDataConfig),
    ],
)
def test_every_option_file_composes_to_its_schema(compose_data, name, cls):
    cfg = compose_data(name)
    assert isinstance(OmegaConf.to_object(cfg), cls)
    first_lines = (DATA_CONF / f"{name}.yaml").read_text().splitlines()[:2]
    assert first_lines[0].startswith("# ") and "Launch:" in first_lines[1]


def test_misspelt_key_fails_at_compose(compose_data):
    with pytest.raises(ConfigCompositionException, match="test_fractoin"):
        compose_data("routellm", ["test_fractoin=0.2"])


def test_post_init_checks_run_on_conversion(compose_data):
    cfg = compose_data("routellm", ["test_fraction=1.5"])
    with pytest.raises(ValueError, match="test_fraction=1.5"):
        OmegaConf.to_object(cfg)


def test_routellm_instantiates_to_train_validation_and_test(compose_data):
    train, validation, test = instantiate(compose_data("routellm", ["limit=100"]))
    assert all(isinstance(part, RoutingTable) for part in (train, validation, test))
    assert len(train) + len(validation) + len(test) == 100 and len(validation) > 0
    assert not set(train.ids) & set(test.ids) and not set(validation.ids) & (set(train.ids) | set(test.ids))


def test_qa_configs_instantiate(compose_data, tmp_path):
    capitals = instantiate(compose_data("qa_local", [f"cache_dir={tmp_path}", "limit=3"]))
    assert capitals["golden_answers"] == [["Paris"], ["Berlin"], ["Rome"]]
    fanout = instantiate(compose_data("fanoutqa", ["limit=2"]))
    assert len(fanout) == 2
    tasks = instantiate(compose_data("reasoning_gym", ["tasks.0.size=3", "tasks.1.size=2"]))
    assert sorted(tasks["source"]) == ["reasoning_gym/basic_arithmetic"] * 3 + ["reasoning_gym/chain_sum"] * 2
