"""``hpo proxy``: Optuna's gRPC storage proxy in front of one database, plus the study lock workers share.

Hundreds of workers each holding PostgreSQL connections exceed the server's connection limit
(100 by default). Through the proxy, workers (``--storage grpc://HOST:PORT``) hold one gRPC
channel each and the proxy holds the database connections.

The exact ``n_trials`` cap needs "count the trials, then create one" serialised across all
workers (:func:`hpo._storage.study_lock`). Direct PostgreSQL workers take an advisory lock on
their own connection; through the proxy they have none, so the proxy serves a second gRPC method,
``/hpo.StudyLock/Hold``, next to Optuna's storage service:

* the worker opens a stream and sends the study name; the proxy answers ``held`` once it holds the
  study's lock (a thread lock, and on PostgreSQL the same advisory lock direct workers take, so
  both kinds of worker can share a study);
* the worker does its counting and creating through ordinary storage calls, then ends the stream;
  the proxy releases the lock. A worker that dies ends its stream too (gRPC cancels it when the
  connection drops), so a dead worker never keeps the lock.

Each stream occupies one of the proxy's server threads while it waits, so at most
``threads - RESERVED_THREADS`` lock streams are admitted at once; the others are refused with
RESOURCE_EXHAUSTED and retry after a short back-off. That keeps threads free for the storage calls
the lock holder makes (without it, waiting streams could take every thread and deadlock the proxy).
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import grpc
    import optuna

LOCK_METHOD = "/hpo.StudyLock/Hold"
HELD = b"held"
RESERVED_THREADS = 8  # server threads kept for storage calls (see the module docstring)
DEFAULT_THREADS = 256
CONNECT_TIMEOUT_S = 30.0


def parse_grpc_url(url: str) -> tuple[str, int]:
    """``grpc://host:port`` -> ``(host, port)``.

    Raises:
        ValueError: no port, or a port that is not a number.
    """
    rest = url.removeprefix("grpc://").rstrip("/")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected grpc://HOST:PORT, got {url!r}")
    return host, int(port)


def advisory_key(study_name: str) -> int:
    """The PostgreSQL advisory lock key of a study (the same for direct and proxied workers)."""
    return int.from_bytes(hashlib.sha256(f"hpo:{study_name}".encode()).digest()[:8], "big", signed=True)


# --- the proxy's side ---------------------------------------------------------------------------


class StudyLocks:
    """The proxy's study locks: one thread lock per study, plus the database's advisory lock on PostgreSQL."""

    def __init__(self, storage_url: str, admitted: int) -> None:
        self._url = storage_url
        self._locks: dict[str, threading.Lock] = {}
        self._connections: dict[str, Any] = {}  # study name -> its own connection (advisory locks are per session)
        self._guard = threading.Lock()
        self._slots = threading.BoundedSemaphore(admitted)

    def _lock_of(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    @contextlib.contextmanager
    def held(self, name: str) -> Iterator[None]:
        lock = self._lock_of(name)
        with lock:
            conn = self._advisory_connection(name)
            if conn is None:
                yield
                return
            import sqlalchemy

            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": advisory_key(name)})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": advisory_key(name)})

    def _advisory_connection(self, name: str) -> Any:
        """The study's own database connection (used only under its thread lock), or None off PostgreSQL."""
        if not self._url.startswith(("postgresql", "postgres")):
            return None
        conn = self._connections.get(name)
        if conn is None or conn.closed:
            import sqlalchemy

            engine = sqlalchemy.create_engine(self._url, poolclass=sqlalchemy.pool.NullPool)
            conn = self._connections[name] = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return conn

    def hold(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        """The ``Hold`` stream: first request the study name; ``held`` once locked; released at the stream's end."""
        import grpc

        if not self._slots.acquire(blocking=False):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many workers waiting for the study lock")
        try:
            name = next(requests, b"").decode()
            with self.held(name):
                yield HELD
                for _ in requests:  # until the worker ends the stream, or its connection drops
                    break
        finally:
            self._slots.release()


def make_proxy(storage_url: str, host: str, port: int, threads: int = DEFAULT_THREADS) -> grpc.Server:
    """An unstarted gRPC server: Optuna's storage service over ``storage_url`` plus the study lock."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    import optuna

    from hpo._optuna_compat import make_grpc_server

    # get_storage, not RDBStorage: it adds Optuna's cache of finished trials (Optuna's own advice).
    storage = optuna.storages.get_storage(storage_url)
    server = make_grpc_server(storage, host, port, ThreadPoolExecutor(max_workers=threads))
    locks = StudyLocks(storage_url, max(1, threads - RESERVED_THREADS))
    handler = grpc.stream_stream_rpc_method_handler(locks.hold)
    service, method = LOCK_METHOD.strip("/").split("/")
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {method: handler}),))
    return server


def serve(storage_url: str, host: str, port: int, threads: int = DEFAULT_THREADS,
          on_ready: Callable[[], None] | None = None, stop: threading.Event | None = None) -> None:
    """Runs the proxy until ``stop`` is set or the process is interrupted.

    Raises:
        UsageError: the port cannot be bound.
    """
    from hpo._errors import UsageError

    try:
        server = make_proxy(storage_url, host, port, threads)
    except RuntimeError as exc:  # grpc: "Failed to bind to address"
        raise UsageError(f"--port: cannot listen on {host}:{port} ({exc}); is another proxy running there?") from None
    server.start()
    if on_ready is not None:
        on_ready()
    try:
        while not (stop and stop.is_set()):
            time.sleep(0.2)
    finally:
        server.stop(grace=2).wait()


# --- the worker's side --------------------------------------------------------------------------

_CHANNELS: dict[str, Any] = {}


def channel(url: str) -> grpc.Channel:
    """This process's channel to the proxy at ``url``, once the proxy answers.

    Raises:
        ValueError: ``url`` is not ``grpc://HOST:PORT``.
        ConnectionError: the proxy did not answer within :data:`CONNECT_TIMEOUT_S`.
    """
    import grpc

    found = _CHANNELS.get(url)
    if found is None:
        host, port = parse_grpc_url(url)
        found = grpc.insecure_channel(f"{host}:{port}")
        try:
            grpc.channel_ready_future(found).result(timeout=CONNECT_TIMEOUT_S)
        except grpc.FutureTimeoutError:
            found.close()
            raise ConnectionError(url) from None
        _CHANNELS[url] = found
    return found


@contextlib.contextmanager
def proxy_study_lock(url: str, study_name: str) -> Iterator[None]:
    """Holds the study's lock in the proxy at ``url`` (see the module docstring)."""
    import grpc

    hold = channel(url).stream_stream(LOCK_METHOD, request_serializer=None, response_deserializer=None)
    delay = 0.01
    while True:
        outbox: queue.Queue[bytes | None] = queue.Queue()
        outbox.put(study_name.encode())
        responses = hold(iter(outbox.get, None))
        try:
            next(responses)
            break
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            time.sleep(delay * (1 + random.random()))  # many waiters: back off, then ask again
            delay = min(delay * 2, 1.0)
    try:
        yield
    finally:
        outbox.put(None)  # ends the request stream: the proxy releases the lock
        for _ in responses:
            pass


def open_proxy_storage(url: str) -> optuna.storages.BaseStorage:
    """Optuna's gRPC client for ``grpc://host:port``, once the proxy answers.

    Raises:
        ConnectionError: the proxy did not answer within :data:`CONNECT_TIMEOUT_S`.
    """
    import warnings

    import optuna

    host, port = parse_grpc_url(url)
    with warnings.catch_warnings():  # GrpcStorageProxy is "experimental" since Optuna 4.2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.GrpcStorageProxy(host=host, port=port)
    storage.wait_server_ready(timeout=CONNECT_TIMEOUT_S)
    return storage
