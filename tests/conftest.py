"""Shared fixtures: offline by default, composed configs, a loopback OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi import Request as HTTPRequest  # module level: FastAPI resolves annotations from globals
from fastapi.responses import JSONResponse

# Tests never reach a hub: transformers / datasets / huggingface_hub must stay offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture
def compose():
    """Compose a root config (``config``, ``eval`` or ``export``) with overrides, as the CLI does."""
    from rl_router.cli import compose_config
    from rl_router.registry import register_configs

    register_configs()  # now, not at the first compose: some tests read the schemas from the ConfigStore

    def _compose(overrides: list[str] | None = None, config_name: str = "config"):
        return compose_config(config_name, overrides or [])

    return _compose


@dataclass
class LoopbackServer:
    """What the fake endpoint saw; ``url`` is its ``/v1`` root."""

    url: str
    calls: Counter = field(default_factory=Counter)  # model -> number of requests
    auth: list[str] = field(default_factory=list)  # Authorization headers received


@pytest.fixture
def openai_server() -> Iterator[LoopbackServer]:
    """A real HTTP server on 127.0.0.1 speaking ``/v1/chat/completions``; behaviour by model id.

    ``echo``: answers the last message reversed. ``fail``: HTTP 500 whose body echoes the request's
    Authorization header (as careless gateways do). ``stall``: answers after 3 s. ``flaky``: HTTP 500
    on the first attempt of each message, then answers.
    """
    app = FastAPI()
    seen: Counter = Counter()
    state = LoopbackServer(url="")

    @app.post("/v1/chat/completions")
    async def chat(request: HTTPRequest):
        body = await request.json()
        model, content = body["model"], body["messages"][-1]["content"]
        state.calls[model] += 1
        state.auth.append(request.headers.get("authorization", ""))
        seen[(model, content)] += 1
        if model == "fail" or (model == "flaky" and seen[(model, content)] == 1):
            auth = request.headers.get("authorization", "")
            return JSONResponse(
                {"error": {"message": f"upstream exploded; headers: {auth}"}}, status_code=500
            )
        if model == "stall":
            await asyncio.sleep(3.0)
        text = content[::-1]
        return {
            "id": "cmpl-1",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": len(content.split()) + 5,
                "completion_tokens": len(text.split()),
                "total_tokens": len(content.split()) + 5 + len(text.split()),
            },
        }

    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", timeout_graceful_shutdown=0
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("loopback server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    state.url = f"http://127.0.0.1:{port}/v1"
    yield state
    server.should_exit = True
    thread.join(timeout=5)
