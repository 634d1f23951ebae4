"""Worker output into a log file instead of the terminal: ``build_pool(cfg, log_file=...)``.

Engines print their loading chatter (vLLM's engine core and workers are subprocesses, some of it comes
from C++) straight to file descriptors 1 and 2, below any Python handler. So a Ray actor points those
descriptors at the file (:func:`redirect_process_output`), which catches its subprocesses too. The
driver keeps its terminal for the trainer; only the named library loggers move (:func:`move_loggers`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path

# Loggers of the libraries the pool drives from the driver process.
LIBRARY_LOGGERS = ("vllm", "ray")
_FORMAT = "%(asctime)s %(levelname)s %(name)s [pid %(process)d] %(message)s"


def redirect_process_output(log_file: Path) -> None:
    """Append this process's stdout, stderr and INFO+ log records to ``log_file``, for good.

    Meant for a worker process (a Ray actor): file descriptors 1 and 2 are replaced, so child
    processes started afterwards write there too.

    Args:
        log_file: absolute path (a worker's working directory is not the driver's); created if
            missing, its folder too: on a cluster without a shared filesystem the run directory
            exists on the driver's node only.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    # Loggers with handlers of their own (vllm, transformers, ray) already write to the redirected
    # streams; the root handler catches the rest, which would otherwise drop INFO records.
    root = logging.getLogger()
    root.addHandler(_file_handler(log_file))
    root.setLevel(logging.INFO)


def move_loggers(log_file: Path, names: Iterable[str] = LIBRARY_LOGGERS) -> None:
    """Send the named loggers to ``log_file`` instead of the terminal, for the rest of the process.

    Their console handlers are removed and they stop propagating; moving twice to one file adds no
    second handler. A library that configures its logging on import (vLLM does) should be imported
    first, or it adds its console handler back (vLLM and Ray do).

    Args:
        log_file: the file to append to.
        names: logger names; children (``vllm.engine``) follow their parent.
    """
    for name in names:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                logger.removeHandler(handler)
        if not any(
            isinstance(h, logging.FileHandler) and h.baseFilename == str(log_file) for h in logger.handlers
        ):
            logger.addHandler(_file_handler(log_file))
        logger.propagate = False


def _file_handler(log_file: Path) -> logging.FileHandler:
    handler = logging.FileHandler(log_file, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    return handler
