"""Query embeddings for serving: shared, bounded, thread-safe, batched, and never written to disk.

:func:`rl_router.embeddings.embed_queries` reads and rewrites an ``.npz`` cache on every call, which
suits training but not a server: concurrent requests would race on the file, and every prompt's
hash would end up on disk. :class:`QueryEmbedder` gives the same vectors (the shipped RouteLLM
vectors first, then the encoder, rounded through float16 as the on-disk cache stores them, so a
served decision equals ``router.route()``'s) from memory:

* the shipped vectors, then an in-memory LRU of recent texts;
* the rest goes to ONE worker thread that encodes whatever has queued up in one batch (the HF fast
  tokenizer must not be used from two threads at once, and one batch of 32 costs far less than 32
  batches of one).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from queue import Empty, SimpleQueue
from typing import Any

import numpy as np

from rl_router.embeddings import EMBED_DIM, SHIPPED_CACHE, EmbeddingCache, SentenceEncoder, text_key


class QueryEmbedder:
    """Embeds queries for a policy router; safe to call from many threads at once.

    Args:
        encoder: the sentence encoder (None: loaded on first use, the installed all-MiniLM-L6-v2).
        cache_size: texts kept in the in-memory LRU.
        max_batch: most texts one encoder call takes.
        shipped: the read-only vectors to look up first (None: the shipped RouteLLM file).
    """

    def __init__(
        self,
        encoder: SentenceEncoder | None = None,
        cache_size: int = 50_000,
        max_batch: int = 32,
        shipped: EmbeddingCache | None = None,
    ) -> None:
        self._encoder = encoder
        self._shipped = shipped if shipped is not None else EmbeddingCache(SHIPPED_CACHE)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._max_batch = max_batch
        self._lock = threading.Lock()  # guards the LRU and the worker's start
        self._queue: SimpleQueue[tuple[str, Future]] = SimpleQueue()
        self._worker: threading.Thread | None = None
        self._counter = None  # a tokenizer of its own for count_tokens (the worker's is busy)
        self._count_lock = threading.Lock()
        self.batches: list[int] = []  # texts per encoder call (tests check that requests share them)

    @property
    def encoder(self) -> SentenceEncoder:
        if self._encoder is None:
            self._encoder = SentenceEncoder()
        return self._encoder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[n, 384]`` unit vectors of ``texts``; blocks until the encoder has done its part."""
        out = np.zeros((len(texts), EMBED_DIM), dtype=np.float32)
        waiting: list[tuple[int, Future]] = []
        for i, text in enumerate(texts):
            vector = self._known(text)
            if vector is not None:
                out[i] = vector
            else:
                waiting.append((i, self._submit(text)))
        for i, future in waiting:
            out[i] = future.result()
        return out

    def count_tokens(self, text: str) -> int:
        """The encoder's tokens in ``text`` (no special tokens): what the context cap counts."""
        with self._count_lock:
            if self._counter is None:
                from transformers import AutoTokenizer

                self._counter = AutoTokenizer.from_pretrained(self.encoder.tokenizer.name_or_path)
            return len(self._counter(text, add_special_tokens=False)["input_ids"])

    def _known(self, text: str) -> np.ndarray | None:
        if text in self._shipped:
            return self._shipped.get([text])[0]
        key = text_key(text)
        with self._lock:
            vector = self._cache.get(key)
            if vector is not None:
                self._cache.move_to_end(key)
            return vector

    def _submit(self, text: str) -> Future:
        future: Future = Future()
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, daemon=True, name="serve-embed")
                self._worker.start()
        self._queue.put((text, future))
        return future

    def _work(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except Empty:
                    break
            texts = list(dict.fromkeys(text for text, _ in batch))
            try:
                vectors = self.encoder.encode(texts, batch_size=self._max_batch, progress=False)
                # as the on-disk cache stores them, so decisions match router.route()
                vectors = vectors.astype(np.float16).astype(np.float32)
            except BaseException as exc:  # the requests fail; the worker keeps serving
                for _, future in batch:
                    future.set_exception(exc)
                continue
            self.batches.append(len(texts))
            by_text = dict(zip(texts, vectors, strict=True))
            with self._lock:
                for text, vector in by_text.items():
                    self._cache[text_key(text)] = vector
                    self._cache.move_to_end(text_key(text))
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            for text, future in batch:
                future.set_result(by_text[text])


def router_inputs(router: Any, texts: list[str], embed: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """What ``router.log_probs`` takes for ``texts``, with the embedding from ``embed`` (not the disk).

    A router that reads query feature blocks (``router.features``: the embedding plus text
    statistics, :mod:`rl_router.data.features`) gets every block; one without gets the embedding.
    """
    blocks = getattr(router, "features", None)
    if blocks is None:
        return embed(texts)
    from rl_router.data.features import query_features

    vectors = embed(texts) if "embedding" in blocks else None
    return query_features(texts, blocks, embeddings=vectors)
