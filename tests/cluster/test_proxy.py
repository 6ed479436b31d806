"""`hpo proxy`: workers on one study through Optuna's gRPC storage proxy, with the exact n_trials cap."""

from __future__ import annotations

import signal

import pytest
from _helpers import base_space, finish_exact_study, free_port, start_hpo, wait_until


@pytest.fixture
def proxy(postgres_server, workdir):
    """A running `hpo proxy` over a fresh PostgreSQL database; yields (database URL, grpc URL, process)."""
    url, port = postgres_server(), free_port()
    proc = start_hpo("proxy", "--storage", url, "--host", "127.0.0.1", "--port", port, cwd=workdir)
    wait_until(lambda: proc.poll() is not None or _listening(port), timeout=60)
    assert proc.poll() is None, proc.stdout.read()
    yield url, f"grpc://127.0.0.1:{port}", proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _space(storage: str, n_trials: int) -> dict:
    return base_space(study={"direction": "minimize", "metric": "loss", "n_trials": n_trials, "seed": 0,
                             "storage": storage})


@pytest.mark.slow  # six workers on PostgreSQL, ~30 s
def test_workers_through_the_proxy_run_exactly_n_trials(proxy, write_space, workdir):
    """6 workers (4 through the proxy, 2 straight on PostgreSQL: they share the lock) race for 30 fast trials."""
    url, grpc_url, proc = proxy
    proxied = write_space(_space(grpc_url, 30), name="proxied")
    direct = write_space(_space(url, 30), name="direct")
    workers = [start_hpo("run", proxied, "--no-report", cwd=workdir) for _ in range(4)]
    workers += [start_hpo("run", direct, "--no-report", cwd=workdir) for _ in range(2)]
    finish_exact_study(workers, proxied, 30, timeout=300)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0  # the proxy stops cleanly, and is gone


def test_status_reads_through_the_proxy(proxy, write_space, workdir, cli):
    _, grpc_url, _ = proxy
    path = write_space(_space(grpc_url, 3))
    assert cli("run", path, "--no-report")[0] == 0
    code, out, _ = cli("status", path)
    assert code == 0 and "3 trials planned" in out and "COMPLETE" in out


def test_a_proxy_that_does_not_answer_is_one_clear_line(write_space, workdir, cli, monkeypatch):
    monkeypatch.setattr("hpo._proxy.CONNECT_TIMEOUT_S", 0.5)
    path = write_space(_space(f"grpc://127.0.0.1:{free_port()}", 3))
    code, _, err = cli("run", path, "--no-report")
    assert code == 2
    assert "no hpo proxy answers at grpc://127.0.0.1:" in err and "Traceback" not in err


def test_proxy_refuses_a_storage_it_cannot_serve(workdir):
    proc = start_hpo("proxy", "--storage", "grpc://127.0.0.1:1", cwd=workdir)
    text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "--storage: expected a database URL" in text


HOLDER = """
import sys, time
from hpo._proxy import proxy_study_lock
with proxy_study_lock(sys.argv[1], "s"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_the_proxy_lock_excludes_other_workers_and_a_killed_holder_releases_it(proxy, workdir):
    """What keeps n_trials exact through the proxy: one holder per study at a time; a holder that dies
    (SIGKILL: no cleanup runs) frees the lock, since its stream ends with its connection."""
    import subprocess
    import sys
    import threading

    from hpo._proxy import proxy_study_lock

    _, grpc_url, _ = proxy
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, grpc_url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        acquired = threading.Event()

        def take() -> None:
            with proxy_study_lock(grpc_url, "s"):
                acquired.set()

        waiter = threading.Thread(target=take, daemon=True)
        waiter.start()
        assert not acquired.wait(2.0)  # "s" is held by the other process
        with proxy_study_lock(grpc_url, "other study"):  # another study's lock is free
            pass
        holder.kill()
        assert acquired.wait(30.0)
        waiter.join(10)
    finally:
        holder.kill()
        holder.wait()


def test_a_silent_worker_behind_the_proxy_has_its_trial_recovered_after_the_grace(proxy, write_space, workdir):
    """Through the proxy there is no database heartbeat: workers count beats in their trial's
    attributes, and a trial whose count stands still for the grace is failed and re-queued
    (before, it stayed RUNNING until `hpo run` ran again on the dead worker's machine)."""
    import time

    from hpo._beat import beating
    from hpo._optuna_compat import trial_id
    from hpo._spec import load_spec
    from hpo._study import next_trial, open_study, recover_orphans

    _, grpc_url, _ = proxy
    doc = _space(grpc_url, 4)
    doc["study"].update(heartbeat_interval=1, heartbeat_grace=2)
    spec = load_spec(write_space(doc))
    study = open_study(spec)
    silent = next_trial(study, spec)  # its worker "dies" here: no beating after the first beat
    live = next_trial(study, spec)
    recovered: list[int] = []
    with beating(study, spec, trial_id(live)):
        deadline = time.monotonic() + 15
        while not recovered and time.monotonic() < deadline:
            recovered = recover_orphans(study, spec)
            time.sleep(0.3)
        time.sleep(2.5)  # longer than the grace: the live trial's count keeps moving
        recovered += recover_orphans(study, spec)
    assert recovered == [silent.number]
    trials = {t.number: t for t in study.get_trials()}
    assert trials[silent.number].state.name == "FAIL" and trials[live.number].state.name == "RUNNING"
    retry = next(t for t in trials.values() if t.user_attrs.get("retry_of") == silent.number)
    assert retry.state.name == "WAITING" and retry.user_attrs["retry_reason"] == "heartbeat stopped"
