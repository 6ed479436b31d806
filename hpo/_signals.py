"""The signals that stop hpo cleanly: Ctrl-C (SIGINT), SIGTERM (``kill``, ``docker stop``) and
SIGHUP (the terminal closed), each turned into :class:`Interrupted` in the main thread.

Exit codes follow the shell's 128 + signal number: 130 (SIGINT), 143 (SIGTERM), 129 (SIGHUP).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

# SIGHUP does not exist on Windows.
SIGNAL_EXIT_CODES: dict[int, int] = {
    sig: 128 + int(sig)
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None))
    if sig is not None
}


# Why this process sent itself a signal (a worker whose supervisor died stops as on SIGTERM): the
# reason recorded on the interrupted trial says so instead of a bare signal name.
_CAUSES: dict[int, str] = {}


def note_cause(signum: int, cause: str) -> None:
    """Records why ``signum`` is about to arrive; :class:`Interrupted` carries it."""
    _CAUSES[signum] = cause


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by SIGINT/SIGTERM/SIGHUP; remembers which signal (and its cause,
    when this process sent it to itself: :func:`note_cause`)."""

    def __init__(self, signum: int) -> None:
        name = signal.Signals(signum).name
        cause = _CAUSES.get(signum)
        super().__init__(f"{name}, {cause}" if cause else name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return SIGNAL_EXIT_CODES[self.signum]


def install_signal_handlers() -> dict[int, Any]:
    """Turns the first SIGINT/SIGTERM/SIGHUP into :class:`Interrupted`; later ones wait for the cleanup.

    A SIGHUP that was ignored when the process started stays ignored: ``nohup hpo run ...`` goes on
    after its terminal closes. Returns the handlers it replaced (see :func:`interrupt_on_signals`).
    An :class:`Interrupted` that Python drops is raised again (:func:`_raise_dropped_again`).
    """
    _received.clear()  # signals of an earlier run in this process are not this run's
    _deferred.clear()
    _dropped.clear()
    if sys.unraisablehook is not _raise_dropped_again:
        _previous_unraisablehook[:] = [sys.unraisablehook]
        sys.unraisablehook = _raise_dropped_again
    return {sig: signal.signal(sig, _handle) for sig in SIGNAL_EXIT_CODES if not _nohup(sig)}


def _handle(signum: int, frame: Any) -> None:
    if _in_import_machinery(frame) and time.monotonic() - _deferred.setdefault(signum, time.monotonic()) < DEFER_S:
        _deliver_again(signum)
        return
    # Ignored, not queued: a second Ctrl-C must not cut the cleanup (fail + re-queue) short.
    for sig in SIGNAL_EXIT_CODES:
        signal.signal(sig, signal.SIG_IGN)
    _received.append(signum)
    raise Interrupted(signum)


def _raise_dropped_again(unraisable: Any) -> None:
    """``sys.unraisablehook``: an :class:`Interrupted` that Python dropped is raised once more.

    Python drops (prints "Exception ignored in ...") an exception raised while it runs a weakref
    callback, a ``__del__`` or a garbage-collection callback; a signal handler runs wherever the
    main thread is, so a SIGTERM that lands during a collection (SQLAlchemy's and the standard
    library's weakref callbacks run then) was lost, and a trial with no reported steps ran on.
    The signal's handler is put back for that signal and the signal sent again in a moment.
    """
    exc = unraisable.exc_value
    if (isinstance(exc, Interrupted) and exc.signum in _received  # raised by this run's handlers
            and threading.current_thread() is threading.main_thread()
            and _dropped.get(exc.signum, 0) < MAX_RAISED_AGAIN):
        _dropped[exc.signum] = _dropped.get(exc.signum, 0) + 1
        signal.signal(exc.signum, _handle)
        _deliver_again(exc.signum)
        return
    (_previous_unraisablehook or [sys.__unraisablehook__])[0](unraisable)


_received: list[int] = []  # the signals handle() turned into Interrupted, in order (this run's)
_deferred: dict[int, float] = {}  # when handle() first put off each signal (see _in_import_machinery)
DEFER_S = 5.0  # the longest a signal waits for the import system to leave its own code
_dropped: dict[int, int] = {}  # how often Python dropped each signal's Interrupted (see _raise_dropped_again)
MAX_RAISED_AGAIN = 50
_previous_unraisablehook: list[Any] = []  # the hook _raise_dropped_again passes other exceptions to
REDELIVER_S = 0.02


def _in_import_machinery(frame: Any) -> bool:
    """Whether the signal landed in the import system's own code (not a module being imported).

    An exception raised there can leave Python's global import lock held by the main thread (the
    module-lock clean-up acquires it one instruction before its ``try``): every other thread's next
    import then blocks for good, and the MLflow writer thread's did, so ``hpo run`` hung after a
    SIGTERM instead of writing its last records and exiting.
    """
    return frame is not None and frame.f_code.co_filename.startswith("<frozen importlib")


def _deliver_again(signum: int) -> None:
    """The signal again in a moment, to the main thread (a real signal: it also ends a blocking call)."""
    timer = threading.Timer(REDELIVER_S, signal.pthread_kill, args=(threading.main_thread().ident, signum))
    timer.daemon = True
    timer.start()


def raise_if_signalled() -> None:
    """Raises :class:`Interrupted` again for a signal already received.

    The handler's exception is lost when the signal lands while Python runs code that swallows
    exceptions (a weakref callback during garbage collection, a ``__del__``: "Exception ignored
    in ..."); the worker calls this between trials and at every reported step, so that such a
    SIGTERM still stops the study instead of being forgotten.
    """
    if _received:
        raise Interrupted(_received[-1])


def as_interrupted(exc: KeyboardInterrupt) -> Interrupted:
    """``exc`` as :class:`Interrupted`: native code that checks for signals while it blocks (Ray's
    ``ray.wait``) replaces the exception our handler raised with a plain ``KeyboardInterrupt``;
    the signal it stood for is the last one the handler received (SIGINT if none: a real Ctrl-C
    under Python's default handler)."""
    if isinstance(exc, Interrupted):
        return exc
    return Interrupted(_received[-1] if _received else signal.SIGINT)


def _nohup(sig: int) -> bool:
    return sig == getattr(signal, "SIGHUP", None) and signal.getsignal(sig) == signal.SIG_IGN


@contextlib.contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """:func:`install_signal_handlers` for a block, then the previous handlers again.

    Outside the main thread (where Python cannot set handlers) the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = install_signal_handlers()
    try:
        yield
    finally:
        restore_signal_handlers(previous)


def restore_signal_handlers(previous: dict[int, Any]) -> None:
    """Puts back the handlers :func:`install_signal_handlers` replaced, and forgets the signals it
    received: code that runs after the block (a next study in the same process) is not interrupted."""
    for sig, handler in previous.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
    _received.clear()
    _deferred.clear()
    _dropped.clear()
