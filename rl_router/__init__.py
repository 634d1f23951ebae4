"""rl-router: reinforcement learning for router policies.

>>> from rl_router import load_router  # doctest: +SKIP
>>> # a run directory, an exported folder or a Hub repo id
>>> router = load_router("outputs/default/<date>_<time>")  # doctest: +SKIP
>>> router.route(["What is 12 * 7?"])  # doctest: +SKIP
['mixtral-8x7b']
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_router"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `rl-router --help` must not pay for torch and transformers.
    if name == "load_router":
        from rl_router.routers.load import load_router

        return load_router
    raise AttributeError(f"module 'rl_router' has no attribute {name!r}")
