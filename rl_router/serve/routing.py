"""Per-request routing of ``rl-router serve``: pick, budget, call, fall back. No web framework here.

A :class:`Routing` answers one validated :class:`ChatRequest` with a :class:`Reply` or raises a
:class:`ServeError` carrying the HTTP status (:mod:`rl_router.serve.app` turns it into JSON):

* ``model`` = the router's id: a **policy router** ranks the candidates by
  ``log p + offsets`` (the per-request target's offsets, else the router's ``calibration.json``,
  else none) and calls the best one the budget allows; if that call fails, the next in the ranking
  that the budget allows (each failure is a counted fallback); all failed: 502 with the reasons. An
  **LLM router** plays one whole Router-R1 episode (:meth:`LLMRouter.play`) whose ``<answer>`` is
  the reply, its choice of candidate in each routing turn moved by the request's share target's
  offsets (else its ``calibration.json``'s, else none); its candidate calls go through a
  :class:`BudgetPool` that refuses a call the budget cannot pay for before it is made (the env
  shows the router that refusal, as it shows any failure).
* ``model`` = a candidate's name: that candidate alone (budget checked, no fallback).
* anything else: 404.

The budget (``routing.max_usd``) is checked against each call's worst case before the call:
``prompt_bound x price_in + max_tokens x price_out``, where ``prompt_bound`` is the UTF-8 bytes of
the messages plus :data:`MESSAGE_OVERHEAD_TOKENS` per message (a byte-level tokenizer never makes
more tokens than bytes; the overhead covers chat-template tokens). So an unaffordable candidate is
never called, and the dollars spent never exceed the budget.

The router sees the conversation, not only its last message (:func:`conversation_text`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rl_router.pool.backend import error_result
from rl_router.pool.types import CandidatePool, Message, ModelDescriptor, Request, Result, SamplingParams
from rl_router.routers.llm import LLMRouter
from rl_router.routers.policy import PolicyRouter
from rl_router.serve.batching import Combiner
from rl_router.serve.embedder import router_inputs

MESSAGE_OVERHEAD_TOKENS = 8  # chat-template tokens a message may add (role header, separators)
log = logging.getLogger(__name__)


class ServeError(Exception):
    """A request the server answers with ``status``; ``param`` names the request field at fault."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        routing: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.routing = status, message, param, code, routing


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat request (:func:`rl_router.serve.app.parse_chat_request` builds it)."""

    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None  # None: each candidate's default
    temperature: float | None = None
    top_p: float | None = None
    max_usd: float | None = None  # routing.max_usd: most dollars this request may spend
    target: dict[str, Any] | None = None  # routing.target: {"share", "model"} or {"cost_per_query"}


@dataclass
class Reply:
    """What answers a request: the text, the model that wrote it, usage, and the routing field."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    routing: dict[str, Any] = field(default_factory=dict)


def conversation_text(messages: Sequence[Message], cap: int, count_tokens: Callable[[str], int]) -> str:
    """What the router reads: the newest messages that fit in ``cap`` tokens, oldest first.

    A conversation of one message is that message's content exactly (the router's training input).
    Longer ones are ``role: content`` lines; older messages are dropped whole until the rest fits,
    and the last message is always kept (the encoder then truncates it as it did in training).

    >>> words = lambda t: len(t.split())
    >>> conversation_text([{"role": "user", "content": "hi there"}], 256, words)
    'hi there'
    >>> msgs = [{"role": "user", "content": "a b c"}, {"role": "assistant", "content": "d"},
    ...         {"role": "user", "content": "and e?"}]
    >>> conversation_text(msgs, 5, words)
    'assistant: d\\nuser: and e?'
    """
    if len(messages) == 1:
        return messages[0]["content"]
    kept: list[str] = []
    used = 0
    for message in reversed(messages):
        line = f"{message['role']}: {message['content']}"
        cost = count_tokens(line)
        if kept and used + cost > cap:
            break
        kept.append(line)
        used += cost
    return "\n".join(reversed(kept))


