"""Helpers of the serve tests: tiny policy runs without training, ports, waiting for a server.

A policy run is made without training (composed config + a checkpoint of random weights), as
``tests/routers/test_policy_router.py`` makes one, so it takes a second.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import torch
from omegaconf import OmegaConf

from rl_router.checkpoint import save_checkpoint
from rl_router.pool import ModelConfig, PoolConfig
from rl_router.pool.fake import FakeOptions
from rl_router.routers.policy import build_policy, pool_descriptors
from rl_router.run import RUN_CONFIG

ROOT = Path(__file__).resolve().parents[2]
KEY_ENV = "RL_ROUTER_TEST_SERVE_KEY"
START_TIMEOUT_S = 300  # Ray, Serve, one replica loading torch and the encoder, on 2 busy cores


def compose(config_name: str, overrides: list[str]):
    from rl_router.cli import compose_config

    return compose_config(config_name, overrides)


def make_policy_run(path: Path, overrides: list[str], models: list[dict[str, Any]] | None = None) -> Path:
    """A run directory of random policy weights (step 64); ``models`` replace the pool's models."""
    cfg = compose("config", ["debug=tiny", *overrides])
    if models is not None:
        cfg.pool.models = [OmegaConf.merge(OmegaConf.structured(ModelConfig), m) for m in models]
    path.mkdir(parents=True)
    OmegaConf.save(cfg, path / RUN_CONFIG, resolve=True)
    torch.manual_seed(0)
    policy = build_policy(cfg.policy, pool_descriptors(cfg.pool))
    save_checkpoint(path, 64, policy, torch.optim.Adam(policy.parameters()), {"global_step": 64})
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout_s: float, log: Path | None = None) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited ({process.returncode}): {_tail(log)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up within {timeout_s:g}s: {_tail(log)}")


def _tail(log: Path | None) -> str:
    return log.read_text()[-3000:] if log is not None and log.is_file() else ""


def fake_pool_config(
    names=("fake-small", "fake-large"), failing: dict[str, float] | None = None
) -> PoolConfig:
    """Two echoing fake candidates ($0.1 and $1 per 1M tokens); ``failing``: name -> failure rate."""
    failing = failing or {}
    return PoolConfig(
        models=[
            ModelConfig(
                name=name,
                backend="fake",
                price_in=price,
                price_out=price,
                fake=FakeOptions(failure_rate=failing.get(name, 0.0)),
            )
            for name, price in zip(names, (0.1, 1.0), strict=True)
        ],
        cache=False,
        retries=0,
    )


@contextmanager
def serving(
    run: Path, overrides: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[str, Path]]:
    """The real ``python -m rl_router.cli serve checkpoint=<run> ...`` on loopback.

    Yields ``(its /v1 URL, its Ray temp dir)``.
    Its own local Ray (a short temp dir: Ray's socket paths have a limit) on two CPUs; SIGTERM at the end.
    """
    port = free_port()
    ray_dir = Path(tempfile.mkdtemp(prefix="rlr-", dir="/tmp"))
    command = [
        sys.executable,
        "-m",
        "rl_router.cli",
        "serve",
        f"checkpoint={run}",
        f"serve.port={port}",
        "serve.ray.num_cpus=2",
        *overrides,
    ]
    environ = {**os.environ, **(env or {}), "RAY_TMPDIR": str(ray_dir)}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environ, cwd=ROOT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", process, START_TIMEOUT_S, log)
        yield f"http://127.0.0.1:{port}/v1", ray_dir
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(ray_dir, ignore_errors=True)
