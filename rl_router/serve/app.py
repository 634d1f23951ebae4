"""The HTTP API of ``rl-router serve``: an OpenAI-compatible FastAPI app over a :class:`Routing`.

Endpoints: ``POST /v1/chat/completions`` (``stream`` included), ``GET /v1/models`` (the router and
each candidate), ``GET /health``. Every request is checked before anything is routed:

* the key (``Authorization: Bearer <key>``, when ``serve.api_key_env`` names one): missing or wrong
  -> 401 (``/health`` needs none);
* the size: a body over ``serve.max_request_bytes`` or more than ``serve.max_messages`` messages -> 413;
* the body (:func:`parse_chat_request`): not JSON, a wrong type or value -> 400 whose ``param`` and
  message name the field (``messages[2].content``);
* ``model``: neither the router's id nor a candidate -> 404.

Errors have OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``. Nothing here logs a
prompt, a reply or a key: the request log line holds the status, the models and the timings.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi import Request as HTTPRequest  # module level: FastAPI resolves annotations from globals
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from rl_router.serve.config import ServerConfig
from rl_router.serve.routing import ChatRequest, Reply, Routing, ServeError

ROLES = ("system", "developer", "user", "assistant")
UNSUPPORTED = ("tools", "tool_choice", "functions", "function_call", "response_format", "logprobs")
ROUTING_KEYS = ("max_usd", "target")
log = logging.getLogger(__name__)


def bad(field: str, problem: str) -> ServeError:
    return ServeError(400, f"{field}: {problem}", field)


def _number(value: Any, field: str, lo: float, hi: float, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad(field, f"must be a finite number, not {type(value).__name__}")
    if value < lo or value > hi or (lo_open and value == lo):
        raise bad(field, f"={value!r} is outside {'(' if lo_open else '['}{lo:g}, {hi:g}]")
    return float(value)


def _integer(value: Any, field: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(field, f"must be an integer, not {type(value).__name__}")
    if value < lo:
        raise bad(field, f"={value} must be at least {lo}")
    return value


def _content(value: Any, field: str) -> str:
    """A message's text: a string, or a list of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise bad(field, f"must be a string or a list of text parts, not {type(value).__name__}")
    texts = []
    for j, part in enumerate(value):
        here = f"{field}[{j}]"
        if not isinstance(part, Mapping) or part.get("type") != "text":
            raise bad(f"{here}.type", "only text parts are supported")
        if not isinstance(part.get("text"), str):
            raise bad(f"{here}.text", "must be a string")
        texts.append(part["text"])
    return "".join(texts)


