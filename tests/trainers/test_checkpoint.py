"""Atomic, data-only checkpoints and exact resume: crash half-way, resume, same weights as a straight run."""

from __future__ import annotations

import dataclasses
import json
import pickle
import random
import threading
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from envs.multi_llm_qa import MultiLLMQAEnv
from rewards.cost import PercentileCostNormalizer
from rl_router import checkpoint as ckpt
from rl_router.policies.mlp import ActorCritic
from rl_router.pool.build import build_pool
from rl_router.pool.descriptors import ModelConfig, PoolConfig
from rl_router.pool.fake import FakeOptions
from rl_router.trainers.ppo import PPOConfig, make_vec_env, train

torch.set_num_threads(1)


def assert_float_equal(a: torch.Tensor, b: torch.Tensor, key: str) -> None:
    """Equal up to float32 rounding (atol 1e-6). A resume that restores the data order, RNGs and
    optimizer exactly can still differ in the last bit: SIMD reductions over minibatch advantages
    round differently with the buffers' alignment on some CPUs (measured: up to 1.5e-8). Restoring the
    wrong data order moves the weights by ~5e-3 in these runs, over three orders of magnitude more."""
    torch.testing.assert_close(a, b, rtol=0.0, atol=1e-6, msg=lambda m: f"{key}: {m}")


# 4 updates of 2 envs x 16 steps; a checkpoint every 2 updates.
CFG = PPOConfig(num_envs=2, num_steps=16, total_steps=128, num_minibatches=2, checkpoint_every=64, seed=3)
PICKLE_SUFFIXES = {".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt"}
CHECKPOINT_FILES = {
    "policy.safetensors",
    "optimizer.safetensors",
    "optimizer.json",
    "trainer_state.safetensors",
    "trainer_state.json",
    "meta.json",
}


class StatefulCartPole(CartPoleEnv):
    """Gymnasium's CartPole with the state API a checkpoint saves sub-envs through."""

    def state_dict(self) -> dict:
        return {
            "np_random": self.np_random.bit_generator.state,
            "state": None if self.state is None else np.asarray(self.state).tolist(),
            "steps_beyond_terminated": self.steps_beyond_terminated,
        }

    def load_state_dict(self, state: dict) -> None:
        self.np_random = np.random.Generator(np.random.PCG64())
        self.np_random.bit_generator.state = state["np_random"]
        self.state = None if state["state"] is None else np.asarray(state["state"], dtype=np.float64)
        self.steps_beyond_terminated = state["steps_beyond_terminated"]


# CartPole-v1 as gym.make builds it (TimeLimit, OrderEnforcing, PassiveEnvChecker), on the class above.
STATEFUL_CARTPOLE = dataclasses.replace(gym.spec("CartPole-v1"), entry_point=StatefulCartPole)


def cartpole_envs() -> gym.vector.SyncVectorEnv:
    return make_vec_env([lambda: gym.make(STATEFUL_CARTPOLE) for _ in range(CFG.num_envs)])


def fresh_policy() -> ActorCritic:
    torch.manual_seed(123)
    return ActorCritic(4, 2, hidden_sizes=[16])


