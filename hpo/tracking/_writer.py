"""The background writer: one daemon thread per tracker that sends queued run data in order,
merging what piles up for a run into one ``log_batch``, with retries.

Besides run data it runs queued calls (``("call", fn, what)``): a tracker started in the background
(:class:`hpo.tracking.MlflowTracker` with ``background=True``) sends every store operation this
way, so they land in the order they were made. A run is named by its id, or by an object whose
``run_id`` a queued call fills in (a trial run created on this thread): it is read when written.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from hpo.tracking._retry import with_retries

# Logged under the tracker's name, as before the writer had a module of its own.
_log = logging.getLogger("hpo.tracking._mlflow")


class RunRef(Protocol):
    """A run whose id a queued call assigns (None until then, or when creating it failed)."""

    run_id: str | None


def run_id_of(ref: str | RunRef) -> str | None:
    return ref if isinstance(ref, str) else ref.run_id


class _Batch:
    __slots__ = ("metrics", "params", "tags", "last_write")

    def __init__(self) -> None:
        self.metrics: list[Any] = []
        self.params: list[Any] = []
        self.tags: list[Any] = []
        self.last_write = 0.0


class _Writer:
    """One daemon thread that writes queued run data, in order, with retries.

    Metrics/params of a run are coalesced: a run is written at most once per ``interval``
    seconds (counted from its first queued item), so fast epochs cost one ``log_batch`` per
    interval instead of one per epoch, and a trial shorter than the interval one in all. An
    ``end`` item writes what is pending for the run together with its final metrics and tags
    in one ``log_batch``, then sets its status.
    """

    def __init__(
        self,
        send: Callable[[str, list[Any], list[Any], list[Any]], None],  # (run_id, metrics, params, tags)
        terminate: Callable[[str, str], None],
        interval: float,
    ) -> None:
        self._send = send
        self._terminate = terminate
        self.interval = interval
        self._queue: queue.Queue[Any] = queue.Queue()
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.errors: list[str] = []

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's thread and queue are not ours
                self._queue, self._pid, self._thread = queue.Queue(), os.getpid(), None
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="hpo-mlflow-writer", daemon=True)
                self._thread.start()

    def put(self, item: tuple[Any, ...]) -> None:
        self._ensure_thread()
        self._queue.put(item)

    def queued(self) -> int:
        """How many items wait in the queue (approximate: the thread takes them meanwhile)."""
        return 0 if self._pid != os.getpid() else self._queue.qsize()

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until everything queued so far is written (or given up on)."""
        if self._thread is None or self._pid != os.getpid():
            return True
        done = threading.Event()
        self._ensure_thread()
        self._queue.put(("flush", done))
        return done.wait(timeout)

    def _loop(self) -> None:
        q = self._queue
        pending: dict[str, _Batch] = {}
        while True:
            now = time.monotonic()
            due = [
                b.last_write + self.interval - now
                for b in pending.values()
                if b.metrics or b.params or b.tags
            ]
            try:
                item = q.get(timeout=max(0.0, min(due)) if due else None)
            except queue.Empty:
                item = None
            if item is not None:
                kind = item[0]
                if kind == "flush":
                    for run_id in list(pending):
                        self._write(run_id, pending.pop(run_id))
                    item[1].set()
                    continue
                if kind == "call":
                    self._run_call(item[1], item[2])
                    continue
                run_id = item[1]
                batch = pending.get(run_id)
                if batch is None:  # a new run: its first write waits an interval too
                    batch = pending[run_id] = _Batch()
                    batch.last_write = time.monotonic()
                if kind == "data":
                    batch.metrics += item[2]
                    batch.params += item[3]
                    batch.tags += item[4]
                elif kind == "end":  # ("end", run, () -> (final metrics, tags), status)
                    metrics, tags = item[2]()
                    batch.metrics += metrics
                    batch.tags += tags
                    self._write(run_id, pending.pop(run_id), status=item[3])
                    continue
            now = time.monotonic()
            for run_id, batch in list(pending.items()):
                if (batch.metrics or batch.params or batch.tags) and now - batch.last_write >= self.interval:
                    self._write(run_id, batch)
                    batch.last_write = time.monotonic()
                    batch.metrics, batch.params, batch.tags = [], [], []

    def _run_call(self, fn: Callable[[], Any], what: str) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - never let tracking kill training
            msg = f"could not {what} in MLflow: {exc}"
            self.errors.append(msg)
            _log.warning(msg)

    def _write(self, ref: str | RunRef, batch: _Batch, status: str | None = None) -> None:
        run_id = run_id_of(ref)
        try:
            if run_id is None:
                raise RuntimeError("its run was never created (see the warning before)")
            if batch.metrics or batch.params or batch.tags:
                with_retries(
                    lambda: self._send(run_id, batch.metrics, batch.params, batch.tags), "log_batch", attempts=15
                )
            if status is not None:
                with_retries(lambda: self._terminate(run_id, status), "set_terminated", attempts=15)
        except Exception as exc:  # noqa: BLE001 - never let tracking kill training
            run_id = run_id or f"of trial {getattr(ref, 'number', '?')}"
            msg = (
                f"could not write {len(batch.metrics)} metric values, {len(batch.params)} params, "
                f"{len(batch.tags)} tags{' and the end' if status else ''} of MLflow run {run_id}: {exc}"
            )
            self.errors.append(msg)
            _log.warning(msg)
