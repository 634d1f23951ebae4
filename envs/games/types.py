"""The contract every text game meets: a task to load, a state after every move, and ``close``.

A :class:`GameTask` names one deterministic game instance (game, parameters, fold, seed); a game
reset on the same task and fed the same actions gives the same states, which is what makes greedy
boundary rollouts repeat exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

SUITES = ("textworld_express", "scienceworld")
FOLDS = ("train", "dev", "test")


@dataclass(frozen=True)
class GameTask:
    """One game instance.

    Attributes:
        game: The game's name (TextWorldExpress ``coin``; ScienceWorld ``lifespan-longest-lived``).
        seed: TextWorldExpress seed, or ScienceWorld variation index, drawn from ``fold``.
        fold: ``train``, ``dev`` or ``test`` (the game's own held-out seeds).
        params: TextWorldExpress ``gameParams`` (``numLocations=4,includeDoors=0``), or
            ScienceWorld simplifications (``easy``).
    """

    game: str
    seed: int
    fold: str = "train"
    params: str = ""

    @classmethod
    def from_row(cls, row: Any) -> GameTask:
        """The task of a dataset row (``game``, ``seed``, ``fold``, ``params`` keys)."""
        fold, params = str(row.get("fold", "train")), str(row.get("params", ""))
        return cls(str(row["game"]), int(row["seed"]), fold, params)


@dataclass
class GameState:
    """What the game shows after a reset or a move.

    Attributes:
        observation: The game's reply to the last action (the room on a reset).
        task: The task description.
        valid_actions: Every action the game accepts now.
        score: Progress in ``[0, 1]`` (ScienceWorld's 0-100 scaled; a failed task may read below 0).
        success: The task is solved.
        failure: The task can no longer be solved (a wrong ``focus``, a wrong answer).
        moves: Actions taken since the reset.
        valid_last: Whether the last action was one of the valid actions offered before it.
    """

    observation: str
    task: str
    valid_actions: list[str]
    score: float = 0.0
    success: bool = False
    failure: bool = False
    moves: int = 0
    valid_last: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def over(self) -> bool:
        return self.success or self.failure


@runtime_checkable
class TextGame(Protocol):
    """A started game engine (one JVM); reusable across tasks, closed once."""

    suite: str

    def reset(self, task: GameTask) -> GameState: ...

    def step(self, action: str) -> GameState: ...

    def seeds(self, game: str, params: str, fold: str) -> Sequence[int]:
        """The seeds (variations) of ``fold`` for ``game`` with ``params``, in the game's order."""
        ...

    def close(self) -> None: ...