class CrashAt:
    """A logger that kills the run when it logs ``step`` (after the checkpoint before it)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def log(self, metrics: dict, step: int) -> None:
        if step >= self.step:
            raise RuntimeError("simulated crash")

    def finish(self) -> None:
        pass


def test_resume_after_a_crash_matches_a_straight_run(tmp_path):
    straight = fresh_policy()
    done = train(CFG, cartpole_envs(), straight, run_dir=tmp_path / "straight", progress=False)

    run_dir = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(CFG, cartpole_envs(), fresh_policy(), run_dir=run_dir, logger=CrashAt(96), progress=False)
    assert ckpt.latest_checkpoint(run_dir).name == "step_0000000064"
    (run_dir / "checkpoints" / ".tmp-step_0000000096-deadbeef").mkdir()  # a write the crash cut short
    (run_dir / "checkpoints" / ".tmp-step_0000000096-deadbeef" / "policy.safetensors").write_bytes(b"\0" * 7)

    # A new process: other weights and RNG state, fresh envs; resume must restore all of them.
    torch.manual_seed(999)
    resumed_policy = ActorCritic(4, 2, hidden_sizes=[16])
    resumed = train(CFG, cartpole_envs(), resumed_policy, run_dir=run_dir, progress=False, resume=True)

    assert resumed["global_step"] == done["global_step"] == 128
    assert resumed["mean_return"] == done["mean_return"]
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed_policy.state_dict()[key]), key
    # The crashed run wrote step 96 to metrics.jsonl before dying; the resumed run logs it again once.
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [32, 64, 96, 128]


def test_save_is_atomic_and_keeps_the_newest(tmp_path):
    policy = fresh_policy()
    opt = torch.optim.Adam(policy.parameters())
    for step in (10, 20, 30):
        ckpt.save_checkpoint(tmp_path, step, policy, opt, {"global_step": step, "update": step // 10}, keep=2)
    (tmp_path / "checkpoints" / ".tmp-step_0000000040-0000").mkdir()
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step_0000000020", "step_0000000030"]

    other = ActorCritic(4, 2, hidden_sizes=[16])
    state = ckpt.load_checkpoint(
        ckpt.latest_checkpoint(tmp_path), other, torch.optim.Adam(other.parameters())
    )
    assert state["global_step"] == 30
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in policy.state_dict().items())
    assert ckpt.latest_checkpoint(tmp_path / "nowhere") is None
    assert ckpt.checkpoint_step(ckpt.latest_checkpoint(tmp_path)) == 30


def test_a_failed_write_leaves_no_checkpoint(tmp_path):
    policy = fresh_policy()
    with pytest.raises(TypeError, match="bad: function is not checkpoint data"):
        ckpt.save_checkpoint(tmp_path, 5, policy, torch.optim.Adam(policy.parameters()), {"bad": lambda: 0})
    assert ckpt.list_checkpoints(tmp_path) == []
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_rng_state_round_trip(tmp_path):
    policy = fresh_policy()
    np.random.standard_normal()  # a cached gaussian is part of numpy's legacy state
    saved = ckpt.save_checkpoint(
        tmp_path, 1, policy, torch.optim.Adam(policy.parameters()), {"rng": ckpt.rng_state()}
    )
    first = (
        random.random(),
        random.gauss(0, 1),
        np.random.rand(3).tolist(),
        np.random.standard_normal(),
        torch.rand(3),
    )
    ckpt.set_rng_state(ckpt.load_checkpoint(saved, fresh_policy())["rng"])
    again = (
        random.random(),
        random.gauss(0, 1),
        np.random.rand(3).tolist(),
        np.random.standard_normal(),
        torch.rand(3),
    )
    assert first[:4] == again[:4] and torch.equal(first[4], again[4])


class LockedEnv(gym.Env):
    """An env without the state API (and holding a lock, like a pool with live connections)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, shape=(4,))
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.np_random.uniform(-1, 1, size=4).astype("float32"), {}

    def step(self, action):
        return self.reset()[0], float(action), True, False, {}


def test_envs_without_the_state_api_are_reseeded_on_resume(tmp_path):
    envs = make_vec_env([LockedEnv, LockedEnv])
    assert ckpt.env_state(envs) is None
    assert ckpt.env_state_problem(envs) == "sub-env 0: LockedEnv has no state_dict()/load_state_dict()"
    plain = make_vec_env([lambda: gym.make("CartPole-v1")])  # Gymnasium's own CartPole has no state API
    assert ckpt.env_state_problem(plain) == "sub-env 0: CartPoleEnv has no state_dict()/load_state_dict()"
    train(CFG, envs, fresh_policy(), run_dir=tmp_path, progress=False)
    more = PPOConfig(**{**CFG.__dict__, "total_steps": 192})
    with pytest.warns(UserWarning, match="re-seeding the envs"):
        result = train(
            more,
            make_vec_env([LockedEnv, LockedEnv]),
            fresh_policy(),
            run_dir=tmp_path,
            resume=True,
            progress=False,
        )
    assert result["global_step"] == 192


class LivePool:
    """A candidate pool with a live resource (a lock) that cannot be pickled."""

    descriptors: list = []

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0

    def generate(self, requests):
        self.calls += len(requests)
        return []

    def close(self) -> None:
        pass


