"""conf/: each default is stated once (STYLE.md §8), and every option file and experiment composes.

An option file (``conf/<group>/<name>.yaml``, or a root config) whose defaults list opens with a
schema lists only what differs from that schema's dataclass. Schemas are looked up in Hydra's
ConfigStore, where the ``compose`` fixture registers them as the CLI does, never by module path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rl_router.cli import conf_dir

CONF = conf_dir()
OVERRIDE_DIRS = ("experiment", "debug")  # @package _global_ overrides, not option files
ROOT_ARGS = {  # root config -> the mandatory values a compose needs
    "config": [],
    "eval": ["checkpoint=outputs/default/run"],
    "export": ["checkpoint=outputs/default/run", "repo_id=alice/router"],
    "calibrate": ["checkpoint=outputs/default/run", "target.share=0.5"],
    "serve": ["checkpoint=outputs/default/run"],
}


def _schema_name(path: Path) -> str | None:
    """The schema a file's defaults list opens with (``grpo_schema``), or None."""
    defaults = OmegaConf.load(path).get("defaults") or []
    first = defaults[0] if len(defaults) else None
    return first if isinstance(first, str) and first != "_self_" else None


def _option_files() -> list[Path]:
    files = sorted(CONF.glob("*.yaml")) + sorted(CONF.glob("*/*.yaml"))
    return [f for f in files if f.parent.name not in OVERRIDE_DIRS and _schema_name(f)]


OPTION_FILES = _option_files()
GROUP_OPTIONS = [f for f in OPTION_FILES if f.parent != CONF]


def _id(path: Path) -> str:
    return str(path.relative_to(CONF))


def _schema_node(path: Path) -> DictConfig:
    """The registered schema a file opens with (``trainer/grpo_schema.yaml``; root: ``base_eval.yaml``)."""
    group = "" if path.parent == CONF else f"{path.parent.name}/"
    return ConfigStore.instance().load(f"{group}{_schema_name(path)}.yaml").node


def _group_schemas(group: str) -> set[type]:
    store = ConfigStore.instance()
    return {OmegaConf.get_type(store.load(f"{group}/{name}").node) for name in store.list(group)}


def _same(a: Any, b: Any) -> bool:
    """Equal as composed values: 1 == 1.0, but True != 1 and "${seed}" != 0."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _element_default(default: DictConfig, key: str) -> DictConfig | None:
    """What one ``{}`` entry of list field ``key`` composes to (its element dataclass), if a mapping."""
    try:
        probe = OmegaConf.merge(default, {key: [{}]})
    except OmegaConfBaseException:  # a list of scalars
        return None
    return probe[key][0]


def repeats(raw: dict, merged: DictConfig, default: DictConfig, where: str = "") -> Iterator[str]:
    """``key=value repeats the <Dataclass> default`` for each key of ``raw`` that changes nothing.

    Args:
        raw: the file's mapping as written (interpolations unresolved).
        merged: ``default`` with ``raw`` merged in, as Hydra composes it.
        default: the schema (or nested dataclass, or list element dataclass) ``raw`` lands on.
        where: dotted prefix of ``raw``'s keys.
    """
    owner = OmegaConf.get_type(default).__name__
    got = OmegaConf.to_container(merged, resolve=False)
    want = OmegaConf.to_container(default, resolve=False)
    for key, value in raw.items():
        if key not in want:
            continue  # a key of a free-form mapping: nothing to repeat
        if _same(got[key], want[key]):
            yield f"{where}{key}={value!r} repeats the {owner} default"
        elif isinstance(value, dict) and isinstance(want[key], dict):
            yield from repeats(value, merged[key], default[key], f"{where}{key}.")
        elif isinstance(value, list) and (element := _element_default(default, key)) is not None:
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    yield from repeats(item, merged[key][i], element, f"{where}{key}[{i}].")


@pytest.mark.usefixtures("compose")  # registers every schema in the ConfigStore, as the CLI does
@pytest.mark.parametrize("path", OPTION_FILES, ids=_id)
def test_option_file_lists_only_what_differs_from_its_schema(path):
    schema = _schema_node(path)
    written = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    fields = OmegaConf.to_container(schema, resolve=False)  # `key in schema` misses ??? fields
    raw = {key: value for key, value in written.items() if key in fields}  # not defaults, hydra
    merged = OmegaConf.merge(schema, raw)
    found = [f"conf/{_id(path)}: {line}" for line in repeats(raw, merged, schema)]
    assert not found, "\n".join(found)


@dataclass
class _Ray:
    address: str | None = None
    num_cpus: int | None = None


@dataclass
class _Model:
    name: str = ""
    backend: str = "fake"


@dataclass
class _Pool:
    lr: float = 1e-6
    seed: int = 0
    tags: list[str] = field(default_factory=lambda: ["a"])
    ray: _Ray = field(default_factory=_Ray)
    models: list[_Model] = field(default_factory=list)


def test_repeats_names_key_and_dataclass_down_to_list_elements():
    schema = OmegaConf.structured(_Pool)
    raw = {
        "lr": 1.0e-6,
        "seed": "${seed}",  # an interpolation differs from any default
        "tags": ["a", "b"],
        "ray": {"address": None, "num_cpus": 2},
        "models": [{"name": "m", "backend": "fake"}],
    }
    assert list(repeats(raw, OmegaConf.merge(schema, raw), schema)) == [
        "lr=1e-06 repeats the _Pool default",
        "ray.address=None repeats the _Ray default",
        "models[0].backend='fake' repeats the _Model default",
    ]


@pytest.mark.parametrize("path", GROUP_OPTIONS, ids=_id)
def test_option_file_composes_to_its_schema(compose, path):
    group = path.parent.name
    cfg = compose(["~experiment", f"{group}={path.stem}"])
    assert isinstance(OmegaConf.to_object(cfg[group]), OmegaConf.get_type(_schema_node(path)))


@pytest.mark.parametrize("name", sorted(ROOT_ARGS))
def test_root_config_composes(compose, name):
    cfg = compose(ROOT_ARGS[name], config_name=name)
    if name == "config":
        assert cfg.name == "default"  # the experiment `rl-router train` runs without experiment=
    else:
        assert isinstance(OmegaConf.to_object(cfg), OmegaConf.get_type(_schema_node(CONF / f"{name}.yaml")))


@pytest.mark.parametrize(
    "override",
    [f"{d}={f.stem}" for d in OVERRIDE_DIRS for f in sorted((CONF / d).glob("*.yaml"))],
)
def test_every_experiment_and_debug_override_composes_to_valid_groups(compose, override):
    cfg = compose([override])
    for group in ("env", "policy", "trainer", "pool", "data", "logger"):
        assert type(OmegaConf.to_object(cfg[group])) in _group_schemas(group)  # __post_init__ checks run here
    if override.startswith("experiment="):
        assert cfg.name == override.removeprefix("experiment=")
