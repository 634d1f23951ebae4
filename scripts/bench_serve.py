"""Routing overhead of ``rl-router serve``: a policy router over a zero-latency fake pool, under load.

Makes a policy run of random weights over two fake candidates that answer at once (``fake-small``,
``fake-large``), serves it exactly as ``rl-router serve`` does (local Ray, Ray Serve, one replica),
and sends ``--requests`` chat completions from ``--concurrency`` clients (the official ``openai``
client over HTTP on loopback). Every reply is checked to be its own prompt's echo. Prompts are
RouteLLM training prompts (their embeddings ship with the package, so this measures routing, not the
encoder); ``--fresh-prompts`` sends never-seen prompts, which the encoder must embed.

``--local-pool``: the zoo's two models on vLLM-CPU engines in Ray actors instead (``pool=local``),
so the figures include real generation (replies capped at 64 tokens); replies are not checked.

``--failing-half``: ``fake-large`` fails half its calls, and every request asks for it first
(``routing.target = {share: 1, model: fake-large}``); the line then adds the share of requests that
succeeded and the fallbacks the routing field counted.

Before it, ``cpu_ms_per_request``: CPU time all processes (clients, Ray Serve's proxy, the replica,
Ray) spent per request, a figure that, unlike latency, does not depend on what else the machine runs.
The last line printed is ``requests=<n> concurrency=<c> errors=<e> p50_ms=<> p99_ms=<> rps=<>``.

Launch:
    .venv/bin/python scripts/bench_serve.py
    .venv/bin/python scripts/bench_serve.py --failing-half
    .venv/bin/python scripts/bench_serve.py --requests 200 --fresh-prompts
    .venv/bin/python scripts/bench_serve.py --local-pool --requests 64 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

ZERO_LATENCY = ["pool=fake", "pool.models.1.fake.latency_s=0", "pool.retries=0"]


def compose(name: str, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from rl_router.cli import conf_dir
    from rl_router.registry import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name=name, overrides=overrides)


def make_run(path: Path, failing_half: bool, local_pool: bool = False) -> Path:
    """A run directory: the default config over the fake (or local) pool, random weights at step 1."""
    from rl_router.checkpoint import save_checkpoint
    from rl_router.routers.policy import build_policy, pool_descriptors

    # half a CPU per engine actor: with the Serve replica the two fit the two cores Ray Serve starts with
    local = ["debug=tiny", "pool=local", "pool.models.0.num_cpus=0.5", "pool.models.1.num_cpus=0.5"]
    overrides = local if local_pool else ["debug=tiny", *ZERO_LATENCY]
    if not local_pool:
        overrides += ["pool.models.0.fake.answers=[]", "pool.models.1.fake.answers=[]"]  # echo the prompt
    if failing_half:
        overrides.append("pool.models.1.fake.failure_rate=0.5")
    cfg = compose("config", overrides)
    path.mkdir(parents=True)
    OmegaConf.save(cfg, path / "config.yaml", resolve=True)
    torch.manual_seed(0)
    policy = build_policy(cfg.policy, pool_descriptors(cfg.pool))
    save_checkpoint(path, 1, policy, torch.optim.Adam(policy.parameters()), {"global_step": 1})
    return path


def prompts(n: int, fresh: bool) -> list[str]:
    if fresh:
        return [f"a never seen question {i} {uuid.uuid4().hex}" for i in range(n)]
    from rl_router.data.routellm import load_routing_splits

    train = load_routing_splits().train.prompts
    return [train[i % len(train)] for i in range(n)]


async def load(
    url: str, texts: list[str], concurrency: int, extra: dict | None, check: bool = True
) -> tuple[list, list, float]:
    """Send every text; returns (latencies in s of successes, failures, elapsed s)."""
    import httpx
    import openai

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    http = httpx.AsyncClient(limits=limits, timeout=120)
    client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0, http_client=http)
    todo = list(reversed(texts))
    done: list = []
    failed: list = []

    async def worker() -> None:
        while todo:
            text = todo.pop()
            start = time.perf_counter()
            try:
                reply = await client.chat.completions.create(
                    model="rl-router", messages=[{"role": "user", "content": text}], extra_body=extra
                )
                echo = reply.choices[0].message.content.split()  # the fake's echo, whitespace normalised
                if check and (echo[0] != f"{reply.model}:" or echo[1:9] != text.split()[:8]):
                    raise RuntimeError(f"reply of {reply.model} is not this request's")
                done.append((time.perf_counter() - start, reply.routing["fallbacks"]))
            except Exception as exc:  # counted, reported
                failed.append(exc)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    await client.close()
    return done, failed, elapsed


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by this process (the clients) and each of its children (Ray's), by name."""
    import psutil

    me = psutil.Process()
    total: dict[str, float] = {}
    for process in [me, *me.children(recursive=True)]:
        try:
            times, name = process.cpu_times(), process.name()
        except psutil.Error:  # ended meanwhile
            continue
        name = "clients" if process.pid == me.pid else name.split(":")[-1]  # ray::ProxyActor -> ProxyActor
        total[name] = total.get(name, 0.0) + times.user + times.system
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--failing-half", action="store_true", help="fake-large fails half its calls")
    parser.add_argument("--fresh-prompts", action="store_true", help="prompts the encoder has never seen")
    parser.add_argument("--local-pool", action="store_true", help="vLLM-CPU engines (pool=local), not fakes")
    args = parser.parse_args()

    from ray import serve

    from rl_router.config import typed
    from rl_router.serve.build import resolve
    from rl_router.serve.deployment import start

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = make_run(Path(tempfile.mkdtemp(prefix="bench_serve_")) / "run", args.failing_half, args.local_pool)
    config = typed(compose("serve", [f"checkpoint={run}", f"serve.port={port}"]))
    url = start(config, resolve(config))
    texts = prompts(args.requests, args.fresh_prompts)
    extra = {"routing": {"target": {"share": 1.0, "model": "fake-large"}}} if args.failing_half else None
    check = not args.local_pool  # real models do not echo
    asyncio.run(load(url, texts[: args.concurrency], args.concurrency, extra, check))  # warm-up, not counted
    cpu_before = cpu_seconds()
    done, failed, elapsed = asyncio.run(load(url, texts, args.concurrency, extra, check))
    cpu = {name: seconds - cpu_before.get(name, 0.0) for name, seconds in cpu_seconds().items()}
    serve.shutdown()

    latencies = np.array([d[0] for d in done]) * 1e3
    p50, p99 = np.percentile(latencies, [50, 99]) if len(latencies) else (float("nan"),) * 2
    if failed:
        print(f"first failure: {failed[0]!r}"[:300])
    top = sorted(cpu.items(), key=lambda kv: -kv[1])[:6]
    parts = ", ".join(f"{name} {1e3 * seconds / args.requests:.1f}" for name, seconds in top)
    print(f"cpu_ms_per_request={1e3 * sum(cpu.values()) / args.requests:.1f} ({parts})")
    line = (
        f"requests={args.requests} concurrency={args.concurrency} errors={len(failed)} "
        f"p50_ms={p50:.1f} p99_ms={p99:.1f} rps={args.requests / elapsed:.3g}"
    )
    if args.local_pool:
        line += " pool=local"
    if args.failing_half:
        fallbacks = sum(d[1] for d in done)
        line += f" failing=fake-large success_share={len(done) / args.requests:.4f} fallbacks={fallbacks}"
    print(line)


if __name__ == "__main__":
    main()