class QueryOrderEnv(gym.Env):
    """Router-shaped: one-step episodes over a dataset visited in a seeded order; holds the pool."""

    observation_space = gym.spaces.Box(-1.0, 1.0, shape=(4,))
    action_space = gym.spaces.Discrete(2)

    def __init__(self, pool: LivePool) -> None:
        self.pool = pool
        self.data = np.random.default_rng(0).uniform(-1, 1, size=(50, 4)).astype(np.float32)
        self.order, self.cursor = np.arange(50), 50

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if self.cursor >= len(self.order):
            self.order, self.cursor = self.np_random.permutation(50), 0
        self.row = self.data[self.order[self.cursor]]
        self.cursor += 1
        return self.row, {}

    def state_dict(self) -> dict:
        return {
            "rng": self.np_random.bit_generator.state,
            "order": self.order.tolist(),
            "cursor": self.cursor,
        }

    def load_state_dict(self, state: dict) -> None:
        self.np_random = np.random.Generator(np.random.PCG64())
        self.np_random.bit_generator.state = state["rng"]
        self.order, self.cursor = np.asarray(state["order"]), state["cursor"]
        self.row = self.data[self.order[self.cursor - 1]]

    def step(self, action):
        self.pool.generate([action])
        return self.row, float((self.row[0] > 0) == action), True, False, {}


def test_envs_holding_a_pool_resume_their_data_order_exactly(tmp_path):
    def run(run_dir, policy, logger=None, resume=False):
        pool = LivePool()
        envs = make_vec_env([lambda: QueryOrderEnv(pool) for _ in range(CFG.num_envs)])
        result = train(CFG, envs, policy, run_dir=run_dir, logger=logger, progress=False, resume=resume)
        assert all(env.unwrapped.pool is pool for env in envs.unwrapped.envs)  # the live pool is kept
        return result

    straight = fresh_policy()
    run(tmp_path / "straight", straight)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "crashed", fresh_policy(), logger=CrashAt(96))
    resumed = ActorCritic(4, 2, hidden_sizes=[16])
    run(tmp_path / "crashed", resumed, resume=True)
    for key, value in straight.state_dict().items():
        assert_float_equal(value, resumed.state_dict()[key], key)


# -- data only: no pickle is written, none is read ------------------------------------------------
def test_a_checkpoint_holds_only_safetensors_and_json(tmp_path):
    train(CFG, cartpole_envs(), fresh_policy(), run_dir=tmp_path, progress=False)
    folders = ckpt.list_checkpoints(tmp_path)
    assert [p.name for p in folders] == ["step_0000000064", "step_0000000128"]
    for folder in folders:
        files = list(folder.iterdir())
        assert {f.name for f in files} == CHECKPOINT_FILES
        for file in files:
            assert file.suffix not in PICKLE_SUFFIXES, file
            assert file.read_bytes()[:1] != b"\x80", f"{file} starts with the pickle magic byte"
    state = json.loads((folders[-1] / "trainer_state.json").read_text())
    assert state["global_step"] == 128 and state["next_obs"] == {"__tensor__": "next_obs"}
    assert [layer["type"] for layer in state["env_state"]["envs"][0]["layers"]] == [
        "TimeLimit",
        "OrderEnforcing",
        "PassiveEnvChecker",
        "StatefulCartPole",
    ]


def test_the_optimizer_resumes_bit_for_bit(tmp_path):
    def adam_steps(policy, optimizer, n, seed):
        gen = torch.Generator().manual_seed(seed)
        for _ in range(n):
            logits, value = policy(torch.randn(8, 4, generator=gen), None)
            optimizer.zero_grad()
            (logits.square().mean() + value.mean()).backward()
            optimizer.step()

    policy = fresh_policy()
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2, eps=1e-5)
    adam_steps(policy, optimizer, 3, seed=0)
    path = ckpt.save_checkpoint(tmp_path, 3, policy, optimizer, {"global_step": 3})

    saved = ckpt.read_optimizer_state(path)
    live = optimizer.state_dict()
    assert saved["state"].keys() == live["state"].keys()
    for key, tensors in live["state"].items():
        for name, value in tensors.items():
            assert torch.equal(saved["state"][key][name], value), (key, name)

    torch.manual_seed(7)
    other = ActorCritic(4, 2, hidden_sizes=[16])
    other_optimizer = torch.optim.Adam(other.parameters(), lr=1e-2, eps=1e-5)
    ckpt.load_checkpoint(path, other, other_optimizer)
    assert other_optimizer.param_groups[0]["betas"] == (0.9, 0.999)  # a tuple again
    adam_steps(policy, optimizer, 3, seed=1)
    adam_steps(other, other_optimizer, 3, seed=1)
    for key, value in policy.state_dict().items():
        assert torch.equal(value, other.state_dict()[key]), key


