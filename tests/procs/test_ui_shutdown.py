"""`hpo ui` leaves no `mlflow server` behind, however it ends."""

from __future__ import annotations

import os
import signal

import pytest
from _helpers import child_pids, process_group, start_hpo, wait_until

from hpo.tracking._ui import UiServer, find_free_port, port_is_free

GONE_WITHIN_S = 20  # the server's own SIGTERM handling plus a loaded machine


def start_ui(workdir, host: str = "127.0.0.1"):
    """``hpo ui`` on a free port; returns (process, port, the server's process group) once it serves."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{workdir}/mlflow.db"
    MlflowClient(uri).search_experiments()  # creates the store: `hpo ui`, a reader, creates none
    port = find_free_port(host)
    proc = start_hpo("ui", "--tracking-uri", uri, "--host", host, "--port", str(port), cwd=workdir)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("MLflow UI: "):
            break
    else:
        pytest.fail(f"hpo ui did not start: {''.join(seen)}")
    (guard,) = child_pids(proc.pid)  # the server's guard leads the server's own process group
    assert os.getpgid(guard) == guard and len(process_group(guard)) >= 2
    assert not port_is_free(host, port)
    return proc, port, guard


@pytest.mark.slow  # an MLflow server start per case: ~5 s idle, ~20 s on a loaded machine
@pytest.mark.parametrize(("signum", "code", "host"), [
    (signal.SIGINT, 130, "127.0.0.1"),
    (signal.SIGTERM, 143, "127.0.0.1"),
    (signal.SIGHUP, 129, "127.0.0.1"),
    (signal.SIGTERM, 143, "0.0.0.0"),
    (signal.SIGKILL, -signal.SIGKILL, "127.0.0.1"),
])
def test_every_way_hpo_ui_ends_stops_the_server(signum, code, host, workdir):
    proc, port, group = start_ui(workdir, host)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == code, out
    wait_until(lambda: not process_group(group), timeout=GONE_WITHIN_S)
    assert port_is_free(host, port)


@pytest.mark.slow  # an MLflow server, ~12 s
def test_start_then_with_is_one_server(tmp_path):
    """``with UiServer(...).start() as s`` starts one server, and leaving the block stops it."""
    server = UiServer(f"sqlite:///{tmp_path}/mlflow.db", artifacts_dir=tmp_path / "artifacts")
    with server.start() as same:
        assert same is server
        first = server.proc
        assert server.start() is server and server.proc is first
        group = first.pid
        assert process_group(group)
    assert first.poll() is not None and not process_group(group)
    assert port_is_free("127.0.0.1", server.port)
