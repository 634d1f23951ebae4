"""A deterministic fake candidate: canned answers, configurable latency and failures, no model.

Used by env tests and smoke runs (``pool=fake``), so they take the production code path of the pool
(batching, cache, stats, faults) without generating anything.

>>> from rl_router.pool.types import ModelDescriptor, Request
>>> fake = FakeBackend(ModelDescriptor("m", "fake", price_out=2.0), FakeOptions(answers=["42"]))
>>> r = fake.generate([Request("m", ({"role": "user", "content": "six times seven?"},))])[0]
>>> (r.text, r.input_tokens, r.output_tokens, r.cost_usd)
('42', 3, 1, 2e-06)
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from rl_router.pool.backend import error_result, sampling_of
from rl_router.pool.types import ModelDescriptor, Request, Result


@dataclass
class FakeOptions:
    """Behaviour of a fake candidate (all deterministic in the request content and seed)."""

    answers: list[str] = field(default_factory=list)  # canned answers, one picked per request by hash
    latency_s: float = 0.0  # seconds each batched call sleeps (simulates an engine call)
    failure_rate: float = 0.0  # share of requests answered with an error (same requests every time)
    seed: int = 0  # salt of the hash that picks answers and failures
    startup_output: str = ""  # a line written to fds 1 and 2 when built, as engines print (log tests)

    def __post_init__(self) -> None:
        if not 0 <= self.failure_rate <= 1:
            raise ValueError(f"fake.failure_rate={self.failure_rate}: use a share in [0, 1]")
        if self.latency_s < 0:
            raise ValueError(f"fake.latency_s={self.latency_s}: use a non-negative number of seconds")


def _unit_hash(*parts: object) -> float:
    """A stable number in [0, 1) from ``parts`` (Python's ``hash`` is salted per process)."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class FakeBackend:
    """Answers from ``options.answers`` (or echoes the last message), counting words as tokens.

    Attributes:
        batch_sizes: number of requests in each ``generate`` call (tests check per-model batching).
    """

    enforces_timeout = False  # in-process: the pool bounds each call with its deadline thread
    cache_answers = True

    def __init__(self, descriptor: ModelDescriptor, options: FakeOptions | None = None) -> None:
        self.descriptor = descriptor
        self.options = options or FakeOptions()
        self.batch_sizes: list[int] = []
        if self.options.startup_output:
            # Below sys.stdout, like engine chatter from C++ and subprocesses: what a worker log must catch.
            for fd in (1, 2):
                os.write(fd, f"{self.options.startup_output}\n".encode())

    def wait_ready(self) -> None:
        """Ready once built."""

    @property
    def descriptors(self) -> list[ModelDescriptor]:
        return [self.descriptor]

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        self.batch_sizes.append(len(requests))
        start = time.perf_counter()
        if self.options.latency_s:
            time.sleep(self.options.latency_s)
        latency = time.perf_counter() - start
        return [self._answer(request, latency) for request in requests]

    def _answer(self, request: Request, latency_s: float) -> Result:
        sampling = sampling_of(request, self.descriptor)
        # Greedy answers depend on the content only; sampled ones also on the seed, like a real model.
        seed = sampling.seed if sampling.temperature > 0 else None
        u = _unit_hash(self.options.seed, self.descriptor.name, request.messages, seed)
        if u < self.options.failure_rate:
            return error_result(f"fake failure of {self.descriptor.name}", latency_s)
        if self.options.answers:
            text = self.options.answers[int(u * 1e9) % len(self.options.answers)]
        else:
            text = f"{self.descriptor.name}: {request.messages[-1]['content'] if request.messages else ''}"
        words = text.split()[: sampling.max_tokens]
        input_tokens = sum(len(m["content"].split()) for m in request.messages)
        output_tokens = len(words)
        return Result(
            text=" ".join(words),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=self.descriptor.cost_usd(input_tokens, output_tokens),
            latency_s=latency_s,
        )

    def close(self) -> None:
        pass
