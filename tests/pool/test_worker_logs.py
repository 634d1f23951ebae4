"""``build_pool(log_file=...)``: worker output and library logs go to the file, not the terminal."""

from __future__ import annotations

import logging
import sys
import time

import pytest
from pool_helpers import req

from rl_router.pool import ModelConfig, PoolConfig, build_pool
from rl_router.pool.worker_logs import move_loggers

pytestmark = pytest.mark.usefixtures("keep_library_loggers")


def wait_dead(ray, actor, seconds: float = 30.0) -> None:
    """Return once ``actor`` no longer answers (it has died), or fail after ``seconds``."""
    from ray.exceptions import GetTimeoutError, RayActorError

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            ray.get(actor.__ray_ready__.remote(), timeout=5)
        except RayActorError:
            return
        except GetTimeoutError:
            continue
        time.sleep(0.05)
    raise AssertionError(f"the killed actor still answers after {seconds:g}s")


def test_actor_output_and_log_records_go_to_the_log_file(local_ray, tmp_path):
    log_file = tmp_path / "run" / "workers.log"
    chatty = {"startup_output": "engine: loading weights 100%"}
    cfg = PoolConfig(
        models=[
            ModelConfig(name="chatty", backend="fake", ray_actor=True, num_cpus=0.5, fake=chatty),
            ModelConfig(name="local", backend="fake"),
        ],
        cache=False,
    )
    with build_pool(cfg, log_file=log_file) as pool:
        first = pool.generate([req("chatty", "q"), req("local", "q")])
        killed = pool.backends["chatty"].actor
        local_ray.kill(killed)  # its replacement appends to the same file
        wait_dead(local_ray, killed)  # ray.kill returns at once: a call sent now could still be answered
        (retried,) = pool.generate([req("chatty", "again")])
    assert [r.text for r in [*first, retried]] == ["chatty: q", "local: q", "chatty: again"]
    text = log_file.read_text()
    # Written to fds 1 and 2 by each of the two actors: the redirection is below sys.stdout.
    assert text.count("engine: loading weights 100%") == 4
    # The actor's INFO record, which Ray's default WARNING root level would drop.
    assert text.count("rl_router.pool.ray_actors") == 2 and "chatty: fake backend ready in" in text


def test_an_actor_on_a_node_without_the_run_directory_creates_it(local_ray, tmp_path):
    """build_pool makes the log file's folder on the driver's node only; an actor elsewhere makes its own."""
    from rl_router.pool.ray_actors import RemoteBackend

    log_file = tmp_path / "not-made-yet" / "run" / "workers.log"
    cfg = ModelConfig(name="far", backend="fake", ray_actor=True, num_cpus=0.5, fake={"startup_output": "up"})
    backend = RemoteBackend(cfg, timeout_s=10.0, log_file=log_file)
    try:
        assert backend.generate([req("far", "q")])[0].text == "far: q"
    finally:
        backend.close()
    assert log_file.read_text().count("up") == 2  # fds 1 and 2


def test_driver_library_loggers_move_to_the_file(tmp_path, capfd):
    log_file = tmp_path / "workers.log"
    console = logging.StreamHandler(sys.stderr)  # what Ray and vLLM install on import
    logging.getLogger("ray").addHandler(console)
    move_loggers(log_file)
    move_loggers(log_file)  # a second pool in the same process adds no second handler
    logging.getLogger("ray").warning("ray: autoscaler note")
    logging.getLogger("vllm.engine").warning("vllm: engine note")
    logging.getLogger("rl_router.test").warning("trainer note")
    text = log_file.read_text()
    assert text.count("ray: autoscaler note") == 1 and text.count("vllm: engine note") == 1
    assert "trainer note" not in text  # the trainer's own loggers stay where they were
    err = capfd.readouterr().err
    assert "autoscaler note" not in err and "engine note" not in err
    assert console not in logging.getLogger("ray").handlers and not logging.getLogger("vllm").propagate


def test_without_a_log_file_nothing_is_moved():
    before = list(logging.getLogger("ray").handlers), logging.getLogger("vllm").propagate
    with build_pool(PoolConfig(models=[ModelConfig(name="a", backend="fake")], cache=False)) as pool:
        pool.generate([req("a", "q")])
    assert (list(logging.getLogger("ray").handlers), logging.getLogger("vllm").propagate) == before
