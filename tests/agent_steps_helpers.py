"""Shared by the agent_steps tests: a pure-Python corridor game and a two-tier fake pool that counts calls."""

from __future__ import annotations

from collections.abc import Sequence

from envs.games.types import GameState, GameTask
from rl_router.pool.build import build_pool
from rl_router.pool.descriptors import ModelConfig, PoolConfig
from rl_router.pool.fake import FakeOptions
from rl_router.pool.types import ModelDescriptor, Request, Result


class CorridorGame:
    """A pure-Python text game: ``go forward`` ``2 + seed % 3`` times wins; ``jump`` loses."""

    suite = "textworld_express"
    ACTIONS = ["go forward", "wait", "jump"]

    def __init__(self) -> None:
        self.closed = False

    def seeds(self, game: str, params: str, fold: str) -> Sequence[int]:
        return list(range(10))

    def reset(self, task: GameTask) -> GameState:
        self.length, self.pos, self.moves = 2 + task.seed % 3, 0, 0
        return GameState("You are at the start.", "Walk to the end.", list(self.ACTIONS))

    def step(self, action: str) -> GameState:
        self.moves += 1
        valid = action in self.ACTIONS
        self.pos += action == "go forward"
        text = f"You are at {self.pos}." if valid else "Unknown action."
        won, lost = self.pos >= self.length, action == "jump"
        return GameState(
            text, "Walk to the end.", list(self.ACTIONS), float(won), won, lost, self.moves, valid
        )

    def close(self) -> None:
        self.closed = True


class CountingPool:
    """Records every ``generate`` batch (the env must send a step's requests in one call)."""

    def __init__(self, pool) -> None:
        self.pool, self.batches = pool, []

    @property
    def descriptors(self) -> list[ModelDescriptor]:
        return self.pool.descriptors

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        self.batches.append(list(requests))
        return self.pool.generate(requests)

    def close(self) -> None:
        self.pool.close()


def make_pool(small: list[str], large: list[str], price_large: float = 8.0) -> CountingPool:
    models = [
        ModelConfig(name="small", price_in=1.0, price_out=1.0, fake=FakeOptions(answers=small)),
        ModelConfig(
            name="large", price_in=price_large, price_out=price_large, fake=FakeOptions(answers=large)
        ),
    ]
    return CountingPool(build_pool(PoolConfig(models=models, cache=False)))


ROWS = [{"id": f"corridor/{s}", "game": "corridor", "seed": s, "fold": "train"} for s in range(3)]
