"""Concurrent requests to one candidate become one pool call: :class:`BatchingPool`.

:class:`~rl_router.pool.pool.ModelPool` is built for batches: one backend call per model per
``generate``, and as many worker threads as models. A server calls it from many request threads at
once, each with one request; called directly, at most one call per model would run at a time and
every other request would queue behind it one by one. :class:`BatchingPool` gives each candidate one
dispatcher thread that sends whatever has queued up for that candidate in ONE ``pool.generate``
call (a vLLM engine batches it; an HTTP backend runs its ``max_concurrency`` requests in parallel),
so no request waits for a batch it could have joined, and a slow candidate never holds up another's
requests. Nothing waits for a batch to fill: at low load every batch is one request.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from queue import Empty, SimpleQueue

from rl_router.pool.backend import describe_error, error_result
from rl_router.pool.types import CandidatePool, ModelDescriptor, Request, Result

_STOP = None  # put on a queue: its dispatcher ends


class BatchingPool:
    """A :class:`~rl_router.pool.types.CandidatePool` that merges concurrent requests per candidate.

    Args:
        pool: the pool that answers (it keeps its retries, timeouts, cache and stats).
        max_batch: most requests one pool call takes.

    Attributes:
        batch_sizes: per candidate, the size of each pool call (tests check that requests merge).
    """

    def __init__(self, pool: CandidatePool, max_batch: int = 64) -> None:
        self.pool = pool
        self.max_batch = max_batch
        self._queues: dict[str, SimpleQueue] = {d.name: SimpleQueue() for d in pool.descriptors}
        self.batch_sizes: dict[str, list[int]] = {name: [] for name in self._queues}
        self._threads = [
            threading.Thread(target=self._dispatch, args=(name,), daemon=True, name=f"serve-{name}")
            for name in self._queues
        ]
        for thread in self._threads:
            thread.start()

    @property
    def descriptors(self) -> list[ModelDescriptor]:
        return self.pool.descriptors

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        """Answer every request, in order (each waits for its candidate's next pool call)."""
        futures: list[Future] = []
        for request in requests:
            future: Future = Future()
            queue = self._queues.get(request.model)
            if queue is None:
                future.set_result(error_result(f"unknown model {request.model!r}"))
            else:
                queue.put((request, future))
            futures.append(future)
        return [future.result() for future in futures]

    def _dispatch(self, name: str) -> None:
        queue = self._queues[name]
        while True:
            item = queue.get()
            if item is _STOP:
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    more = queue.get_nowait()
                except Empty:
                    break
                if more is _STOP:
                    queue.put(_STOP)  # served after this batch
                    break
                batch.append(more)
            self.batch_sizes[name].append(len(batch))
            try:
                results = self.pool.generate([request for request, _ in batch])
            except Exception as exc:  # the pool's contract is not to raise; if it does, these fail
                results = [error_result(describe_error(exc)) for _ in batch]
            for (_, future), result in zip(batch, results, strict=True):
                future.set_result(result)

    def close(self) -> None:
        """Stop the dispatchers (after the requests already queued) and close the pool."""
        for queue in self._queues.values():
            queue.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=5)
        self.pool.close()
