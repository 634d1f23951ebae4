"""Content-addressed response cache: one sqlite file (WAL mode) per cache directory.

The key hashes everything that decides an answer: backend, model id, revision, messages and the
sampling params (seed included). A hit skips generation but keeps the original token counts, so the
pool charges the same list price as the original call: caching saves compute, never changes rewards.

WAL mode lets readers run while one process writes; ``busy_timeout`` makes concurrent writers (many
rollout workers on one machine) wait for the lock instead of failing. Entries are immutable
(``INSERT OR IGNORE``): two writers of one key wrote the same content-addressed answer.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rl_router.pool.types import Message, ModelDescriptor, SamplingParams

FILENAME = "responses.sqlite"
_SCHEMA = """CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, text TEXT NOT NULL,
    input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, created REAL DEFAULT (julianday('now')))"""


@dataclass(frozen=True)
class CachedAnswer:
    """What a hit gives back: the text and the original call's token counts."""

    text: str
    input_tokens: int
    output_tokens: int


def cache_key(descriptor: ModelDescriptor, messages: Sequence[Message], sampling: SamplingParams) -> str:
    """sha256 of the canonical JSON of (backend, model, revision, messages, sampling).

    The router-facing ``name`` is left out on purpose: two names for one model share answers. A
    fake model without a ``model`` id falls back to its name (its canned answers are per name).
    """
    payload = {
        "backend": descriptor.backend,
        "model": descriptor.model or descriptor.name,
        "revision": descriptor.revision,
        "messages": [dict(sorted(m.items())) for m in messages],
        "sampling": asdict(sampling),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class ResponseCache:
    """The sqlite file ``<directory>/responses.sqlite``, one connection per thread."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory).expanduser() / FILENAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._connection()  # create the file and table now, so a bad directory fails at build time

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # autocommit mode; writes open their own IMMEDIATE transaction below
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=60000")  # before WAL: switching modes takes a lock too
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(_SCHEMA)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedAnswer]:
        """The cached answers among ``keys`` (missing keys are absent from the dict)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, CachedAnswer] = {}
        conn = self._connection()
        for start in range(0, len(keys), 500):  # sqlite caps the number of bound parameters
            chunk = keys[start : start + 500]
            rows = conn.execute(
                "SELECT key, text, input_tokens, output_tokens FROM responses "
                f"WHERE key IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for key, text, input_tokens, output_tokens in rows:
                found[key] = CachedAnswer(text, input_tokens, output_tokens)
        return found

    def put_many(self, entries: Iterable[tuple[str, str, CachedAnswer]]) -> None:
        """Store ``(key, model name, answer)`` entries in one transaction; existing keys are kept."""
        rows = [(k, m, a.text, a.input_tokens, a.output_tokens) for k, m, a in entries]
        if not rows:
            return
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT OR IGNORE INTO responses (key, model, text, input_tokens, output_tokens) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def __len__(self) -> int:
        return self._connection().execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()
