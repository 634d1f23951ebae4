"""TextWorldExpress behind the TextGame contract: folds, determinism, valid/invalid actions, success."""

from __future__ import annotations

import pytest

from envs.games.textworld_express import EASY_PARAMS, TextWorldExpressGame
from envs.games.types import GameTask, TextGame


@pytest.fixture(scope="module")
def game():
    with TextWorldExpressGame() as g:
        yield g


def test_folds_are_disjoint_and_in_the_documented_ranges(game):
    train, dev, test = (game.seeds("coin", EASY_PARAMS["coin"], f) for f in ("train", "dev", "test"))
    assert isinstance(game, TextGame)
    assert min(train) == 0 and max(train) < 10000 <= min(dev) and max(dev) < 20000 <= min(test)
    with pytest.raises(ValueError, match="fold"):
        game.seeds("coin", "", "validation")


@pytest.mark.parametrize("name", sorted(EASY_PARAMS))
def test_every_easy_game_loads_with_valid_actions(game, name):
    state = game.reset(GameTask(name, 0, "train", EASY_PARAMS[name]))
    assert state.task and state.valid_actions and not state.over and state.moves == 0


def test_same_task_same_actions_same_states(game):
    task = GameTask("coin", 3, "train", EASY_PARAMS["coin"])
    runs = []
    for _ in range(2):
        state = game.reset(task)
        trace = [state.observation]
        for _ in range(4):
            state = game.step(state.valid_actions[0])
            trace.append(state.observation)
        runs.append(trace)
    assert runs[0] == runs[1]


def test_invalid_action_is_answered_and_flagged(game):
    game.reset(GameTask("coin", 0, "train", EASY_PARAMS["coin"]))
    state = game.step("dance wildly")
    assert not state.valid_last and "Unknown action" in state.observation and not state.over
    assert game.step("look around").valid_last


def test_gold_path_succeeds(game):
    """Success is read from the game: the coin's gold path ends in tasksuccess."""
    state = game.reset(GameTask("coin", 0, "train", EASY_PARAMS["coin"]))
    for action in ["move west", "move north", "move south", "move east", "move north", "take coin"]:
        state = game.step(action)
    assert state.success and state.score == 1.0
