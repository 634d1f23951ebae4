"""A same-step-autoreset vector env whose sub-envs step together: ONE pool call per vector step.

Gymnasium's :class:`~gymnasium.vector.SyncVectorEnv` steps its sub-envs one by one, so an env that
calls the candidate pool would make ``num_envs`` calls per step. :class:`BatchedSyncVectorEnv`
first steps them all through their class's ``step_batch`` hook (:func:`~rl_router.rollout.driver.step_envs`)
and then lets the parent class do its bookkeeping (autoreset, ``final_info``) on those results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.vector.utils import iterate

from rl_router.rollout.driver import step_envs


class _Prestepped(gym.Wrapper):
    """Returns the step result its vector env computed in the batch (exactly once)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.result: tuple | None = None

    def step(self, action: Any) -> tuple:
        if self.result is None:
            return self.env.step(action)
        result, self.result = self.result, None
        return result


class BatchedSyncVectorEnv(SyncVectorEnv):
    """:class:`SyncVectorEnv` (same-step autoreset) over envs stepped as one batch."""

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]]) -> None:
        super().__init__(
            [lambda fn=fn: _Prestepped(fn()) for fn in env_fns], autoreset_mode=AutoresetMode.SAME_STEP
        )

    def step(self, actions: Any) -> tuple:
        per_env = list(iterate(self.action_space, actions))
        results = step_envs([env.unwrapped for env in self.envs], per_env)
        for env, result in zip(self.envs, results, strict=True):
            env.result = result
        return super().step(actions)
