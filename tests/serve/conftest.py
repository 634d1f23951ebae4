"""Fixtures of the serve tests: a killable loopback candidate and a real `rl-router serve`.

The ``server`` fixture starts the real command, ``python -m rl_router.cli serve ...``, once per
session, on loopback, with an API key, over a pool of two candidates: ``fake-small`` (the fake
backend, in the replica) and ``fake-large`` (the OpenAI-compatible backend, calling
``candidate_server.py`` in a process of its own that a test can kill). Both answer
``"<model>: <last message>"``.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import KEY_ENV, free_port, make_policy_run, serving, wait_until_up


class Candidate:
    """``candidate_server.py`` in its own process: :meth:`kill` takes it down, :meth:`start` back up."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        script = Path(__file__).with_name("candidate_server.py")
        self.process = subprocess.Popen([sys.executable, str(script), str(self.port)])
        probe = f"http://127.0.0.1:{self.port}/docs"  # FastAPI's docs page: 200 once listening
        wait_until_up(probe, self.process, 60)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass
class Server:
    """A running ``rl-router serve``: its ``/v1`` root, key, log file, Ray temp dir, candidate."""

    url: str
    key: str
    log: Path
    ray_dir: Path
    candidate: Candidate
    run: Path


def server_models(candidate_url: str) -> list[dict[str, Any]]:
    return [
        {"name": "fake-small", "backend": "fake", "params_b": 0.1, "price_in": 0.1, "price_out": 0.1},
        {
            "name": "fake-large",
            "backend": "openai",
            "model": "fake-large",
            "params_b": 70.0,
            "price_in": 1.0,
            "price_out": 1.0,
            "openai": {"base_url": candidate_url, "api_key_env": None, "max_concurrency": 16},
        },
    ]


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[Server]:
    candidate = Candidate()
    tmp = tmp_path_factory.mktemp("serve")
    run = make_policy_run(
        tmp / "run", ["pool=fake", "pool.timeout_s=10", "pool.retries=1"], server_models(candidate.url)
    )
    candidate.start()
    key = f"sk-test-{uuid.uuid4().hex}"
    log = tmp / "serve.log"
    overrides = [
        f"serve.api_key_env={KEY_ENV}",
        "serve.max_request_bytes=200000",
        "serve.max_messages=64",
        "serve.access_log=true",  # the log test checks that request lines hold no content
    ]
    try:
        with serving(run, overrides, log, {KEY_ENV: key}) as (url, ray_dir):
            yield Server(url, key, log, ray_dir, candidate, run)
    finally:
        candidate.kill()
