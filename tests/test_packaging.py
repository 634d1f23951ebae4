"""The project's own `envs` and `rewards` are imported, not the unrelated PyPI packages."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_envs_and_rewards_are_this_repos_packages():
    import envs
    import rewards

    assert Path(envs.__file__).resolve().parent == REPO / "envs"
    assert Path(rewards.__file__).resolve().parent == REPO / "rewards"


def test_the_wheel_carries_every_package_of_ours_and_nothing_else():
    """Packages are found from pyproject's include list: a new subpackage cannot be left out of a wheel."""
    import tomllib

    from setuptools import find_packages

    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = meta["tool"]["setuptools"]["packages"]["find"]["include"]
    found = set(find_packages(where=str(REPO), include=include))
    ours = {
        ".".join(p.parent.relative_to(REPO).parts)
        for root in ("rl_router", "envs", "rewards")
        for p in (REPO / root).rglob("__init__.py")
    }
    assert {"rl_router.rollout", "rl_router.routers", "rl_router.recipes"} <= ours
    assert found == ours, f"missing from the wheel: {sorted(ours - found)}; extra: {sorted(found - ours)}"
    assert meta["project"]["scripts"]["rl-router"] == "rl_router.cli:main"
    # the CPU torch pin: an unpinned torch pulls GBs of CUDA wheels
    assert "torch==2.13.0" in meta["project"]["dependencies"]


def test_gpu_extra_pins_a_vllm_range_that_its_trl_supports():
    """Offline half of scripts/check_gpu_resolution.py: the pins against the installed TRL's metadata."""
    import tomllib
    from importlib.metadata import requires, version

    from packaging.requirements import Requirement

    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    gpu = {r.name: r for r in map(Requirement, meta["project"]["optional-dependencies"]["gpu"])}
    assert gpu["trl"].specifier.contains(version("trl")), "the gpu extra holds TRL at the one tested here"
    trl_vllm = next(
        r.specifier for r in map(Requirement, requires("trl")) if r.name == "vllm" and "vllm" in str(r.marker)
    )
    releases = [f"0.{minor}.{patch}" for minor in range(10, 40) for patch in range(3)]
    pinned = [v for v in releases if gpu["vllm"].specifier.contains(v)]
    assert pinned and all(trl_vllm.contains(v) for v in pinned)
    assert not gpu["vllm"].specifier.contains("0.32.0")  # the CPU wheel's release: TRL warns on it
