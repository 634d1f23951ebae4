"""ScienceWorld behind the TextGame contract: 30 tasks with folds, failure on a wrong focus, success."""

from __future__ import annotations

import pytest

from envs.games.scienceworld import ScienceWorldGame, task_names
from envs.games.types import GameTask

TASK = "lifespan-longest-lived"
GOLD = ["open door to greenhouse", "go to greenhouse", "open door to outside", "go to outside"]


@pytest.fixture(scope="module")
def game():
    with ScienceWorldGame() as g:
        yield g


def test_thirty_tasks_with_disjoint_folds(game):
    assert len(task_names()) == 30 and TASK in task_names()
    folds = [set(game.seeds(TASK, "easy", f)) for f in ("train", "dev", "test")]
    assert all(folds) and not (folds[0] & folds[1] or folds[0] & folds[2] or folds[1] & folds[2])


def test_gold_path_succeeds_and_wrong_focus_fails(game):
    state = game.reset(GameTask(TASK, 0, "train", "easy"))
    assert "life span" in state.task and len(state.valid_actions) > 50
    for action in GOLD:
        state = game.step(action)
    state = game.step("focus on baby baby brown bear")
    assert state.success and state.score == 1.0
    state = game.reset(GameTask(TASK, 0, "train", "easy"))
    state = game.step("focus on air")
    assert state.failure and not state.success and state.score < 0


def test_invalid_action_is_answered(game):
    game.reset(GameTask(TASK, 0, "train", "easy"))
    state = game.step("gibberish")
    assert not state.valid_last and "No known action" in state.observation and not state.over
