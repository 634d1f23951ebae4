"""Run loggers: metrics go to ``metrics.jsonl`` always, and to wandb when configured.

Keys follow ``<split>/<group>/<name>`` (``train/reward/format``, ``rollout/route_share/<model>``,
``eval/accuracy``). Loggers share one duck-typed shape: ``log(metrics, step)`` and ``finish()``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Logger(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def finish(self) -> None: ...


class NullLogger:
    """Logs nothing (tests and smoke runs)."""

    def __init__(self, **_: Any) -> None:
        pass

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def finish(self) -> None:
        pass


class JsonlLogger:
    """Appends one JSON object per ``log`` call to ``path`` (flushes each line, so a crash loses nothing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def log(self, metrics: dict[str, float], step: int) -> None:
        row = {"step": step, **{k: _jsonable(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def finish(self) -> None:
        self._file.close()


class WandbLogger:
    """Weights & Biases run; offline unless ``mode=online`` and a key is configured."""

    def __init__(
        self,
        project: str = "rl-router",
        entity: str | None = None,
        mode: str = "offline",
        tags: list[str] | None = None,
        run_dir: str | Path | None = None,
        run_name: str | None = None,
        config: dict | None = None,
    ) -> None:
        import wandb  # heavy import: only when this logger is chosen

        if mode == "online" and not os.environ.get("WANDB_API_KEY"):
            mode = "offline"  # no key: keep the run on disk instead of failing at login
        self._run = wandb.init(
            project=project,
            entity=entity,
            mode=mode,
            tags=list(tags or []),
            dir=str(run_dir) if run_dir else None,
            name=run_name,
            config=config,
        )

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._run.log(metrics, step=step)

    def finish(self) -> None:
        self._run.finish()


class MultiLogger:
    """Fans every call out to several loggers."""

    def __init__(self, *loggers: Logger) -> None:
        self.loggers = loggers

    def log(self, metrics: dict[str, float], step: int) -> None:
        for logger in self.loggers:
            logger.log(metrics, step)

    def finish(self) -> None:
        for logger in self.loggers:
            logger.finish()


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
