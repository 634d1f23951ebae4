"""The game JVM stops on close, in a context manager, on collection, and when its owner is SIGKILLed."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from envs.games.textworld_express import TextWorldExpressGame

ROOT = Path(__file__).resolve().parents[3]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_close_stops_the_jvm_and_is_idempotent():
    game = TextWorldExpressGame()
    pid = game.process.pid
    assert alive(pid)
    game.close()
    assert not alive(pid)
    game.close()  # a second close is a no-op
    assert game.closed
    with pytest.raises(RuntimeError, match="closed"):
        game.seeds("coin", "", "train")


def test_context_manager_and_collection_stop_the_jvm():
    with TextWorldExpressGame() as game:
        pid = game.process.pid
        assert alive(pid)
    assert not alive(pid)
    game = TextWorldExpressGame()
    pid = game.process.pid
    del game
    gc.collect()
    assert wait_gone(pid)


@pytest.mark.parametrize("fork_child", [False, True], ids=["plain", "with_forked_child"])
def test_sigkill_of_the_owner_leaves_no_orphan_jvm(fork_child):
    """The owner dies by SIGKILL (no finaliser runs); the JVM must still exit, even if a forked
    child of the owner (which would inherit the JVM's stdin pipe) lives on."""
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from envs.games.textworld_express import TextWorldExpressGame
        game = TextWorldExpressGame()
        child = 0
        if {fork_child}:
            child = os.fork()
            if child == 0:
                time.sleep(120)
                os._exit(0)
        print(game.process.pid, child, flush=True)
        time.sleep(120)
        """
    )
    owner = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    child = 0
    try:
        java_pid, child = (int(x) for x in owner.stdout.readline().split())
        assert alive(java_pid)
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        assert wait_gone(java_pid), f"JVM {java_pid} outlived its SIGKILLed owner"
    finally:
        owner.kill()
        if child:
            os.kill(child, signal.SIGKILL)
