"""The project's own `envs` and `rewards` are imported, not the unrelated PyPI packages."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_envs_and_rewards_are_this_repos_packages():
    import envs
    import rewards

    assert Path(envs.__file__).resolve().parent == REPO / "envs"
    assert Path(rewards.__file__).resolve().parent == REPO / "rewards"


def test_pyproject_lists_packages_explicitly():
    import tomllib

    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = meta["tool"]["setuptools"]["packages"]
    assert {"rl_router", "envs", "rewards"} <= set(packages)
    assert meta["project"]["scripts"]["rl-router"] == "rl_router.cli:main"
    # the CPU torch pin: an unpinned torch pulls GBs of CUDA wheels
    assert "torch==2.13.0" in meta["project"]["dependencies"]
