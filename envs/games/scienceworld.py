"""ScienceWorld (BoPO's benchmark) behind the :class:`~envs.games.types.TextGame` contract (one JVM).

30 tasks (``TASKS``), each with train / dev / test variations (``seeds``); ``params="easy"`` applies
every simplification (teleport, open doors and containers, self-watering pots, no electrical
actions). Scores run 0-100 (scaled here to 0-1); a wrong ``focus on`` scores -100 and ends the task
(``failure``). When the parser finds an action ambiguous it asks for a number; the wrapper answers
``0`` (the first reading), as ScienceWorld's reference agents do.

>>> with ScienceWorldGame() as game:  # doctest: +SKIP
...     state = game.reset(GameTask("lifespan-longest-lived", seed=0, params="easy"))
...     len(state.valid_actions) > 100
True
"""

from __future__ import annotations

from collections.abc import Sequence

from envs.games.jvm import JvmGame
from envs.games.types import FOLDS, GameState, GameTask

AMBIGUOUS = "Ambiguous request"


def task_names() -> list[str]:
    """ScienceWorld's 30 task names (read from the package's task list; no JVM started)."""
    from scienceworld.constants import ID2TASK

    return list(ID2TASK.values())


class ScienceWorldGame(JvmGame):
    """A ScienceWorld simulator; ``reset`` loads any task and variation.

    Args:
        step_limit: The simulator's own move cap (keep it above the env's step limit).
    """

    suite = "scienceworld"

    def __init__(self, step_limit: int = 1000) -> None:
        from scienceworld import ScienceWorldEnv  # starts a JVM

        self._own(ScienceWorldEnv("", envStepLimit=step_limit))
        self._valid: list[str] = []
        self._task = ""

    def seeds(self, game: str, params: str, fold: str) -> Sequence[int]:
        """The variations of ``fold`` (``train`` / ``dev`` / ``test``) of task ``game``."""
        self._check_open()
        if fold not in FOLDS:
            raise ValueError(f"fold={fold!r}: choose one of {FOLDS}")
        self._env.load(game, 0, params)
        getter = {"train": "get_variations_train", "dev": "get_variations_dev", "test": "get_variations_test"}
        return [int(v) for v in getattr(self._env, getter[fold])()]

    def reset(self, task: GameTask) -> GameState:
        self._check_open()
        self._env.load(task.game, task.seed, task.params)
        observation, infos = self._env.reset()
        self._task = str(self._env.get_task_description())
        return self._state(observation, infos, completed=False, valid_last=True)

    def step(self, action: str) -> GameState:
        self._check_open()
        valid = action in self._valid
        observation, _, completed, infos = self._env.step(action)
        if str(observation).startswith(AMBIGUOUS):
            observation, _, completed, infos = self._env.step("0")
        return self._state(observation, infos, completed=completed, valid_last=valid)

    def _state(self, observation: str, infos: dict, completed: bool, valid_last: bool) -> GameState:
        self._valid = [str(a) for a in infos["valid"]]
        score = float(infos["score"]) / 100.0
        success = score >= 1.0
        return GameState(
            observation=str(observation),
            task=self._task,
            valid_actions=list(self._valid),
            score=score,
            success=success,
            failure=(score < 0) or (bool(completed) and not success),
            moves=int(infos.get("moves", 0)),
            valid_last=valid_last,
        )
