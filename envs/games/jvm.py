"""A game's JVM stops on ``close``, on garbage collection, at exit, and when its owner dies.

Both game packages start their simulator with py4j's ``launch_gateway(die_on_exit=True)``: a
``java ... py4j.GatewayServer --die-on-broken-pipe`` child whose stdin is a pipe from this process.
The JVM reads that pipe and exits when a line arrives or the pipe closes. So:

* :meth:`JvmGame.close` shuts the gateway, writes the newline, waits for the JVM (then terminates,
  then kills it), and closes the pipes: after it returns the process is gone;
* a :func:`weakref.finalize` does the same when the wrapper is collected or the interpreter exits,
  and only in the process that started the JVM (a forked child exiting must not stop its parent's);
* when the owning process is killed (even by SIGKILL) the kernel closes its end of the pipe and the
  JVM exits by itself. A forked child would inherit that end and keep the JVM alive after its parent
  died, so :func:`os.register_at_fork` closes it in every child.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import weakref
from typing import Any

STOP_WAIT_S = 5.0  # seconds the JVM gets to exit on its own before it is terminated, then killed

_LIVE: dict[int, subprocess.Popen] = {}  # JVMs this process started and has not stopped, by pid


def _close_inherited_pipes() -> None:
    """In a forked child: drop the copies of every JVM's stdin pipe, so a parent's death still ends it."""
    for proc in list(_LIVE.values()):
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                os.close(stream.fileno())
    _LIVE.clear()


os.register_at_fork(after_in_child=_close_inherited_pipes)


def stop_jvm(gateway: Any, proc: subprocess.Popen, owner_pid: int) -> None:
    """Shut the gateway and make sure ``proc`` has exited (idempotent; a no-op outside ``owner_pid``)."""
    if os.getpid() != owner_pid:
        return
    _LIVE.pop(proc.pid, None)
    with contextlib.suppress(Exception):  # a JVM that already died leaves a broken socket
        gateway.shutdown()
    if proc.poll() is None:
        try:  # py4j's documented way to end a die-on-broken-pipe server (py4j issue #320)
            proc.stdin.write(b"\n")
            proc.stdin.flush()
        except (OSError, ValueError):
            pass
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    try:
        proc.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class JvmGame:
    """Base of the game wrappers: owns one package env (and its JVM) and stops it exactly once.

    Subclasses set ``self._env`` to the package's env object through :meth:`_own`. Use as a
    context manager, or call :meth:`close`.
    """

    _env: Any = None

    def _own(self, package_env: Any) -> None:
        gateway = package_env._gateway
        proc = gateway.java_process
        self._env = package_env
        self.process = proc  # the JVM's Popen (tests read its pid)
        _LIVE[proc.pid] = proc
        # The finaliser holds the gateway and process, never self, so the wrapper can be collected.
        self._finalizer = weakref.finalize(self, stop_jvm, gateway, proc, os.getpid())
        # The packages' own __del__ would write to the pipe this class closes; their close() is ours.
        package_env.close = lambda: None

    @property
    def closed(self) -> bool:
        return self._env is None or not self._finalizer.alive

    def close(self) -> None:
        """Stop the JVM and wait until it has exited (idempotent)."""
        if self._env is not None:
            self._finalizer()

    def __enter__(self) -> JvmGame:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError(f"{type(self).__name__} is closed: make a new one")
