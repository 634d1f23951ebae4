"""Every docstring example in `rewards` holds (what `pytest --doctest-modules rewards` checks)."""

import doctest
import importlib
import pkgutil

import pytest

import rewards

MODULES = sorted(f"rewards.{m.name}" for m in pkgutil.iter_modules(rewards.__path__))


@pytest.mark.parametrize("module_name", MODULES)
def test_doctests(module_name):
    result = doctest.testmod(importlib.import_module(module_name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


@pytest.mark.parametrize("module_name", ["rewards.outcome", "rewards.cost", "rewards.combine"])
def test_reward_modules_carry_examples(module_name):
    assert doctest.testmod(importlib.import_module(module_name)).attempted > 0
