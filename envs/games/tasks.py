"""Task rows of the text games: which games, with which parameters, on which seeds of each fold.

The games' own folds are the splits: the train fold's seeds train, the dev fold's validate, the test
fold's are held out (TextWorldExpress: train 0-999, dev 10000+, test 20000+; ScienceWorld: each
task's train / dev / test variation lists). A row is ``{"id", "game", "params", "fold", "seed"}``.

>>> splits = game_task_splits(games=[{"name": "coin", "params": ""}], train_per_game=2, test_per_game=1)
>>> [r["id"] for r in splits.train], splits.test[0]["seed"]
(['coin/train/0', 'coin/train/1'], 20000)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from envs.games.textworld_express import EASY_PARAMS
from envs.games.types import SUITES
from rl_router.data.splits import DataSplits

TWX_FOLD_START = {"train": 0, "dev": 10000, "test": 20000}
TWX_FOLD_SIZE = 1000


@dataclass
class GameSpec:
    """One game of the mix."""

    name: str = "coin"  # TextWorldExpress game or ScienceWorld task name
    params: str = ""  # TextWorldExpress gameParams, or ScienceWorld simplifications ("easy")


def _easy_games() -> list[GameSpec]:
    return [GameSpec(name, params) for name, params in EASY_PARAMS.items()]


@dataclass
class GameTasksConfig:
    """The task mix (``data=text_games``; schema ``data/text_games_schema``): games, seeds per fold."""

    _target_: str = "envs.games.tasks.game_task_splits"
    suite: str = "textworld_express"  # textworld_express | scienceworld
    games: list[GameSpec] = field(default_factory=_easy_games)  # the mix, each with its parameters
    # ScienceWorld tasks have 2-300 variations per fold: there each count is "at most"
    train_per_game: int = 8  # first seeds of the train fold
    validation_per_game: int = 4  # first seeds of the dev fold
    test_per_game: int = 8  # first seeds of the test fold
    offset: int = 0  # skip this many seeds at the start of every fold

    def __post_init__(self) -> None:
        self.games = [GameSpec(**g) if isinstance(g, Mapping) else g for g in self.games]
        if self.suite not in SUITES:
            raise ValueError(f"data.suite={self.suite!r}: choose one of {SUITES}")
        if not self.games:
            raise ValueError("data.games is empty: list at least one game")
        for name in ("train_per_game", "validation_per_game", "test_per_game", "offset"):
            if getattr(self, name) < 0:
                raise ValueError(f"data.{name}={getattr(self, name)}: use 0 or more")
        if (
            self.suite == "textworld_express"
            and self.offset + max(self.train_per_game, self.validation_per_game, self.test_per_game)
            > TWX_FOLD_SIZE
        ):
            raise ValueError(f"data: a TextWorldExpress fold has {TWX_FOLD_SIZE} seeds per game")


def _fold_seeds(cfg: GameTasksConfig, spec: GameSpec, fold: str, count: int, game: Any) -> list[int]:
    if cfg.suite == "textworld_express":
        start = TWX_FOLD_START[fold] + cfg.offset
        return list(range(start, start + count))
    seeds = list(game.seeds(spec.name, spec.params, fold))[cfg.offset : cfg.offset + count]
    if len(seeds) < count:
        raise ValueError(
            f"data: {spec.name} has only {len(seeds)} {fold} variations after offset {cfg.offset}"
        )
    return seeds


def game_task_splits(**fields: Any) -> DataSplits:
    """Train / validation / test task rows (fields of :class:`GameTasksConfig`)."""
    cfg = GameTasksConfig(**{k: v for k, v in fields.items() if k != "_target_"})
    game = None
    if cfg.suite == "scienceworld":  # variation lists live in the simulator
        from envs.games.scienceworld import ScienceWorldGame

        game = ScienceWorldGame()
    try:
        parts = []
        for fold, count in (
            ("train", cfg.train_per_game),
            ("dev", cfg.validation_per_game),
            ("test", cfg.test_per_game),
        ):
            rows = []
            for spec in cfg.games:
                for seed in _fold_seeds(cfg, spec, fold, count, game):
                    rows.append(
                        {
                            "id": f"{spec.name}/{fold}/{seed}",
                            "game": spec.name,
                            "params": spec.params,
                            "fold": fold,
                            "seed": int(seed),
                        }
                    )
            parts.append(rows)
    finally:
        if game is not None:
            game.close()
    return DataSplits(*parts)
