"""Fixtures of the data-layer tests: the shipped routing table, loaded once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def shipped_table():
    from rl_router.data.routellm import load_routing_table

    return load_routing_table()


@pytest.fixture(scope="session")
def shipped_table_raw():
    from rl_router.data.routellm import load_routing_table

    return load_routing_table(exclude_contaminated=False)
