"""Ray-hosted backends (fake engine, local Ray): resources from config, dead, stalled and unplaced actors.

Fast tier: a local Ray with fake engines starts in a few seconds; one Ray for the session (conftest).
"""

from __future__ import annotations

import threading
import time

import pytest
from pool_helpers import req

from rl_router.pool import CandidatePool, ModelConfig, ModelPool, PoolConfig, build_pool
from rl_router.pool.ray_actors import RemoteBackend

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.usefixtures("local_ray")


def actor_pool(latency_s: float, timeout_s: float = 30.0, retries: int = 1) -> PoolConfig:
    return PoolConfig(
        models=[
            ModelConfig(
                name="slow", backend="fake", ray_actor=True, num_cpus=0.5, fake={"latency_s": latency_s}
            ),
            ModelConfig(name="local", backend="fake"),
        ],
        cache=False,
        timeout_s=timeout_s,
        retries=retries,
    )


def test_actor_gets_resources_from_config_and_batches_per_model():
    with build_pool(actor_pool(latency_s=0.0)) as pool:
        remote = pool.backends["slow"]
        assert isinstance(remote, RemoteBackend) and isinstance(remote, CandidatePool)
        assert remote.actor_info()["resources"] == {"CPU": 0.5}
        results = pool.generate([req(m, f"q{i}") for i in range(6) for m in ("slow", "local")])
        assert remote.batch_sizes() == [6]
    assert [r.text for r in results[:4]] == ["slow: q0", "local: q0", "slow: q1", "local: q1"]


def test_actor_killed_mid_batch_is_restarted_and_its_requests_retried():
    with build_pool(actor_pool(latency_s=1.5)) as pool:
        remote = pool.backends["slow"]
        old_pid = remote.actor_info()["pid"]
        killer = threading.Timer(0.5, lambda: ray.kill(remote.actor))
        killer.start()
        results = pool.generate([req("slow", f"q{i}") for i in range(4)] + [req("local", "x")])
        killer.join()
        stats = pool.stats()["slow"]
        assert [r.text for r in results] == [f"slow: q{i}" for i in range(4)] + ["local: x"]
        assert (remote.restarts, stats["retries"], stats["errors"], stats["batches"]) == (1, 4, 0, 2)
        assert remote.actor_info()["pid"] != old_pid
        assert remote.batch_sizes() == [4]  # the fresh actor answered the retried batch


def test_stalled_actor_times_out_and_is_replaced():
    with build_pool(actor_pool(latency_s=20.0, timeout_s=1.0, retries=0)) as pool:
        remote = pool.backends["slow"]
        old_pid = remote.actor_info()["pid"]
        start = time.perf_counter()
        (result,) = pool.generate([req("slow", "q")])
        assert time.perf_counter() - start < 5.0
        assert result.error == "TimeoutError: slow: no answer within 1s"
        assert pool.stats()["slow"]["timeouts"] == 1 and remote.restarts == 1
        assert remote.actor_info()["pid"] != old_pid


def pinned(start_timeout_s: float) -> RemoteBackend:
    cfg = ModelConfig(name="pinned", backend="fake", ray_actor=True, num_cpus=0.5, resources={"pool_test": 1})
    return RemoteBackend(cfg, timeout_s=10.0, start_timeout_s=start_timeout_s)


def test_unplaceable_actor_fails_the_build_within_its_start_timeout():
    cfg = actor_pool(latency_s=0.0)
    cfg.models[0].resources = {"no_such_node": 1}
    cfg.ray.start_timeout_s = 1.0
    start = time.perf_counter()
    with pytest.raises(TimeoutError, match=r"slow: actor not up 1s .*'no_such_node': 1"):
        build_pool(cfg)
    assert time.perf_counter() - start < 5.0


def test_waiting_actor_fails_fast_past_its_start_timeout_then_answers_once_placed():
    """A node with the model's resources is gone (here: another actor holds them): calls become
    error results, the first after start_timeout_s, later ones at once; freed, the model answers."""

    @ray.remote(num_cpus=0, resources={"pool_test": 1})
    class Holder:
        def ping(self) -> int:
            return 1

    holder = Holder.remote()
    ray.get(holder.ping.remote())
    backend = pinned(start_timeout_s=1.0)
    with ModelPool([backend], timeout_s=10.0, retries=0) as pool:
        times, results = [], []
        for _ in range(2):
            start = time.perf_counter()
            results += pool.generate([req("pinned", "q")])
            times.append(time.perf_counter() - start)
        assert 0.9 < times[0] < 5.0 and times[1] < 0.5
        assert all(
            r.error.startswith("TimeoutError: pinned: actor not up 1s after its start") for r in results
        )
        ray.kill(holder)
        deadline = time.monotonic() + 30
        while not (result := pool.generate([req("pinned", "q")])[0]).ok and time.monotonic() < deadline:
            time.sleep(0.2)
        assert result.text == "pinned: q"
        assert backend.actor_info()["resources"] == {"CPU": 0.5, "pool_test": 1.0}
        assert backend.actor_info()["node_id"] == ray.get_runtime_context().get_node_id()
        assert backend.restarts == 0 and pool.stats()["pinned"]["timeouts"] >= 2
