"""The typed config of ``rl-router serve`` (Hydra schema ``base_serve``; root file ``conf/serve.yaml``).

``rl-router serve checkpoint=<run | export folder | hub id> [pool=<option>] [serve.port=8000]``: the
router, the candidate pool that answers (``pool=<option>``; None: the pool recorded with the router)
and the HTTP server's settings under ``serve.``. A misspelt key fails at compose time, naming it
(``Key 'prot' not in 'ServerConfig'``); a bad value fails in ``__post_init__``, saying what to change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class ServeRayConfig:
    """Where Ray Serve runs: a local Ray started here, or an existing cluster."""

    address: str | None = None  # None: start a local Ray; "auto", "host:6379" or "ray://host:10001": join
    num_cpus: int | None = None  # CPUs of a local Ray (None: all); ignored when joining a cluster
    namespace: str = "rl_router"  # Ray namespace of the Serve application and the pool's actors

    def __post_init__(self) -> None:
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ValueError(f"serve.ray.num_cpus={self.num_cpus}: use at least 1, or null for all")


@dataclass
class ServerConfig:
    """The HTTP endpoint: address, key, replicas, request limits, what the router sees."""

    host: str = "127.0.0.1"  # interface the HTTP proxy binds; 0.0.0.0 to accept other hosts
    port: int = 8000  # HTTP port of the proxy
    model_name: str = "rl-router"  # the router's id in /v1/models; a request naming it is routed
    api_key_env: str | None = None  # NAME of the env var holding the key clients must send; None: open
    num_replicas: int = 1  # router replicas; each builds its own candidate pool
    replica_cpus: float = 1.0  # CPUs Ray reserves for each replica
    max_ongoing_requests: int = 64  # requests one replica works on at once (more wait in the proxy)
    request_timeout_s: float = 300.0  # the proxy answers 408 past this (a stuck candidate cannot wedge it)
    max_request_bytes: int = 1_000_000  # a larger body is refused with 413
    max_messages: int = 256  # a conversation with more messages is refused with 413
    context_tokens: int = 256  # the router sees the newest messages that fit in this many tokens
    targets: bool = True  # accept per-request targets: fit offsets on calibration rows
    calibration_rows: int | None = 2000  # training rows those offsets are fitted on (rl-router calibrate's)
    llm_calibration_rows: int | None = 256  # LLM routers: rows whose first turn is played once at start
    torch_threads: int | None = 1  # torch intra-op threads per replica; None: torch's default
    access_log: bool = False  # a line per request (status, models, ms; never content) from proxy, replica
    app_name: str = "rl_router"  # the Ray Serve application's name
    ray: ServeRayConfig = field(default_factory=ServeRayConfig)  # local Ray or a cluster

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"serve.port={self.port}: use a TCP port in 1..65535")
        if not self.model_name or "/" in self.model_name:
            raise ValueError(f"serve.model_name={self.model_name!r}: use a non-empty id without '/'")
        if self.num_replicas < 1:
            raise ValueError(f"serve.num_replicas={self.num_replicas}: use at least 1")
        if self.replica_cpus < 0:
            raise ValueError(f"serve.replica_cpus={self.replica_cpus}: use 0 or more")
        if self.max_ongoing_requests < 1:
            raise ValueError(f"serve.max_ongoing_requests={self.max_ongoing_requests}: use at least 1")
        if self.request_timeout_s <= 0:
            raise ValueError(f"serve.request_timeout_s={self.request_timeout_s}: use a positive number")
        if self.max_request_bytes < 1024:
            raise ValueError(f"serve.max_request_bytes={self.max_request_bytes}: use at least 1024")
        if self.max_messages < 1:
            raise ValueError(f"serve.max_messages={self.max_messages}: use at least 1")
        if self.context_tokens < 1:
            raise ValueError(f"serve.context_tokens={self.context_tokens}: use at least 1")
        if self.calibration_rows is not None and self.calibration_rows < 1:
            raise ValueError(
                f"serve.calibration_rows={self.calibration_rows}: use 1 or more, or null for all"
            )
        if self.llm_calibration_rows is not None and self.llm_calibration_rows < 1:
            raise ValueError(
                f"serve.llm_calibration_rows={self.llm_calibration_rows}: use 1 or more, or null for all"
            )
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ValueError(f"serve.torch_threads={self.torch_threads}: use 1 or more, or null")


@dataclass
class ServeConfig:
    """Root of ``rl-router serve``: a trained router behind an OpenAI-compatible endpoint."""

    checkpoint: str = MISSING  # a run directory (or one of its checkpoints), an exported folder or a repo id
    pool: Any = None  # a pool option serving the router's candidates; None: the pool recorded with it
    trust_recorded_pool: bool = False  # use a recorded pool even if it sends an API key to its own endpoint
    serve: ServerConfig = field(default_factory=ServerConfig)  # the HTTP endpoint
