"""Text games behind one small contract (:mod:`envs.games.types`), each running its own JVM.

* :mod:`~envs.games.textworld_express`: TextWorldExpress (coin, twc, mapreader, simonsays, arithmetic ...).
* :mod:`~envs.games.scienceworld`: ScienceWorld's 30 tasks (BoPO's benchmark).
* :mod:`~envs.games.jvm`: the game JVM's lifetime (close, finaliser, at-fork pipe hygiene).

:func:`make_game` builds one by suite name.
"""

from __future__ import annotations

from envs.games.types import SUITES, TextGame


def make_game(suite: str, step_limit: int = 1000) -> TextGame:
    """A started game of ``suite`` (``textworld_express`` or ``scienceworld``); close it when done."""
    if suite == "textworld_express":
        from envs.games.textworld_express import TextWorldExpressGame

        return TextWorldExpressGame(step_limit=step_limit)
    if suite == "scienceworld":
        from envs.games.scienceworld import ScienceWorldGame

        return ScienceWorldGame(step_limit=step_limit)
    raise ValueError(f"game suite {suite!r}: choose one of {SUITES}")
