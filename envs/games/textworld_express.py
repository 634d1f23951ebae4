"""TextWorldExpress behind the :class:`~envs.games.types.TextGame` contract (one JVM per instance).

Games and their easy settings (DESIGN.md §2.2 measured random-agent success on these)::

    coin        numLocations=4,numDistractorItems=0,includeDoors=0
    twc         numLocations=1,numItemsToPutAway=1
    mapreader   numLocations=3,maxDistanceApart=2,includeDoors=0
    simonsays   gameLength=3,numDistractors=2
    arithmetic  (no parameters)

Seeds come in the game's folds: train 0-999, dev 10000+, test 20000+ (``seeds``).

>>> with TextWorldExpressGame() as game:  # doctest: +SKIP
...     state = game.reset(GameTask("coin", seed=0, params=EASY_PARAMS["coin"]))
...     state.valid_actions[:2]
['move west', 'look around']
"""

from __future__ import annotations

from collections.abc import Sequence

from envs.games.jvm import JvmGame
from envs.games.types import FOLDS, GameState, GameTask

EASY_PARAMS: dict[str, str] = {
    "coin": "numLocations=4,numDistractorItems=0,includeDoors=0",
    "twc": "numLocations=1,numItemsToPutAway=1",
    "mapreader": "numLocations=3,maxDistanceApart=2,includeDoors=0",
    "simonsays": "gameLength=3,numDistractors=2",
    "arithmetic": "",
}


class TextWorldExpressGame(JvmGame):
    """A TextWorldExpress simulator; ``reset`` loads any of its games.

    Args:
        step_limit: The simulator's own move cap (the env's step limit is the one that counts; keep
            this above it).
    """

    suite = "textworld_express"

    def __init__(self, step_limit: int = 1000) -> None:
        from textworld_express import TextWorldExpressEnv  # starts a JVM

        self._own(TextWorldExpressEnv(envStepLimit=step_limit))
        self._loaded: tuple[str, str] | None = None
        self._valid: list[str] = []
        self._task = ""

    def _load(self, game: str, params: str) -> None:
        if self._loaded != (game, params):
            self._env.load(game, params)  # ValueError with the simulator's message for a bad name/param
            self._loaded = (game, params)

    def seeds(self, game: str, params: str, fold: str) -> Sequence[int]:
        """The seeds of ``fold`` (``train`` / ``dev`` / ``test``) for ``game`` with ``params``."""
        self._check_open()
        if fold not in FOLDS:
            raise ValueError(f"fold={fold!r}: choose one of {FOLDS}")
        self._load(game, params)
        getter = {"train": "getValidSeedsTrain", "dev": "getValidSeedsDev", "test": "getValidSeedsTest"}[fold]
        return [int(s) for s in getattr(self._env, getter)()]

    def reset(self, task: GameTask) -> GameState:
        self._check_open()
        self._load(task.game, task.params)
        observation, infos = self._env.reset(seed=task.seed, gameFold=task.fold)
        self._task = str(infos["taskDescription"])
        return self._state(observation, infos, valid_last=True)

    def step(self, action: str) -> GameState:
        self._check_open()
        valid = action in self._valid
        observation, _, _, infos = self._env.step(action)
        return self._state(observation, infos, valid_last=valid)

    def _state(self, observation: str, infos: dict, valid_last: bool) -> GameState:
        self._valid = [str(a) for a in infos["validActions"]]
        return GameState(
            observation=str(observation),
            task=self._task,
            valid_actions=list(self._valid),
            score=float(infos["score"]),
            success=bool(infos["tasksuccess"]),
            failure=bool(infos["taskfailure"]),
            moves=int(infos.get("numMoves", 0)),
            valid_last=valid_last,
        )
