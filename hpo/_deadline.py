"""``study.trial_timeout``: the time limit of one trial, soft (an exception) then hard (the process ends).

Soft: a ``SIGALRM`` timer raises :class:`TrialTimeout` in the main thread when the limit passes;
Python runs the handler between two bytecodes, so any pure-Python loop and any interruptible
wait (``time.sleep``, a lock, a socket) ends there, and the worker fails the trial and goes on.

Hard: a call that never returns to Python (a C extension spinning, a blocked system call that
retries on EINTR, or an objective that blocked or ignores ``SIGALRM``) never sees the exception.
A watchdog thread therefore waits ``trial_timeout + grace``; if the trial still runs, it hands
the trial to ``on_stuck``, which records the failure and ends the process (see
``hpo._worker.run_trial``).

Example:
    >>> with TrialDeadline(None, on_stuck=print):   # no limit: does nothing
    ...     pass
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

#: Seconds the watchdog waits after the limit before it ends a trial that ignored the exception.
#: Long enough for a framework's teardown after the interrupt (Lightning closes loggers and
#: data loaders); HPO_TRIAL_KILL_GRACE_S overrides it (tests, very slow teardowns).
KILL_GRACE_S = 10.0


def kill_grace() -> float:
    try:
        return float(os.environ.get("HPO_TRIAL_KILL_GRACE_S", KILL_GRACE_S))
    except ValueError:
        return KILL_GRACE_S


class TrialTimeout(BaseException):
    """Raised in the main thread when a trial runs past ``study.trial_timeout``.

    A BaseException, like KeyboardInterrupt, so objectives' ``except Exception`` blocks and
    Lightning's error handling let it through; unlike KeyboardInterrupt, Lightning re-raises it
    instead of treating it as a graceful stop.
    """


def timeout_reason(seconds: float) -> str:
    return f"trial exceeded trial_timeout of {seconds:g} s"


class TrialDeadline:
    """Context manager: the body gets ``seconds`` to finish (None: no limit).

    Neither the alarm nor the watchdog acts once ``__exit__`` has started: the trial's end
    (told to the study after the block) is never overtaken by a late timeout.

    Args:
        seconds: the limit, or None.
        on_stuck: called from the watchdog thread, with the reason, when the body still runs
            ``seconds + grace`` after the start; expected to end the process.
        grace: seconds after the limit before ``on_stuck`` (default :func:`kill_grace`).
    """

    def __init__(self, seconds: float | None, on_stuck: Callable[[str], Any], grace: float | None = None) -> None:
        self.seconds = seconds
        self.on_stuck = on_stuck
        self.grace = kill_grace() if grace is None else grace
        self.reason = timeout_reason(seconds) if seconds is not None else ""
        self._ended = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._previous: Any = None
        self._armed = False

    def __enter__(self) -> TrialDeadline:
        if self.seconds is None:
            return self
        # Signals reach only the main thread; elsewhere (an objective run from a thread) the
        # watchdog alone enforces the limit.
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGALRM, self._alarm)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
            self._armed = True
        threading.Thread(target=self._watch, name="hpo-trial-watchdog", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.seconds is None:
            return
        try:
            with self._lock:  # a watchdog already ending the process keeps it: the trial is its
                self._ended = True
        finally:
            self._done.set()
            if self._armed:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, self._previous)
                self._armed = False

    def _alarm(self, signum: int, frame: Any) -> None:
        if not self._ended:
            raise TrialTimeout(self.reason)

    def _watch(self) -> None:
        if self._done.wait(self.seconds + self.grace):
            return
        with self._lock:
            if self._ended:
                return
            self.on_stuck(f"{self.reason} and did not stop within {self.grace:g} s")
