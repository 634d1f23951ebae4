"""The candidate pool: per-model batching, concurrency across models, response cache, faults, stats.

``ModelPool.generate(requests)``:

1. answers cache hits (and duplicates within the batch) without calling any model;
2. sends each model's remaining requests to its backend in ONE call, all models concurrently;
3. retries failed requests ``retries`` times (a dead actor is replaced before the retry);
4. returns one :class:`Result` per request, in order; a request that still fails carries ``error``.

It never raises for a candidate fault, so an env turns a failure into an observation.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any

from rl_router.pool.backend import describe_error, error_result, sampling_of
from rl_router.pool.cache import CachedAnswer, ResponseCache, cache_key
from rl_router.pool.types import Backend, ModelDescriptor, Request, Result

log = logging.getLogger(__name__)


@dataclass
class ModelStats:
    """Counters of one model since the pool was built."""

    calls: int = 0  # requests addressed to the model (cache hits included)
    batches: int = 0  # backend calls (one per model per generate, plus retries)
    cache_hits: int = 0  # requests answered from the cache or a duplicate in the same batch
    retries: int = 0  # requests sent again after a failure
    errors: int = 0  # requests that still failed after their retries
    timeouts: int = 0  # backend calls that ran out of time
    input_tokens: int = 0  # tokens charged (cache hits included: same price as the original call)
    output_tokens: int = 0
    cost_usd: float = 0.0


class ModelPool:
    """A :class:`~rl_router.pool.types.CandidatePool` over one backend per model.

    Each backend's declared traits (:class:`~rl_router.pool.types.Backend`) decide whether its
    answers are cached and whether the pool's deadline thread bounds its calls.

    Args:
        backends: one backend per model, in router order.
        cache: the response cache; None disables caching.
        timeout_s: seconds one backend call (a model's whole batch) may take.
        retries: extra attempts for a failed request.
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        *,
        cache: ResponseCache | None = None,
        timeout_s: float = 300.0,
        retries: int = 1,
    ) -> None:
        self.backends: dict[str, Backend] = {}
        for backend in backends:
            for d in backend.descriptors:
                if d.name in self.backends:
                    raise ValueError(f"two candidates are named {d.name!r}; names must be unique")
                self.backends[d.name] = backend
        self._descriptors = {d.name: d for b in backends for d in b.descriptors}
        self.cache = cache
        self.timeout_s = timeout_s
        self.retries = retries
        self._stats = {name: ModelStats() for name in self._descriptors}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max(1, len(self.backends)), thread_name_prefix="pool")

    @property
    def descriptors(self) -> list[ModelDescriptor]:
        return list(self._descriptors.values())

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        # --- cache hits and duplicates: answered without any model call ---
        results: list[Result | None] = [None] * len(requests)
        keys: dict[int, str] = {}
        for i, request in enumerate(requests):
            d = self._descriptors.get(request.model)
            if d is None:
                results[i] = error_result(
                    f"unknown model {request.model!r}; the pool has {list(self._descriptors)}"
                )
            elif self.cache is not None and self.backends[d.name].cache_answers:
                keys[i] = cache_key(d, request.messages, sampling_of(request, d))
        hits = self._cache_get(keys.values())

        leaders: dict[str, int] = {}  # cache key -> the request that will be generated for it
        followers: dict[int, int] = {}  # duplicate request -> its leader
        pending: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            if results[i] is not None:
                continue
            key = keys.get(i)
            if key in hits:
                results[i] = self._hit(request.model, hits[key])
            elif key is not None and key in leaders:
                followers[i] = leaders[key]
            else:
                if key is not None:
                    leaders[key] = i
                pending.setdefault(request.model, []).append(i)

        # --- one call per model, all models at once ---
        futures = {
            model: self._executor.submit(self._serve, model, [requests[i] for i in idx])
            for model, idx in pending.items()
        }
        for model, future in futures.items():
            for i, result in zip(pending[model], future.result(), strict=True):
                results[i] = result
        # --- duplicates share their leader's answer; new answers go to the cache ---
        for i, leader in followers.items():
            results[i] = (
                self._hit(requests[i].model, _answer_of(results[leader]))
                if results[leader].ok
                else replace(results[leader])
            )

        self._cache_put(
            (key, requests[i].model, _answer_of(results[i])) for key, i in leaders.items() if results[i].ok
        )
        self._count(requests, results)
        return results  # type: ignore[return-value]  # every index was filled above

    def _serve(self, model: str, requests: list[Request]) -> list[Result]:
        """One model's batch: one backend call, then retries of what failed. Never raises."""
        backend = self.backends[model]
        results: list[Result] = [error_result("not attempted")] * len(requests)
        todo = list(range(len(requests)))
        for attempt in range(self.retries + 1):
            if attempt:
                self._add(model, retries=len(todo))
            start = time.perf_counter()
            try:
                batch = [requests[i] for i in todo]
                if backend.enforces_timeout:  # it cleans up after itself, too (kills a stuck actor)
                    out = backend.generate(batch)
                else:
                    out = _call_with_deadline(backend.generate, batch, self.timeout_s)
                if len(out) != len(batch):
                    raise RuntimeError(f"{model} returned {len(out)} results for {len(batch)} requests")
            except Exception as exc:  # a candidate fault: every request of the call failed
                if isinstance(exc, TimeoutError):
                    self._add(model, timeouts=1)
                out = [error_result(describe_error(exc), time.perf_counter() - start) for _ in todo]
            finally:
                self._add(model, batches=1)
            for i, result in zip(todo, out, strict=True):
                results[i] = result
            todo = [i for i in todo if not results[i].ok]
            if not todo:
                break
        return results

    def _hit(self, model: str, answer: CachedAnswer) -> Result:
        d = self._descriptors[model]
        return Result(
            text=answer.text,
            input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens,
            cost_usd=d.cost_usd(answer.input_tokens, answer.output_tokens),  # list price, as the original
            cache_hit=True,
        )

    def _cache_get(self, keys: Any) -> dict[str, CachedAnswer]:
        if self.cache is None:
            return {}
        try:
            return self.cache.get_many(keys)
        except sqlite3.Error as exc:  # a broken cache costs compute, never the run
            log.warning("response cache read failed (%s); generating instead", exc)
            return {}

    def _cache_put(self, entries: Any) -> None:
        if self.cache is None:
            return
        try:
            self.cache.put_many(entries)
        except sqlite3.Error as exc:
            log.warning("response cache write failed (%s); answers not cached", exc)

    def _add(self, model: str, **counts: float) -> None:
        with self._lock:
            stats = self._stats[model]
            for name, value in counts.items():
                setattr(stats, name, getattr(stats, name) + value)

    def _count(self, requests: Sequence[Request], results: list[Result | None]) -> None:
        with self._lock:
            for request, result in zip(requests, results, strict=True):
                stats = self._stats.setdefault(request.model, ModelStats())
                stats.calls += 1
                stats.cache_hits += result.cache_hit
                stats.errors += not result.ok
                stats.input_tokens += result.input_tokens
                stats.output_tokens += result.output_tokens
                stats.cost_usd += result.cost_usd

    def stats(self) -> dict[str, dict[str, float]]:
        """Counters per model name (see :class:`ModelStats`), a copy."""
        with self._lock:
            return {name: asdict(s) for name, s in self._stats.items()}

    def close(self) -> None:
        for backend in self.backends.values():
            try:
                backend.close()
            except Exception as exc:  # closing one must not leave the others open
                log.warning("closing %s failed: %s", backend, exc)
        if self.cache is not None:
            self.cache.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> ModelPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _answer_of(result: Result) -> CachedAnswer:
    return CachedAnswer(result.text, result.input_tokens, result.output_tokens)


def _call_with_deadline(fn: Callable[[list[Request]], list[Result]], batch: list[Request], timeout_s: float):
    """``fn(batch)`` in a daemon thread; past ``timeout_s`` the call is abandoned (it cannot be killed)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn(batch)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True, name="pool-call")
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout_s:g}s")
    if "error" in box:
        raise box["error"]
    return box["value"]