class PlantedPayload:
    """Unpickling it creates ``marker``: what a shared ``trainer_state.pkl`` could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def plant_pickle(folder: Path, marker: Path) -> None:
    (folder / "trainer_state.pkl").write_bytes(pickle.dumps({"global_step": 64, "x": PlantedPayload(marker)}))


def test_the_planted_payload_is_real(tmp_path):
    plant_pickle(tmp_path, tmp_path / "marker")
    pickle.loads((tmp_path / "trainer_state.pkl").read_bytes())  # what the old loader did
    assert (tmp_path / "marker").exists()


def test_a_pickled_trainer_state_is_refused_and_never_run(tmp_path):
    policy = fresh_policy()
    folder = ckpt.save_checkpoint(tmp_path / "run", 64, policy, torch.optim.Adam(policy.parameters()), {})
    for name in (
        "trainer_state.json",
        "trainer_state.safetensors",
        "optimizer.json",
        "optimizer.safetensors",
    ):
        (folder / name).unlink()
    marker = tmp_path / "marker"
    plant_pickle(folder, marker)

    torch.manual_seed(999)
    other = ActorCritic(4, 2, hidden_sizes=[16])
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(
        ckpt.UntrustedCheckpointError, match=r"trainer_state\.pkl is a pickle.*trust_pickles=True"
    ):
        ckpt.load_checkpoint(folder, other, torch.optim.Adam(other.parameters()))
    with pytest.raises(ckpt.UntrustedCheckpointError, match=str(folder / "trainer_state.pkl")):
        train(CFG, cartpole_envs(), other, run_dir=tmp_path / "run", progress=False, resume=True)
    assert not marker.exists()
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in before.items())  # nothing was loaded


def test_a_pickle_beside_a_data_checkpoint_is_never_opened(tmp_path):
    policy = fresh_policy()
    folder = ckpt.save_checkpoint(
        tmp_path, 64, policy, torch.optim.Adam(policy.parameters()), {"global_step": 64}
    )
    marker = tmp_path / "marker"
    plant_pickle(folder, marker)
    state = ckpt.load_checkpoint(
        folder, fresh_policy(), torch.optim.Adam(policy.parameters()), trust_pickles=True
    )
    assert state == {"global_step": 64} and not marker.exists()


def test_an_older_pickled_checkpoint_loads_when_trusted(tmp_path):
    """A checkpoint as rl-router wrote them before: optimizer.pt + trainer_state.pkl."""
    policy = fresh_policy()
    optimizer = torch.optim.Adam(policy.parameters())
    folder = ckpt.save_checkpoint(tmp_path, 64, policy, optimizer, {})
    for name in (
        "trainer_state.json",
        "trainer_state.safetensors",
        "optimizer.json",
        "optimizer.safetensors",
    ):
        (folder / name).unlink()
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    legacy = {"global_step": 64, "update": 2, "env_state": b"pickled sub-envs", "recent_returns": [1.0]}
    (folder / "trainer_state.pkl").write_bytes(pickle.dumps(legacy))

    with pytest.raises(ckpt.UntrustedCheckpointError):
        ckpt.load_checkpoint(folder, fresh_policy())
    with pytest.warns(UserWarning, match="pickles run code"):
        state = ckpt.load_checkpoint(
            folder, fresh_policy(), torch.optim.Adam(policy.parameters()), trust_pickles=True
        )
    assert state == {**legacy, "env_state": None}  # pickled envs are not restored: a resume re-seeds


# -- the router env: sub-envs with the state API and one shared cost normaliser ------------------
ROWS = [
    {"id": f"q{i}", "question": "what is " + "very " * i + "far?", "golden_answers": ["far"]}
    for i in range(7)
]


def router_envs(normalizer: PercentileCostNormalizer) -> gym.vector.SyncVectorEnv:
    models = [
        ModelConfig(
            name="large", params_b=70, price_in=100.0, price_out=4.0, fake=FakeOptions(answers=["far"])
        ),
        ModelConfig(name="small", params_b=0.5, fake=FakeOptions(answers=["far", "near"])),
    ]
    pool = build_pool(PoolConfig(models=models, cache=False))
    embeddings = np.random.default_rng(0).standard_normal((len(ROWS), 4)).astype(np.float32)

    def make() -> MultiLLMQAEnv:
        return MultiLLMQAEnv(pool, ROWS, embeddings, outcome="em", normalizer=normalizer, cost_window=50)

    return make_vec_env([make] * CFG.num_envs)


def test_router_envs_resume_exactly_with_their_shared_normalizer(tmp_path):
    def run(run_dir, policy, logger=None, resume=False):
        normalizer = PercentileCostNormalizer(window=50)
        train(
            CFG,
            router_envs(normalizer),
            policy,
            run_dir=run_dir,
            logger=logger,
            progress=False,
            resume=resume,
        )
        return normalizer

    def router_policy():
        torch.manual_seed(123)
        return ActorCritic(4 + 2 * 3, 2, hidden_sizes=[16])

    straight = router_policy()
    straight_window = run(tmp_path / "straight", straight)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "crashed", router_policy(), logger=CrashAt(96))
    saved = json.loads((tmp_path / "crashed/checkpoints/step_0000000064/trainer_state.json").read_text())
    env_state = saved["env_state"]
    assert len(env_state["shared"]) == 1  # the normaliser, once
    assert [env["shared"] for env in env_state["envs"]] == [{"normalizer": 0}, {"normalizer": 0}]
    assert len(env_state["shared"][0]["sqrt_costs"]) == 50  # a full window: 64 episodes so far

    torch.manual_seed(999)
    resumed = ActorCritic(4 + 2 * 3, 2, hidden_sizes=[16])
    resumed_window = run(tmp_path / "crashed", resumed, resume=True)
    assert resumed_window.state_dict() == straight_window.state_dict()
    for key, value in straight.state_dict().items():
        assert_float_equal(value, resumed.state_dict()[key], key)


def test_a_trusted_older_run_resumes_with_reseeded_envs(tmp_path):
    half = PPOConfig(**{**CFG.__dict__, "total_steps": 64})
    train(half, cartpole_envs(), fresh_policy(), run_dir=tmp_path, progress=False)
    folder = ckpt.latest_checkpoint(tmp_path)
    policy = fresh_policy()
    optimizer = torch.optim.Adam(policy.parameters())
    state = ckpt.load_checkpoint(folder, policy, optimizer)
    # Rewrite it as older versions did: tuples for RNG states, pickled sub-envs, pickles on disk.
    version, internal, gauss = state["rng"]["python"]
    state["rng"] = {
        "python": (version, tuple(internal), gauss),
        "numpy": np.random.get_state(),
        "torch": state["rng"]["torch"],
    }
    state["env_state"] = b"pickled sub-envs"
    for name in (
        "trainer_state.json",
        "trainer_state.safetensors",
        "optimizer.json",
        "optimizer.safetensors",
    ):
        (folder / name).unlink()
    (folder / "trainer_state.pkl").write_bytes(pickle.dumps(state))
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")

    with pytest.raises(ckpt.UntrustedCheckpointError):
        train(CFG, cartpole_envs(), fresh_policy(), run_dir=tmp_path, resume=True, progress=False)
    with pytest.warns(UserWarning) as caught:
        result = train(
            CFG,
            cartpole_envs(),
            fresh_policy(),
            run_dir=tmp_path,
            resume=True,
            progress=False,
            trust_pickles=True,
        )
    messages = [str(w.message) for w in caught]
    assert any("pickles run code" in m for m in messages)
    assert any("(a pickled checkpoint of an older version); re-seeding the envs" in m for m in messages)
    assert result["global_step"] == 128
    assert {p.name for p in ckpt.latest_checkpoint(tmp_path).iterdir()} == CHECKPOINT_FILES
