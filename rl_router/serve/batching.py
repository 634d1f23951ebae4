"""Concurrent calls become batches, without a dispatcher thread: :class:`Combiner`, :class:`BatchingPool`.

A server calls the router and the pool from many request threads at once, each with one query.
Batching them (one policy forward for all queued queries; one pool call per candidate, which a vLLM
engine batches and an HTTP backend runs ``max_concurrency`` at a time) saves work, but a dispatcher
thread costs every request two thread switches, which on a busy CPU are a large share of a
zero-latency request's cost. :class:`Combiner` batches by **combining** instead: a caller that
finds no call in flight makes the call itself, in its own thread, with everything queued (its own
items first); callers that arrive meanwhile queue up, and when the call ends its leader hands the
lead to the oldest waiting caller, who makes the next call with everything queued by then. So at
low load every call is one caller's, made in its own thread (no switch at all); under load calls
grow to whatever queued during the previous one, and nothing ever waits for a batch to fill.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from rl_router.pool.backend import describe_error, error_result
from rl_router.pool.types import CandidatePool, ModelDescriptor, Request, Result

BATCH_HISTORY = 4096  # newest call sizes a Combiner keeps (a server lives long; tests read a few)
In = TypeVar("In")
Out = TypeVar("Out")


class _Slot:
    """One queued item: its result, or the lead handed to its caller; ``wait`` blocks until either."""

    __slots__ = ("item", "result", "lead", "_woken")

    def __init__(self, item: Any) -> None:
        self.item, self.result, self.lead = item, None, False
        self._woken = threading.Lock()
        self._woken.acquire()

    def wake(self) -> None:
        self._woken.release()

    def wait(self) -> None:
        self._woken.acquire()


class _Raised:
    """What a slot holds when ``fn`` raised: each caller of that batch re-raises it."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Combiner(Generic[In, Out]):
    """``call(items)`` = ``fn(items)``, with the items of concurrent callers merged into one ``fn`` call.

    Args:
        fn: items -> one output per item, in order (not None). If it raises, every caller whose
            items were in that call gets the exception; the combiner goes on serving the others.
        max_batch: most items one call takes.

    Attributes:
        batch_sizes: the size of each ``fn`` call, the newest :data:`BATCH_HISTORY` (tests check
            that concurrent callers merge).

    >>> double = Combiner(lambda xs: [2 * x for x in xs])
    >>> double.call([1, 2, 3]), double.batch_sizes
    ([2, 4, 6], [3])
    """

    def __init__(self, fn: Callable[[list[In]], Sequence[Out]], max_batch: int = 64) -> None:
        self.fn = fn
        self.max_batch = max_batch
        self.batch_sizes: list[int] = []
        self._lock = threading.Lock()
        self._queue: list[_Slot] = []
        self._busy = False  # a caller holds the lead: it is calling fn, or handing the lead on

    def call(self, items: Sequence[In]) -> list[Out]:
        slots = [_Slot(item) for item in items]
        with self._lock:
            self._queue += slots
            lead = not self._busy
            self._busy = True
        if lead:
            self._lead()
        for slot in slots:
            while slot.result is None:
                slot.wait()
                if slot.lead:
                    slot.lead = False
                    self._lead()
        for slot in slots:
            if isinstance(slot.result, _Raised):
                raise slot.result.error
        return [slot.result for slot in slots]  # type: ignore[misc]  # every slot was answered

    def _lead(self) -> None:
        """One ``fn`` call on the oldest queued items, then the lead to the next waiter (or none)."""
        with self._lock:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
        try:
            self.batch_sizes.append(len(batch))  # one leader at a time: a single writer
            if len(self.batch_sizes) > BATCH_HISTORY:
                del self.batch_sizes[:-BATCH_HISTORY]
            for slot, result in zip(batch, self.fn([s.item for s in batch]), strict=True):
                slot.result = result
        except BaseException as exc:  # noqa: BLE001  # handed to the callers, who re-raise it
            for slot in batch:
                slot.result = _Raised(exc)
        finally:  # whatever happened, the lead moves on: a caller can never be left waiting
            with self._lock:
                heir = self._queue[0] if self._queue else None
                if heir is None:
                    self._busy = False
                else:
                    heir.lead = True
            for slot in batch:
                slot.wake()
            if heir is not None:
                heir.wake()


class BatchingPool:
    """A :class:`~rl_router.pool.types.CandidatePool` that merges concurrent requests per candidate.

    One :class:`Combiner` per candidate, so a slow candidate never holds up another's requests. A
    call naming several candidates (an LLM router's turn with several routes) sends them in
    parallel, as the pool would.

    Args:
        pool: the pool that answers (it keeps its retries, timeouts, cache and stats).
        max_batch: most requests one pool call takes.
    """

    def __init__(self, pool: CandidatePool, max_batch: int = 64) -> None:
        self.pool = pool
        self._combiners = {d.name: Combiner(self._answer, max_batch) for d in pool.descriptors}
        self._spread = ThreadPoolExecutor(len(self._combiners), thread_name_prefix="serve-pool")

    @property
    def descriptors(self) -> list[ModelDescriptor]:
        return self.pool.descriptors

    @property
    def batch_sizes(self) -> dict[str, list[int]]:
        """Per candidate, the size of each pool call."""
        return {name: c.batch_sizes for name, c in self._combiners.items()}

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        """Answer every request, in order."""
        results: list[Result | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            if request.model in self._combiners:
                groups.setdefault(request.model, []).append(i)
            else:
                results[i] = error_result(f"unknown model {request.model!r}")
        calls = [(idx, self._combiners[name]) for name, idx in groups.items()]
        spread = [self._spread.submit(c.call, [requests[i] for i in idx]) for idx, c in calls[1:]]
        answers = [c.call([requests[i] for i in idx]) for idx, c in calls[:1]]
        answers += [future.result() for future in spread]
        for (idx, _), answered in zip(calls, answers, strict=True):
            for i, result in zip(idx, answered, strict=True):
                results[i] = result
        return results  # type: ignore[return-value]  # every index was filled

    def _answer(self, requests: list[Request]) -> list[Result]:
        try:
            return self.pool.generate(requests)
        except Exception as exc:  # the pool's contract is not to raise; if it does, these fail
            return [error_result(describe_error(exc)) for _ in requests]

    def close(self) -> None:
        self._spread.shutdown(wait=False)
        self.pool.close()
