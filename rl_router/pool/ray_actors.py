"""Ray hosting of a backend: one actor per model, restarted when it dies or stalls.

Resources come from the model's config through ``.options(num_cpus=..., num_gpus=..., resources=...)``,
never from decorator literals; custom ``resources`` pin a model to the nodes that offer them. Ray is
imported inside functions, so ``import rl_router.pool`` stays cheap.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rl_router.pool.backend import describe_error
from rl_router.pool.factory import make_backend
from rl_router.pool.types import ModelDescriptor, Request, Result
from rl_router.pool.worker_logs import move_loggers, redirect_process_output

if TYPE_CHECKING:
    from rl_router.pool.descriptors import ModelConfig, RayConfig

log = logging.getLogger(__name__)


class ActorRestartedError(RuntimeError):
    """The model's actor died during a call and was replaced; the call's requests may be retried."""


def ensure_ray(cfg: RayConfig, *, log_file: Path | None = None) -> None:
    """Start a local Ray (``num_cpus`` from config) or join ``cfg.address``, unless Ray is already up.

    Args:
        cfg: where Ray runs.
        log_file: when given and Ray starts here: the ``ray`` logger writes to this file, worker
            output stays off the driver's terminal (``log_to_driver=False``) and Ray logs at WARNING.
    """
    import ray

    if ray.is_initialized():
        return
    options: dict[str, Any] = {}
    if log_file is not None:
        move_loggers(log_file, ["ray"])  # before init, so its start-up warnings go to the file too
        options = {"log_to_driver": False, "logging_level": logging.WARNING}
    if cfg.address is None:
        ray.init(num_cpus=cfg.num_cpus, namespace=cfg.namespace, include_dashboard=False, **options)
    else:
        ray.init(address=cfg.address, namespace=cfg.namespace, **options)


class BackendHost:
    """Body of the Ray actor: builds one in-process backend in the actor's process and serves it.

    Args:
        cfg: the model.
        timeout_s: per-request timeout handed to the backend (HTTP backends).
        log_file: where the actor's process writes its output and logs; None: Ray's default (the
            driver's terminal, unless Ray was started with ``log_to_driver=False``).
    """

    def __init__(self, cfg: ModelConfig, timeout_s: float, log_file: Path | None = None) -> None:
        if log_file is not None:
            redirect_process_output(log_file)  # first, so the model's loading output goes there too
        start = time.perf_counter()
        self.backend = make_backend(cfg, timeout_s=timeout_s)
        log.info("%s: %s backend ready in %.1f s", cfg.name, cfg.backend, time.perf_counter() - start)

    def ready(self) -> dict[str, Any]:
        """Once the backend is built (model loaded): the actor's pid, node and the resources Ray gave it."""
        import ray

        context = ray.get_runtime_context()
        return {
            "pid": os.getpid(),
            "node_id": context.get_node_id(),
            "resources": context.get_assigned_resources(),
        }

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        return self.backend.generate(requests)

    def batch_sizes(self) -> list[int]:
        """Batch sizes seen by a fake backend (tests); empty for other backends."""
        from rl_router.pool.fake import FakeBackend

        return list(self.backend.batch_sizes) if isinstance(self.backend, FakeBackend) else []


class RemoteBackend:
    """A :class:`~rl_router.pool.types.CandidatePool` for one model whose backend lives in a Ray actor.

    A call that outlives ``timeout_s`` kills the (stuck) actor and raises :class:`TimeoutError`; a
    call whose actor dies (its process, or its whole node) raises :class:`ActorRestartedError`.
    Either way a fresh actor is started at once, and the next call waits for it to be placed and to
    load its model: that wait does not count against ``timeout_s`` but is bounded by
    ``start_timeout_s`` from the actor's start. Past it a call raises :class:`TimeoutError` at once
    and leaves the actor waiting, so the model answers again as soon as a node with its resources
    is back. :class:`~rl_router.pool.pool.ModelPool` turns all of these into retries, then error
    results.

    Args:
        cfg: the model (backend, resources, options); shipped to the actor.
        timeout_s: seconds one ``generate`` call may take once the actor is ready.
        start_timeout_s: seconds a (re)started actor may take to be placed and become ready.
        log_file: absolute path the actor (and every replacement) appends its output and logs to;
            None: Ray's default.
    """

    enforces_timeout = True  # a stuck actor is killed and replaced (see above)
    cache_answers = True

    def __init__(
        self,
        cfg: ModelConfig,
        timeout_s: float,
        *,
        start_timeout_s: float = 3600.0,
        log_file: Path | None = None,
    ) -> None:
        self.cfg = cfg
        self.descriptor = cfg.descriptor()
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.log_file = log_file
        self.restarts = 0
        self.actor: Any = None
        self._ready: Any = None  # ObjectRef of the actor's ready() call
        self._info: dict[str, Any] | None = None  # its value, once the actor is up
        self._started = 0.0  # time.monotonic() of the actor's start
        self._spawn()

    def _spawn(self) -> None:
        import ray

        # Restarts are ours (a fresh actor, counted), so Ray's own stay off.
        remote = ray.remote(BackendHost).options(
            num_cpus=self.cfg.num_cpus,
            num_gpus=self.cfg.num_gpus,
            resources=dict(self.cfg.resources) or None,
            max_restarts=0,
        )
        self.actor = remote.remote(self.cfg, self.timeout_s, self.log_file)
        self._ready = self.actor.ready.remote()
        self._info = None
        self._started = time.monotonic()

    def wait_ready(self) -> None:
        """Block until the actor has built its backend (loaded its model), ``start_timeout_s`` at most.

        Raises:
            ray.exceptions.RayActorError: building the backend failed (the cause is in the message).
            TimeoutError: the actor is not up ``start_timeout_s`` after its start (no node has its
                resources free, or its model is still loading); it is left waiting.
        """
        self.actor_info()

    def actor_info(self) -> dict[str, Any]:
        """The actor's pid, node id and assigned resources, once it is ready (waits like wait_ready)."""
        import ray
        from ray.exceptions import GetTimeoutError

        if self._info is None:
            left = self.start_timeout_s - (time.monotonic() - self._started)
            try:
                self._info = ray.get(self._ready, timeout=max(left, 0.0))
            except GetTimeoutError:
                needs = {"CPU": self.cfg.num_cpus, "GPU": self.cfg.num_gpus, **self.cfg.resources}
                raise TimeoutError(
                    f"{self.descriptor.name}: actor not up {self.start_timeout_s:g}s after its start "
                    f"(no alive node offers {needs}, or the model is still loading)"
                ) from None
        return self._info

    def _replace(self) -> None:
        import ray

        ray.kill(self.actor)
        self.restarts += 1
        self._spawn()

    @property
    def descriptors(self) -> list[ModelDescriptor]:
        return [self.descriptor]

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        try:
            # At once unless the actor was (re)started since the last call. A TimeoutError from here
            # leaves the waiting actor alone: it is placed when a node with its resources is back.
            self.wait_ready()
            return ray.get(self.actor.generate.remote(list(requests)), timeout=self.timeout_s)
        except GetTimeoutError:
            self._replace()
            raise TimeoutError(f"{self.descriptor.name}: no answer within {self.timeout_s:g}s") from None
        except RayActorError as exc:
            self._replace()
            raise ActorRestartedError(f"{self.descriptor.name}: actor died ({describe_error(exc)})") from None

    def batch_sizes(self) -> list[int]:
        import ray

        return ray.get(self.actor.batch_sizes.remote())

    def close(self) -> None:
        import ray

        if self.actor is not None and ray.is_initialized():
            ray.kill(self.actor)
        self.actor = None
