"""Ray Serve: the deployment that holds the router replicas, and the ``rl-router serve`` launch.

One deployment, ``router``: each replica builds the router, its candidate pool
(:func:`rl_router.pool.build_pool`: in-process backends, or Ray actors for vLLM candidates) and the
FastAPI app of :mod:`rl_router.serve.app`, which is its ingress (``@serve.ingress``, bound at replica
start through ``__serve_build_asgi_app__``). Ray Serve's HTTP proxy spreads requests over the
replicas and holds at most ``serve.max_ongoing_requests`` in each.

Local or cluster, the same command: ``serve.ray.address=null`` starts a local Ray, ``auto`` or
``host:6379`` joins a running cluster (the checkpoint and pool must be reachable from its nodes).
Ray and Ray Serve are imported only here, and only when serving.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rl_router.config import typed
from rl_router.serve.config import ServeConfig

DEPLOYMENT = "router"
log = logging.getLogger(__name__)


class Secret:
    """The API key on its way to the replicas: its repr never shows it (a key never reaches a log)."""

    def __init__(self, value: str | None) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Secret(<redacted>)" if self.value else "Secret(None)"


def request_log_lines(enabled: bool) -> None:
    """This package's log lines in the replica's log; ``enabled``: also one INFO line per request."""
    logger = logging.getLogger("rl_router.serve")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s -- %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO if enabled else logging.WARNING)


def router_deployment(config: ServeConfig) -> Any:
    """The Ray Serve deployment of the router replicas, sized by ``config.serve``."""
    from ray import serve

    @serve.ingress()
    class RouterIngress:
        """One replica: the routing (router + pool) and its FastAPI app."""

        def __init__(self, config: ServeConfig, pool_cfg: dict[str, Any], key: Secret) -> None:
            from rl_router.serve.build import build_routing

            request_log_lines(config.serve.access_log)
            self.config, self.key = config, key
            self.routing = build_routing(config, pool_cfg)

        def __serve_build_asgi_app__(self) -> Any:
            from rl_router.serve.app import make_app

            return make_app(self.routing, self.config.serve, self.key.value)

        def __del__(self) -> None:
            routing = getattr(self, "routing", None)
            if routing is not None:
                routing.close()

    s = config.serve
    return serve.deployment(
        RouterIngress,
        name=DEPLOYMENT,
        num_replicas=s.num_replicas,
        max_ongoing_requests=s.max_ongoing_requests,
        ray_actor_options={"num_cpus": s.replica_cpus},
        logging_config={"enable_access_log": s.access_log},
    )


def api_key(config: ServeConfig) -> Secret:
    """The key clients must send, read from ``serve.api_key_env`` here, in the launching process.

    Raises:
        ValueError: the variable is named but not set.
    """
    name = config.serve.api_key_env
    if name is None:
        return Secret(None)
    if not os.environ.get(name):
        raise ValueError(f"serve.api_key_env={name}: that environment variable is not set (export it)")
    return Secret(os.environ[name])


def start(config: ServeConfig, pool_cfg: dict[str, Any]) -> str:
    """Start (or join) Ray, start Serve's HTTP proxy and deploy the router; returns the ``/v1`` URL."""
    import ray
    from ray import serve

    r, s = config.serve.ray, config.serve
    key = api_key(config)
    if not ray.is_initialized():
        quiet = {"logging_level": logging.WARNING}
        if r.address is None:
            ray.init(num_cpus=r.num_cpus, namespace=r.namespace, include_dashboard=False, **quiet)
        else:
            ray.init(address=r.address, namespace=r.namespace, **quiet)
    serve.start(
        http_options={"host": s.host, "port": s.port, "request_timeout_s": s.request_timeout_s},
        logging_config={"enable_access_log": s.access_log},
    )
    app = router_deployment(config).bind(config, pool_cfg, key)
    serve.run(app, name=s.app_name, route_prefix="/", blocking=False)
    return f"http://{s.host}:{s.port}/v1"


def run_serve(cfg: DictConfig) -> None:
    """The Hydra task of ``rl-router serve``: check, start, serve until Ctrl-C or SIGTERM."""
    from ray import serve

    from rl_router.serve.build import resolve

    config: ServeConfig = typed(cfg)
    if Path(config.checkpoint).is_dir():  # replicas do not share the launching directory
        config.checkpoint = str(Path(config.checkpoint).resolve())
    if cfg.get("pool") is not None:
        config.pool = cfg.pool
    api_key(config)  # fail before anything loads
    pool_cfg = resolve(config)
    config.pool = None  # the replicas get the checked, plain pool_cfg
    url = start(config, pool_cfg)
    names = ", ".join(m["name"] for m in pool_cfg["models"])
    print(
        f"rl-router serve: {url} (model {config.serve.model_name!r} routes to {names}); Ctrl-C stops",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        serve.delete(config.serve.app_name)
        print("rl-router serve: stopped", flush=True)