def _target(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise bad("routing.target", "must be an object: {share, model} or {cost_per_query}")
    if "cost_per_query" in value:
        extra = sorted(str(k) for k in value if k != "cost_per_query")
        if extra:
            raise bad(f"routing.target.{extra[0]}", "a cost target holds cost_per_query only")
        return {
            "cost_per_query": _number(value["cost_per_query"], "routing.target.cost_per_query", 0, 1e6, True)
        }
    extra = sorted(str(k) for k in value if k not in ("share", "model"))
    if extra:
        raise bad(f"routing.target.{extra[0]}", "unknown key; a target is {share, model} or {cost_per_query}")
    if "share" not in value:
        raise bad("routing.target.share", "required (or give cost_per_query)")
    target: dict[str, Any] = {"share": _number(value["share"], "routing.target.share", 0, 1)}
    if value.get("model") is not None:
        if not isinstance(value["model"], str):
            raise bad("routing.target.model", "must be a candidate's name")
        target["model"] = value["model"]
    return target


def parse_chat_request(body: Any, max_messages: int) -> tuple[ChatRequest, bool, bool]:
    """``(request, stream, include_usage)`` of a decoded JSON body; raises :class:`ServeError` 400/413."""
    if not isinstance(body, Mapping):
        raise bad("body", f"must be a JSON object, not {type(body).__name__}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("model", "required: a non-empty string (see GET /v1/models)")
    for key in UNSUPPORTED:
        if body.get(key) not in (None, False, [], {"type": "text"}):
            raise bad(key, "not supported by this router server")
    if body.get("n") not in (None, 1):
        raise bad("n", "only n=1 is supported")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("messages", "required: a non-empty list of {role, content}")
    if len(messages) > max_messages:
        raise ServeError(
            413, f"messages: {len(messages)} messages; this server takes at most {max_messages}", "messages"
        )
    parsed = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise bad(f"messages[{i}]", f"must be an object, not {type(message).__name__}")
        if message.get("role") not in ROLES:
            raise bad(f"messages[{i}].role", f"must be one of {', '.join(ROLES)}")
        if "content" not in message:
            raise bad(f"messages[{i}].content", "required")
        parsed.append(
            {"role": message["role"], "content": _content(message["content"], f"messages[{i}].content")}
        )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad("stream", f"must be true or false, not {type(stream).__name__}")
    options = body.get("stream_options") or {}
    if not isinstance(options, Mapping) or not isinstance(options.get("include_usage", False), bool):
        raise bad("stream_options", "must be an object like {include_usage: true}")
    max_tokens = None
    for key in ("max_tokens", "max_completion_tokens"):
        if body.get(key) is not None:
            max_tokens = _integer(body[key], key, 1)
    temperature = body.get("temperature")
    top_p = body.get("top_p")
    routing = body.get("routing") or {}
    if not isinstance(routing, Mapping):
        raise bad("routing", "must be an object like {max_usd, target}")
    unknown = sorted(str(k) for k in routing if k not in ROUTING_KEYS)
    if unknown:
        raise bad(f"routing.{unknown[0]}", f"unknown key; routing takes {', '.join(ROUTING_KEYS)}")
    max_usd = routing.get("max_usd")
    chat = ChatRequest(
        model=model,
        messages=tuple(parsed),
        max_tokens=max_tokens,
        temperature=None if temperature is None else _number(temperature, "temperature", 0, 2),
        top_p=None if top_p is None else _number(top_p, "top_p", 0, 1, True),
        max_usd=None if max_usd is None else _number(max_usd, "routing.max_usd", 0, 1e9),
        target=None if routing.get("target") is None else _target(routing["target"]),
    )
    return chat, stream, bool(options.get("include_usage", False))


async def read_body(request: HTTPRequest, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ServeError(413, f"body: {declared} bytes; this server takes at most {limit}", "body")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ServeError(413, f"body: over {limit} bytes; this server takes at most {limit}", "body")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_json(body: bytes) -> Any:
    """The JSON document of ``body``; 400 naming the position, never quoting the body."""
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise bad("body", f"not UTF-8 (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise bad("body", f"not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    except RecursionError:
        raise bad("body", "JSON nested too deeply") from None


def error_response(err: ServeError) -> JSONResponse:
    kind = (
        "invalid_request_error"
        if err.status < 500
        else "upstream_error"
        if err.status == 502
        else "server_error"
    )
    body: dict[str, Any] = {
        "error": {"message": err.message, "type": kind, "param": err.param, "code": err.code}
    }
    if err.routing is not None:
        body["routing"] = err.routing
    return JSONResponse(body, status_code=err.status)


def completion(reply: Reply, request_id: str, created: int) -> dict[str, Any]:
    """A ``chat.completion`` object, plus the ``routing`` field."""
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": reply.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": usage(reply),
        "routing": reply.routing,
    }


def usage(reply: Reply) -> dict[str, int]:
    total = reply.prompt_tokens + reply.completion_tokens
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": total,
    }


def stream_events(reply: Reply, request_id: str, created: int, include_usage: bool) -> Iterator[str]:
    """Server-sent events of ``chat.completion.chunk`` objects; the last one carries ``routing``.

    The reply is complete before the first event (candidates answer whole), so a failure is still
    an HTTP status, never a broken stream.
    """
    base = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": reply.model}

    def event(choices: list, **extra: Any) -> str:
        return f"data: {json.dumps(base | {'choices': choices} | extra)}\n\n"

    yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    pieces = re.findall(r"\s*\S+|\s+$", reply.text)
    for start in range(0, len(pieces), 8):
        delta = {"content": "".join(pieces[start : start + 8])}
        yield event([{"index": 0, "delta": delta, "finish_reason": None}])
    yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}], routing=reply.routing)
    if include_usage:
        yield event([], usage=usage(reply))
    yield "data: [DONE]\n\n"


def make_app(routing: Routing, settings: ServerConfig, api_key: str | None = None) -> FastAPI:
    """The FastAPI app answering for ``routing`` (Ray Serve's ingress, or any ASGI server).

    ``api_key``: the key clients must send as ``Authorization: Bearer <key>``; None: open.
    """
    key = api_key
    app = FastAPI(title="rl-router serve", docs_url=None, redoc_url=None, openapi_url=None)
    created_at = int(time.time())

    def authorize(request: HTTPRequest) -> None:
        if key is None:
            return
        given = request.headers.get("authorization", "")
        token = given[7:] if given[:7].lower() == "bearer " else ""
        if not hmac.compare_digest(token.encode(), key.encode()):
            raise ServeError(
                401, "missing or wrong API key (send Authorization: Bearer <key>)", None, "invalid_api_key"
            )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "router": routing.router_id,
            "kind": routing.kind,
            "candidates": routing.names,
        }

    @app.get("/v1/models")
    async def models(request: HTTPRequest) -> Any:
        try:
            authorize(request)
        except ServeError as err:
            return error_response(err)
        kinds = ["router"] + ["candidate"] * len(routing.names)
        data = [
            {"id": name, "object": "model", "created": created_at, "owned_by": "rl-router", "kind": kind}
            for name, kind in zip(routing.model_ids, kinds, strict=True)
        ]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: HTTPRequest) -> Any:
        start = time.perf_counter()
        status, answered, calls = 200, "-", 0
        try:
            authorize(request)
            body = decode_json(await read_body(request, settings.max_request_bytes))
            chat, stream, include_usage = parse_chat_request(body, settings.max_messages)
            reply = await run_in_threadpool(routing.answer, chat)
            answered, calls = reply.model, len(reply.routing.get("calls", []))
        except ServeError as err:
            status = err.status
            return error_response(err)
        except Exception as exc:  # a bug must cost one request a 500, never the server
            status = 500
            log.error("internal error (%s) answering a request", type(exc).__name__)
            return error_response(ServeError(500, f"internal error ({type(exc).__name__})", None, "internal"))
        finally:
            log.info(
                "chat %d model=%s calls=%d %.1fms",
                status,
                answered,
                calls,
                1e3 * (time.perf_counter() - start),
            )
        request_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if stream:
            events = stream_events(reply, request_id, created, include_usage)
            return StreamingResponse(events, media_type="text/event-stream")
        return JSONResponse(completion(reply, request_id, created))

    return app
