"""A child process notices that its parent died, also by SIGKILL, on Linux and macOS.

The parent creates a pipe and keeps its write end open without ever writing; each child gets the
read end (``pass_fds``; its number in ``$HPO_LIFELINE_FD``) and blocks on it in a daemon thread.
The kernel closes the write end when the parent dies however it dies, so the read returns EOF.
(Linux's ``PR_SET_PDEATHSIG`` would do this for one level of children only, and not on macOS.)

Two users: ``--jobs N`` workers (the supervisor is the parent; on EOF a worker stops as on
SIGTERM, so its running trial is failed and re-queued) and ``hpo ui``'s MLflow server, which runs
under ``python -m hpo._lifeline -- COMMAND``: a guard that kills its process group on EOF.

Only the parent holds the write end (pipes are created close-on-exec), so nothing but the
parent's death closes it. Children take the descriptor out of the environment and mark it
close-on-exec, so their own children (DDP ranks, the server's workers) neither inherit nor
misread it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

ENV = "HPO_LIFELINE_FD"
GUARD_GRACE_S = 10.0  # the guarded command's time to stop on SIGTERM before SIGKILL


class Lifeline:
    """The parent's side: a pipe whose read end its children watch.

    Example:
        >>> with Lifeline() as lifeline:
        ...     proc = subprocess.Popen([sys.executable, "-c", "pass"], **lifeline.popen_kwargs(os.environ))
        ...     proc.wait()
        0
    """

    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe()  # both close-on-exec (PEP 446)

    def popen_kwargs(self, env: Mapping[str, str]) -> dict[str, Any]:
        """``subprocess.Popen`` arguments that hand the read end to the child."""
        return {"pass_fds": (self.read_fd,), "env": {**env, ENV: str(self.read_fd)}}

    def close(self) -> None:
        """Closes both ends: children still watching see their parent as gone."""
        for fd in (self.read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.read_fd = self._write_fd = -1

    def __enter__(self) -> Lifeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def take_lifeline() -> int | None:
    """The child's side: the read end its parent passed, or None when it passed none.

    Removes ``$HPO_LIFELINE_FD`` from the environment and marks the descriptor close-on-exec, so
    the child's own children do not take the same number for a lifeline of theirs.
    """
    value = os.environ.pop(ENV, "")
    if not value.isdigit():
        return None
    fd = int(value)
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return None
    except OSError:  # not open here: a grandchild started with a copy of our environment
        return None
    os.set_inheritable(fd, False)
    return fd


def watch_parent(on_loss: Callable[[], None]) -> bool:
    """Calls ``on_loss`` in a daemon thread once the parent is gone; False when there is no lifeline."""
    fd = take_lifeline()
    if fd is None:
        return False
    _start_watch(fd, on_loss)
    return True


def _start_watch(fd: int, on_loss: Callable[[], None]) -> None:
    threading.Thread(target=_wait_for_eof, args=(fd, on_loss), name="hpo-lifeline", daemon=True).start()


def _wait_for_eof(fd: int, on_loss: Callable[[], None]) -> None:
    try:
        while os.read(fd, 1):  # the parent never writes: any data is ignored, only EOF counts
            pass
    except OSError:
        pass  # the descriptor was closed under us: treat like EOF
    on_loss()


def interrupt_self(grace_s: float, exit_code: int, message: str) -> Callable[[], None]:
    """An ``on_loss`` that stops this process as SIGTERM would (so its cleanup runs), and exits
    with ``exit_code`` after ``grace_s`` if the cleanup hangs."""

    def on_loss() -> None:
        print(message, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        os._exit(exit_code)

    return on_loss


def kill_own_group(grace_s: float, child: subprocess.Popen[bytes]) -> None:
    """SIGTERM to this process's group, SIGKILL to what is left of it after ``grace_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(0, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(grace_s)
    time.sleep(0.2)  # the command's own children (uvicorn workers) a moment after it
    os.killpg(0, signal.SIGKILL)  # this guard included


def guarded(command: list[str]) -> list[str]:
    """``command`` run under the guard of :func:`guard_main` (start it with a :class:`Lifeline`)."""
    return [sys.executable, "-m", "hpo._lifeline", "--", *command]


def guard_main(argv: list[str]) -> int:
    """``python -m hpo._lifeline -- COMMAND...``: runs COMMAND; if the parent dies, kills the group.

    Start the guard in a new session (``start_new_session=True``) so its group holds only the
    guard, COMMAND and COMMAND's children. Returns COMMAND's exit code.
    """
    command = argv[argv.index("--") + 1:] if "--" in argv else argv
    if not command:
        print("usage: python -m hpo._lifeline -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    if os.getpgrp() != os.getpid():  # killing "our group" must never reach the caller's shell
        os.setpgid(0, 0)
    fd = take_lifeline()  # before starting COMMAND, which must not inherit $HPO_LIFELINE_FD
    # The guard outlives a SIGTERM/SIGHUP to its group (the command gets it too) and exits with
    # the command; a no-op handler, not SIG_IGN, which COMMAND would inherit.
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)):
        signal.signal(sig, lambda *_: None)
    child = subprocess.Popen(command)
    if fd is not None:
        _start_watch(fd, lambda: kill_own_group(GUARD_GRACE_S, child))
    return child.wait()


if __name__ == "__main__":
    sys.exit(guard_main(sys.argv[1:]))