def prompt_token_bound(messages: Sequence[Message]) -> int:
    """Most tokens any byte-level tokenizer can make of ``messages`` (bytes + template overhead).

    >>> prompt_token_bound([{"role": "user", "content": "héllo"}])
    14
    """
    return sum(len(m["content"].encode("utf-8")) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def worst_case_usd(descriptor: ModelDescriptor, messages: Sequence[Message], max_tokens: int) -> float:
    """The most a call can cost: the prompt bound at ``price_in``, ``max_tokens`` at ``price_out``."""
    return descriptor.cost_usd(prompt_token_bound(messages), max_tokens)


def ranking(scores: np.ndarray) -> list[int]:
    """Candidate indices, best score first; ties keep the lower index first (as ``np.argmax``).

    >>> ranking(np.array([0.1, 0.5, 0.5, -1.0]))
    [1, 2, 0, 3]
    """
    return [int(i) for i in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")]


class Routing:
    """Base of both router kinds: model lookup, sampling, the budgeted call in ranking order.

    Args:
        router_id: the id requests name to be routed (``serve.model_name``).
        pool: the candidate pool (its names equal the router's candidates, in order).
        descriptors: the pool's candidates: their prices are what a call is charged, so what the
            budget checks (the router's own descriptors may carry its training prices).
    """

    kind = "base"

    def __init__(self, router_id: str, pool: CandidatePool, descriptors: Sequence[ModelDescriptor]) -> None:
        self.router_id = router_id
        self.pool = pool
        self.descriptors = list(descriptors)
        self.names = [d.name for d in self.descriptors]

    @property
    def model_ids(self) -> list[str]:
        """The ids ``/v1/models`` lists: the router, then each candidate."""
        return [self.router_id, *self.names]

    def answer(self, chat: ChatRequest) -> Reply:
        """Route (or call the named candidate) and answer; raises :class:`ServeError`."""
        if chat.model == self.router_id:
            return self.route(chat)
        if chat.model in self.names:
            if chat.target is not None:
                raise ServeError(
                    400, "routing.target applies to the router, not to one candidate", "routing.target"
                )
            reply = self.call_in_order([self.names.index(chat.model)], chat, "direct")
            reply.routing.update(router=self.router_id, kind="direct")
            return reply
        raise ServeError(
            404,
            f"model {chat.model!r} does not exist here; use {self.router_id!r} (routed) or a candidate "
            f"({', '.join(self.names)})",
            "model",
            "model_not_found",
        )

    def route(self, chat: ChatRequest) -> Reply:
        raise NotImplementedError

    def sampling(self, descriptor: ModelDescriptor, chat: ChatRequest) -> SamplingParams:
        """The candidate's default decoding with the request's overrides."""
        s = descriptor.sampling
        return SamplingParams(
            temperature=s.temperature if chat.temperature is None else chat.temperature,
            max_tokens=s.max_tokens if chat.max_tokens is None else chat.max_tokens,
            top_p=s.top_p if chat.top_p is None else chat.top_p,
            seed=s.seed,
        )

    def call_in_order(self, order: Sequence[int], chat: ChatRequest, what: str) -> Reply:
        """Call the candidates of ``order`` one by one until one answers, skipping unaffordable ones."""
        calls: list[dict[str, Any]] = []
        skipped: dict[str, float] = {}
        for j in order:
            d = self.descriptors[j]
            sampling = self.sampling(d, chat)
            worst = worst_case_usd(d, chat.messages, sampling.max_tokens)
            if chat.max_usd is not None and worst > chat.max_usd:
                skipped[d.name] = worst
                continue
            result = self._call(Request(d.name, tuple(chat.messages), sampling))
            calls.append(call_record(d.name, result, worst))
            if result.ok:
                routing = spending(calls) | {
                    "answered_by": d.name,
                    "fallbacks": len(calls) - 1,
                    "skipped_over_budget": skipped,
                    "max_usd": chat.max_usd,
                }
                return Reply(result.text, d.name, result.input_tokens, result.output_tokens, routing)
        routing = spending(calls) | {"fallbacks": max(len(calls) - 1, 0), "skipped_over_budget": skipped}
        if not calls:
            cheapest = min(skipped, key=skipped.get)  # type: ignore[arg-type]
            raise ServeError(
                400,
                f"routing.max_usd={chat.max_usd:g}: no {what} candidate fits in it (worst case of the "
                f"cheapest, {cheapest}: ${skipped[cheapest]:.6g}; lower max_tokens or raise the budget)",
                "routing.max_usd",
                "over_budget",
                routing,
            )
        reasons = "; ".join(f"{c['model']}: {c['error']}" for c in calls)
        raise ServeError(
            502, f"every candidate the budget allows failed: {reasons}", None, "candidates_failed", routing
        )

    def _call(self, request: Request) -> Result:
        try:
            return self.pool.generate([request])[0]
        except Exception as exc:  # a pool that raises despite its contract: one failed call
            log.warning("candidate %s raised %s", request.model, type(exc).__name__)
            return error_result(f"{type(exc).__name__} in the pool")

    def close(self) -> None:
        self.pool.close()


def call_record(model: str, result: Result, worst_usd: float) -> dict[str, Any]:
    """One candidate call as the routing field lists it."""
    record = {
        "model": model,
        "ok": result.ok,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "cost_usd": result.cost_usd,
        "worst_case_usd": worst_usd,
    }
    if not result.ok:
        record["error"] = result.error
    return record


def spending(calls: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The calls and their totals: models called in order, tokens, dollars."""
    return {
        "models": [c["model"] for c in calls],
        "calls": list(calls),
        "input_tokens": sum(c["input_tokens"] for c in calls),
        "output_tokens": sum(c["output_tokens"] for c in calls),
        "cost_usd": sum(c["cost_usd"] for c in calls),
    }


class PolicyRouting(Routing):
    """A policy router's pick per request (see the module docstring).

    Args:
        router: the policy router.
        pool: the candidate pool.
        embed: texts -> float32 ``[n, 384]`` (a :class:`~rl_router.serve.embedder.QueryEmbedder`).
        count_tokens: what the context cap counts (the encoder's tokenizer).
        context_tokens: the cap.
        targets: per-request targets' offsets (:class:`~rl_router.serve.targets.TargetOffsets`);
            None: requests with a target are refused.
        router_id: the router's id.
    """

    kind = "policy"

    def __init__(
        self,
        router: PolicyRouter,
        pool: CandidatePool,
        embed: Callable[[list[str]], np.ndarray],
        count_tokens: Callable[[str], int],
        context_tokens: int = 256,
        targets: Any = None,
        router_id: str = "rl-router",
        targets_off_reason: str = "per-request targets are off on this server (serve.targets=false)",
    ) -> None:
        super().__init__(router_id, pool, pool.descriptors)
        self.router = router
        self.embed = embed
        self.count_tokens = count_tokens
        self.context_tokens = context_tokens
        self.targets = targets
        self.targets_off_reason = targets_off_reason
        self._forward = Combiner(self._log_probs)  # concurrent requests: one policy forward

    def _log_probs(self, texts: list[str]) -> list[np.ndarray]:
        return list(self.router.log_probs(router_inputs(self.router, texts, self.embed)))

    def route(self, chat: ChatRequest) -> Reply:
        text = conversation_text(chat.messages, self.context_tokens, self.count_tokens)
        log_p = self._forward.call([text])[0]
        target: dict[str, Any] | None = None
        if chat.target is not None:
            if self.targets is None:
                raise ServeError(400, f"routing.target: {self.targets_off_reason}", "routing.target")
            from rl_router.serve.targets import TargetError

            try:
                offsets = self.targets.offsets(chat.target)
            except TargetError as err:
                raise ServeError(400, str(err), err.field) from err
            target = dict(chat.target)
        elif self.router.calibration is not None:
            offsets = np.asarray(self.router.calibration.offsets, dtype=np.float64)
            target = dict(self.router.calibration.target)
        else:
            offsets = np.zeros(len(self.names))
        order = ranking(log_p + offsets)
        reply = self.call_in_order(order, chat, "ranked")
        reply.routing = {
            "router": self.router_id,
            "kind": self.kind,
            "chosen": self.names[order[0]],
            "ranking": [self.names[j] for j in order],
            "probs": {n: float(math.exp(v)) for n, v in zip(self.names, log_p, strict=True)},
            "target": target,
            "offsets": {n: float(v) for n, v in zip(self.names, offsets, strict=True)},
            **reply.routing,
        }
        return reply


class BudgetPool:
    """A pool that refuses, without calling it, a candidate whose worst case the budget cannot pay.

    It records every call (made or refused) for the routing field. One per request.
    """

    def __init__(self, pool: CandidatePool, max_usd: float | None) -> None:
        self.pool = pool
        self.left = max_usd
        self.calls: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self._by_name = {d.name: d for d in pool.descriptors}

    @property
    def descriptors(self) -> list[ModelDescriptor]:
        return self.pool.descriptors

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        results: list[Result | None] = [None] * len(requests)
        sent: list[int] = []
        worst: dict[int, float] = {}
        for i, request in enumerate(requests):
            d = self._by_name.get(request.model)
            if d is None:
                results[i] = error_result(f"unknown model {request.model!r}")
                continue
            max_tokens = (request.sampling or d.sampling).max_tokens
            worst[i] = worst_case_usd(d, request.messages, max_tokens)
            if self.left is not None and worst[i] > self.left:
                self.refused.append(d.name)
                results[i] = error_result(
                    f"not called: its worst case ${worst[i]:.6g} exceeds the budget left"
                )
                continue
            if self.left is not None:
                self.left -= worst[i]  # reserved; the unspent part is returned below
            sent.append(i)
        answers = self.pool.generate([requests[i] for i in sent]) if sent else []
        for i, result in zip(sent, answers, strict=True):
            results[i] = result
            if self.left is not None:
                self.left += worst[i] - result.cost_usd
            self.calls.append(call_record(requests[i].model, result, worst[i]))
        return results  # type: ignore[return-value]  # every index was filled

    def close(self) -> None:
        """The shared pool outlives the request."""


class LLMRouting(Routing):
    """An LLM router's Router-R1 episode per request; episodes run one at a time per replica.

    Its operating point: a request's share target (``targets``: the offsets of
    :class:`~rl_router.serve.targets.TargetOffsets`, applied by
    :class:`~rl_router.routers.llm_choice.CalibratedTurns` to the name each routing turn writes),
    else the router's ``calibration.json``, else its own choices.

    Args:
        router: the LLM router.
        pool: the candidate pool.
        context_tokens: the cap on the conversation the router reads, in its own tokens.
        router_id: the router's id.
        generate: writes the router's turns (None: the router's model, greedily); a test's script
            takes no target.
        targets: per-request targets' offsets; None: requests with a target are refused.
        targets_off_reason: why, in the 400.
    """

    kind = "llm"

    def __init__(
        self,
        router: LLMRouter,
        pool: CandidatePool,
        context_tokens: int = 256,
        router_id: str = "rl-router",
        generate: Any = None,
        targets: Any = None,
        targets_off_reason: str = "per-request targets are off on this server (serve.targets=false)",
    ) -> None:
        from rewards.cost import PercentileCostNormalizer
        from rl_router.generation import token_counter

        super().__init__(router_id, pool, pool.descriptors)
        self.router = router
        self.context_tokens = context_tokens
        self.generate = generate
        self.targets = targets
        self.targets_off_reason = targets_off_reason
        self.count_tokens = token_counter(router.tokenizer)
        self.normalizer = PercentileCostNormalizer(window=router.protocol.cost_window)
        self._lock = threading.Lock()  # one HF generation at a time: the model and tokenizer are shared

    def operating_point(self, chat: ChatRequest) -> tuple[Any, dict[str, Any] | None, list[float] | None]:
        """``(turn writer, target, offsets)`` of this request (see the class docstring)."""
        from rl_router.routers.llm_choice import CalibratedTurns

        if chat.target is None:
            calibration = self.router.calibration
            if calibration is None:
                return self.generate, None, None
            return self.generate, dict(calibration.target), list(calibration.offsets)
        if self.targets is None or self.generate is not None:
            reason = self.targets_off_reason if self.targets is None else "this router's turns are scripted"
            raise ServeError(400, f"routing.target: {reason}", "routing.target")
        from rl_router.serve.targets import TargetError

        try:
            offsets = [float(v) for v in self.targets.offsets(chat.target)]
        except TargetError as err:
            raise ServeError(400, str(err), err.field) from err
        turns = CalibratedTurns(self.router.model, self.router.tokenizer, self.names, offsets)
        return turns, dict(chat.target), offsets

    def route(self, chat: ChatRequest) -> Reply:
        generate, target, offsets = self.operating_point(chat)
        with self._lock:
            question = conversation_text(chat.messages, self.context_tokens, self.count_tokens)
            row = {"id": "request", "question": question, "golden_answers": [""]}
            budget = BudgetPool(self.pool, chat.max_usd)
            episode = self.router.play(budget, [row], 1, self.normalizer, generate)[0]
            prompt_tokens = self.count_tokens(episode["prompt"])
            completion_tokens = self.count_tokens(episode["completion"])
        routing = spending(budget.calls) | {
            "router": self.router_id,
            "kind": self.kind,
            "routes": episode["routes"],
            "turns": len(episode["turns"]),
            "refused_over_budget": budget.refused,
            "candidate_errors": episode["candidate_errors"],
            "max_usd": chat.max_usd,
            "probs": None,
            "target": target,
            "offsets": None if offsets is None else dict(zip(self.names, offsets, strict=True)),
        }
        if episode["answer"] is None:
            violations = "; ".join(episode["violations"]) or "no <answer> within the token budget"
            raise ServeError(
                502, f"the router's episode ended without an answer: {violations}", None, "no_answer", routing
            )
        return Reply(episode["answer"], self.router_id, prompt_tokens, completion_tokens, routing)
