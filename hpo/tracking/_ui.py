"""``hpo ui``: the real MLflow UI (``mlflow server``) against a study's tracking store."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from hpo._lifeline import Lifeline, guarded
from hpo._signals import interrupt_on_signals

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

NO_AUTH_WARNING = (
    "warning: the MLflow UI is bound to {host}, so other machines can reach it; MLflow's server "
    "has no authentication by default: anyone who can connect can read and change every run."
)


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now (connections in TIME_WAIT do not count)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        if os.name == "posix":  # as uvicorn does; on Windows it would allow double binds
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def base_url(host: str, port: int) -> str:
    return f"http://{_url_host(host)}:{port}"


def experiment_url(base: str, experiment_id: str | None) -> str:
    """The runs table of an experiment (``http://host:port/#/experiments/<id>/runs``).

    MLflow 3's plain ``#/experiments/<id>`` opens a GenAI (traces) overview; ``/runs`` is the
    "Training runs" table with the study's parent run and its nested trial runs.
    """
    return f"{base}/#/experiments/{experiment_id}/runs" if experiment_id else f"{base}/"


def find_experiment_id(tracking_uri: str, experiment: str | None) -> str | None:
    """The id of experiment ``experiment`` in the store, or None when it does not exist (yet)."""
    if not experiment:
        return None
    from mlflow.tracking import MlflowClient

    exp = MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(experiment)
    return exp.experiment_id if exp is not None else None


def server_command(
    tracking_uri: str,
    host: str,
    port: int,
    artifacts_dir: Path | None = None,
    workers: int = 1,
) -> list[str]:
    """The ``mlflow server`` command line (artifacts served through the server)."""
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        tracking_uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--serve-artifacts",
    ]
    if artifacts_dir is not None:
        cmd += ["--artifacts-destination", Path(artifacts_dir).expanduser().resolve().as_uri()]
    if host not in LOCAL_HOSTS:
        # The user asked for another interface on purpose: let clients reach it by any name.
        cmd += ["--allowed-hosts", "*"]
    return cmd


class UiServer:
    """A running ``mlflow server`` child process; stop it with :meth:`stop` (or ``with``).

    The server runs under a guard (``python -m hpo._lifeline``) in a process group of its own;
    the guard kills that group when this process dies without calling :meth:`stop`, even by
    SIGKILL, so no server is ever left listening.
    """

    def __init__(
        self,
        tracking_uri: str,
        host: str = "127.0.0.1",
        port: int = 0,
        artifacts_dir: Path | None = None,
        log: IO[bytes] | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.host = host
        self.port = port or find_free_port("127.0.0.1" if host == "localhost" else host)
        self.artifacts_dir = artifacts_dir
        self.url = base_url(host, self.port)
        self._log = log if log is not None else tempfile.TemporaryFile()
        self.proc: subprocess.Popen[bytes] | None = None
        self._lifeline: Lifeline | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 90.0) -> UiServer:
        """Starts the server and waits until it answers ``/health``; raises if it does not.

        Does nothing when the server already runs (``with UiServer(...).start() as s`` is one server).
        """
        from hpo.tracking._mlflow import prepare_store

        if self.running:
            return self

        # Create the schema first (with the multi-process lock), not inside the server.
        prepare_store(self.tracking_uri)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # The background job runner (GenAI judges, trace rollups) starts ~8 processes; browsing
        # runs does not need it. Set the variable to true to get it back.
        env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        self._lifeline = Lifeline()
        self.proc = subprocess.Popen(
            guarded(server_command(self.tracking_uri, self.host, self.port, self.artifacts_dir)),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the whole group
            **self._lifeline.popen_kwargs(env),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with code {self.proc.returncode}:\n{self.output_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer on {self.url} within {timeout:.0f}s:\n{self.output_tail()}")

    def output_tail(self, n: int = 4000) -> str:
        with contextlib.suppress(Exception):
            self._log.flush()
            self._log.seek(0, os.SEEK_END)
            size = self._log.tell()
            self._log.seek(max(0, size - n))
            return self._log.read().decode("utf-8", "replace")
        return ""

    def stop(self, timeout: float = 10.0) -> None:
        """Terminates the server and its workers (SIGTERM to its process group, then SIGKILL)."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever of the group is left (uvicorn workers, job runners) goes now.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if self._lifeline is not None:
            self._lifeline.close()

    def __enter__(self) -> UiServer:
        return self.start()  # a no-op after an explicit start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_ui(
    tracking_uri: str,
    host: str = "127.0.0.1",
    port: int = 5000,
    experiment: str | None = None,
    artifacts_dir: Path | None = None,
) -> int:
    """Serves the MLflow UI for ``tracking_uri`` until Ctrl-C; returns the exit code.

    Prints the URL of ``experiment``'s page. Binding anything but 127.0.0.1/localhost prints a
    warning (MLflow's UI has no authentication by default). When ``port`` is taken, a free one
    is used instead. A tracking server URI (``http://...``) is already a UI: its URL is printed.

    Returns:
        0 when the server stopped by itself cleanly, 1 when it failed, 130/143/129 after
        SIGINT (Ctrl-C)/SIGTERM/SIGHUP. The server is stopped on every way out.
    """
    from hpo.tracking._mlflow import is_remote, sqlite_path

    db = sqlite_path(tracking_uri)
    if artifacts_dir is None and db is not None:  # where MlflowTracker puts them, not ./mlartifacts
        artifacts_dir = db.expanduser().resolve().parent / "mlflow-artifacts"
    if is_remote(tracking_uri):
        exp_id = None
        with contextlib.suppress(Exception):
            exp_id = find_experiment_id(tracking_uri, experiment)
        print(f"The tracking store is an MLflow server already: {experiment_url(tracking_uri.rstrip('/'), exp_id)}")
        return 0
    if host not in LOCAL_HOSTS:
        print(NO_AUTH_WARNING.format(host=host), file=sys.stderr)
    check_host = "127.0.0.1" if host == "localhost" else host
    if port and not port_is_free(check_host, port):
        new = find_free_port(check_host)
        print(f"port {port} is in use; using {new}", file=sys.stderr)
        port = new
    server = UiServer(tracking_uri, host=host, port=port, artifacts_dir=artifacts_dir)
    print(f"starting the MLflow UI on {server.url} (store: {tracking_uri}) ...", flush=True)
    # SIGTERM (kill, docker stop) and SIGHUP (the terminal closed) stop the server as Ctrl-C does.
    with interrupt_on_signals():
        try:
            return _serve(server, tracking_uri, experiment)
        except KeyboardInterrupt as exc:
            with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
                print("\nstopping the MLflow UI ...", file=sys.stderr)
            return getattr(exc, "exit_code", 130)
        finally:
            server.stop()


def _serve(server: UiServer, tracking_uri: str, experiment: str | None) -> int:
    """Starts ``server``, prints the experiment's URL and waits until the server exits."""
    try:
        server.start()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    exp_id = None
    try:
        exp_id = find_experiment_id(tracking_uri, experiment)
    except Exception as exc:  # noqa: BLE001
        print(f"warning: could not look up experiment {experiment!r}: {exc}", file=sys.stderr)
    if experiment and exp_id is None:
        print(f"(no experiment named {experiment!r} yet; run a study first)", file=sys.stderr)
    print(f"MLflow UI: {experiment_url(server.url, exp_id)}", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    assert server.proc is not None
    code = server.proc.wait()
    print(f"the MLflow server exited with code {code}:\n{server.output_tail(2000)}", file=sys.stderr)
    return 0 if code == 0 else 1
