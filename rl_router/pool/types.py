"""The small contract every environment sees: descriptors, requests, results and the pool Protocol.

Envs import only :class:`CandidatePool`; backends (replay, fake, hf, vllm, openai, Ray-hosted) live
beside it and satisfy :class:`Backend` structurally, declaring the traits the pool reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

Message = dict[str, str]  # {"role": "user" | "system" | "assistant", "content": "..."}


@dataclass(frozen=True)
class SamplingParams:
    """Decoding settings of one candidate call (part of the response-cache key)."""

    temperature: float = 0.0  # Router-R1 calls candidates greedily
    max_tokens: int = 512
    top_p: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class ModelDescriptor:
    """What the router is told about a candidate, and how the pool reaches it."""

    name: str  # the name the router uses to route (unique in a pool)
    backend: str  # "replay" | "fake" | "hf" | "vllm" | "openai"
    model: str = ""  # hub id, local path or zoo name; the column name for replay
    revision: str = "main"
    params_b: float = 0.0  # parameter count in billions (0 when unknown)
    description: str = ""  # one line of capability text shown to LLM routers
    price_in: float = 0.0  # dollars per 1M input tokens
    price_out: float = 0.0  # dollars per 1M output tokens
    sampling: SamplingParams = field(default_factory=SamplingParams)

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        """List price of a call.

        >>> ModelDescriptor("m", "fake", price_in=1.0, price_out=2.0).cost_usd(1_000_000, 500_000)
        2.0
        """
        return (input_tokens * self.price_in + output_tokens * self.price_out) / 1e6


def dearest(descriptors: Sequence[ModelDescriptor]) -> int:
    """Index of the dearest candidate: the highest ``price_in + price_out`` (the first of equals).

    >>> dearest([ModelDescriptor("a", "fake", price_out=1.0), ModelDescriptor("b", "fake", price_in=2.0)])
    1
    """
    prices = [d.price_in + d.price_out for d in descriptors]
    return prices.index(max(prices))


@dataclass(frozen=True)
class Request:
    """One candidate call. ``query_id`` lets a replay pool look up the recorded answer."""

    model: str
    messages: tuple[Message, ...]
    sampling: SamplingParams | None = None  # None: the model's default sampling
    query_id: str | None = None


@dataclass
class Result:
    """Outcome of one call; ``error`` is set (and ``text`` empty) when the call failed."""

    text: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    cache_hit: bool = False
    error: str | None = None
    score: float | None = None  # recorded correctness (replay pools only)

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class CandidatePool(Protocol):
    """What envs and trainers need from a pool of candidate models."""

    @property
    def descriptors(self) -> list[ModelDescriptor]: ...

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        """Answer every request, in order. Never raises for a candidate fault: the Result carries it."""
        ...

    def close(self) -> None: ...


class Backend(CandidatePool, Protocol):
    """One model's server inside :class:`~rl_router.pool.pool.ModelPool`: a one-model CandidatePool.

    Each backend class declares how the pool must treat it; the pool reads these traits and never
    checks a backend's type.

    Attributes:
        enforces_timeout: True when ``generate`` itself raises :class:`TimeoutError` once the pool's
            ``timeout_s`` has passed, and cleans up (the Ray-hosted backend replaces its stuck actor,
            the HTTP client drops the connection); the pool then calls it directly. False: the pool
            runs each call in a deadline thread and abandons it when time is up (an in-process call
            cannot be killed).
        cache_answers: False when the answers already are a record (replay), so the pool's response
            cache would only copy them.
    """

    enforces_timeout: bool
    cache_answers: bool

    def wait_ready(self) -> None:
        """Block until the backend can answer; returns at once for backends built ready.

        Raises:
            Exception: the model failed to load (e.g. ``ray.exceptions.RayActorError``).
        """
        ...
