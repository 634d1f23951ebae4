"""Tests of the sentence encoder, its on-disk cache and the shipped RouteLLM embedding asset."""

from __future__ import annotations

import hashlib
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from rl_router.embeddings import (
    EMBED_DIM,
    MODEL_PACKAGE,
    MODEL_SHA256,
    EmbeddingCache,
    SentenceEncoder,
    embed,
    embed_cached,
    model_dir,
    text_key,
)
from rl_router.zoo import HashMismatchError

ROUTELLM = Path(__file__).resolve().parents[2] / "shared" / "data" / "routellm"
ASSET = Path(__file__).resolve().parents[1] / "rl_router/data/assets/embeddings/routellm_minilm.npz"


class FakeEncoder(SentenceEncoder):
    """Deterministic unit vectors from the text's hash; counts the texts it was asked to embed."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts, batch_size=64, progress=True):
        self.calls.append(list(texts))
        rows = [np.random.default_rng(int(text_key(t)[:8], 16)).standard_normal(EMBED_DIM) for t in texts]
        vecs = np.asarray(rows, dtype=np.float32).reshape(len(texts), EMBED_DIM)
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def test_text_key_is_sha1_of_utf8():
    assert text_key("Zürich?") == hashlib.sha1("Zürich?".encode()).hexdigest()
    assert text_key("a") != text_key("a ")


def test_cache_round_trip(tmp_path: Path):
    path = tmp_path / "emb.npz"
    texts = ["first", "second", "third"]
    vecs = FakeEncoder().encode(texts)
    cache = EmbeddingCache(path)
    cache.add(texts, vecs)
    cache.save()

    loaded = EmbeddingCache(path)
    assert len(loaded) == 3 and "second" in loaded and "fourth" not in loaded
    assert loaded.keys() == [text_key(t) for t in texts]
    got = loaded.get(["third", "first"])
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, vecs[[2, 0]], atol=1e-3)  # float16 storage
    with np.load(path) as raw:
        assert raw["vectors"].dtype == np.float16
        assert [k.decode() for k in raw["keys"]] == [text_key(t) for t in texts]
    with pytest.raises(KeyError, match="1 texts not in"):
        loaded.get(["first", "fourth"])
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write left no temp file


def test_embed_cached_only_embeds_missing_texts(tmp_path: Path):
    path = tmp_path / "emb.npz"
    encoder = FakeEncoder()
    first = embed_cached(["a", "b", "a"], path, encoder=encoder, progress=False)
    second = embed_cached(["b", "c", "a"], path, encoder=encoder, progress=False)
    assert encoder.calls == [["a", "b"], ["c"]]  # duplicates once, cached texts never again
    np.testing.assert_array_equal(first[0], first[2])
    np.testing.assert_array_equal(second[0], first[1])  # identical, not merely close
    np.testing.assert_array_equal(second[2], first[0])
    encoder.calls.clear()
    embed_cached(["c"], path, encoder=encoder)
    assert encoder.calls == []


def test_real_encoder_norms_and_similarity():
    vecs = embed(
        [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The stock market fell sharply today.",
        ],
        progress=False,
    )
    assert vecs.shape == (3, EMBED_DIM) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sims = vecs @ vecs.T
    assert sims[0, 1] > sims[0, 2] + 0.3
    # sentence-transformers' documented score for this pair: our recipe reproduces theirs.
    assert sims[0, 1] == pytest.approx(0.7553, abs=2e-3)


def test_batching_and_order_do_not_change_vectors():
    texts = ["short", "a somewhat longer sentence about routing queries", "mid length text"]
    together = embed(texts, batch_size=8, progress=False)
    one_by_one = embed(texts, batch_size=1, progress=False)
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


@pytest.mark.skipif(not ASSET.is_file(), reason="the RouteLLM embedding asset has not been built")
def test_shipped_asset_covers_routellm_prompts():
    cache = EmbeddingCache(ASSET)
    assert len(cache) > 10_000
    if not ROUTELLM.is_dir():
        pytest.skip("RouteLLM tables not on this machine")
    import pandas as pd

    prompts = pd.read_csv(ROUTELLM / "gsm8k" / "gsm8k_responses.csv")["prompt"].tolist()
    for csv in sorted((ROUTELLM / "mmlu").glob("mmlu_*.csv"))[::10]:
        prompts += pd.read_csv(csv)["prompt"].tolist()
    sample = random.Random(0).sample(prompts, 200)
    vecs = cache.get(sample)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=2e-3)


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json"])
def test_a_tampered_encoder_package_is_refused(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    installed = model_dir()  # the real package, verified
    package = tmp_path / "site" / MODEL_PACKAGE
    shutil.copytree(installed, package / "model")
    (package / "__init__.py").write_text("raise RuntimeError('model packages must never be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert model_dir() == package / "model"  # the loader now finds the copy, and the copy passes

    tampered = package / "model" / name
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    with pytest.raises(HashMismatchError) as err:
        SentenceEncoder()
    message = str(err.value)
    assert str(tampered) in message and MODEL_SHA256[name] in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message
