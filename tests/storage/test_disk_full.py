"""A full disk during a run: the worker stops with one clear line, the journal stays readable, and
the next run with space resumes with nothing lost. Also ``study.fsync``."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _helpers import base_space, load_trials


def run_hpo(cwd: Path, *args: str, max_file_bytes: int | None = None) -> subprocess.CompletedProcess:
    """``python -m hpo ARGS``; with ``max_file_bytes`` no file can grow past that size (writes get EFBIG)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, resource.RLIM_INFINITY))

    return subprocess.run([sys.executable, "-m", "hpo", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, preexec_fn=limit if max_file_bytes else None,
                          env={**os.environ, "COLUMNS": "200"})


def test_disk_full_stops_the_worker_cleanly_and_the_next_run_loses_nothing(write_space, workdir):
    doc = base_space(objective={"name": "objs.py:slow", "fixed": {"sleep": 0.0}},
                     study={"direction": "minimize", "metric": "value", "n_trials": 2, "seed": 0})
    path = write_space(doc)
    assert run_hpo(workdir, "run", str(path), "--no-report").returncode == 0
    journal = workdir / "hpo-runs" / "space" / "journal.log"
    done = {t.number: (t.params, t.values, t.intermediate_values) for t in load_trials(path)}
    per_trial = journal.stat().st_size // 2  # roughly: the study's own records are small
    # The limit falls among the third trial's reports: after its worker is recorded, before its end.
    limit = journal.stat().st_size + per_trial * 6 // 10

    full = run_hpo(workdir, "run", str(path), "--no-report", "--n-trials", "6", max_file_bytes=limit)
    output = full.stdout + full.stderr
    assert full.returncode == 1, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the disk is full" in errors[0] and "hpo-runs/space/journal.log" in errors[0], output
    data = journal.read_bytes()
    assert len(data) <= limit and data.endswith(b"\n")
    for line in data.splitlines():
        json.loads(line)  # a partial append was cut back
    trials = load_trials(path)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "RUNNING"]

    resumed = run_hpo(workdir, "run", str(path), "--no-report", "--n-trials", "6")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    trials = load_trials(path)
    assert {n: (t.params, t.values, t.intermediate_values) for n, t in enumerate(trials) if n in done} == done
    assert trials[2].state.name == "FAIL" and "died" in trials[2].user_attrs["fail_reason"]
    retry = [t for t in trials if t.user_attrs.get("retry_of") == 2]
    assert len(retry) == 1 and retry[0].params == trials[2].params and retry[0].state.name == "COMPLETE"
    assert len([t for t in trials if t.state.name == "COMPLETE"]) == 6


def test_a_full_disk_is_cut_back_and_the_store_stays_closed(tmp_path, monkeypatch):
    """A failed append leaves no partial bytes, and this process writes nothing more: a later, smaller
    append could fit and record the running trial as failed instead of lost."""
    import errno

    from hpo._errors import StoreFullError
    from hpo._journal import HpoJournalBackend

    journal = tmp_path / "journal.log"
    backend = HpoJournalBackend(journal)
    backend.append_logs([{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}])
    before = journal.read_bytes()
    real_pwrite = os.pwrite
    calls = []

    def half_then_full(fd, data, offset):
        calls.append(len(data))
        if len(calls) == 1:
            return real_pwrite(fd, data[: len(data) // 2], offset)  # a short write
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", half_then_full)
    with pytest.raises(StoreFullError, match="the disk is full"):
        backend.append_logs([{"op_code": 2, "worker_id": "w", "study_id": 0, "user_attr": {"k": "v" * 100}}])
    assert journal.read_bytes() == before
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    with pytest.raises(StoreFullError):
        backend.append_logs([{"op_code": 2, "worker_id": "w", "study_id": 0, "user_attr": {"k": 1}}])
    assert journal.read_bytes() == before


def test_short_writes_are_retried_until_the_record_is_whole(tmp_path, monkeypatch):
    from hpo._journal import HpoJournalBackend

    journal = tmp_path / "journal.log"
    backend = HpoJournalBackend(journal)
    real_pwrite = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: real_pwrite(fd, data[:7], offset))
    record = {"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}
    backend.append_logs([record])
    assert json.loads(journal.read_bytes()) == record


def test_study_fsync_true_fsyncs_every_append_and_false_none(write_space, workdir, monkeypatch):
    """The knob reaches the store: `study.fsync: true` makes every append durable against power loss."""
    from hpo._spec import load_spec
    from hpo._storage import journal_path, open_storage

    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    for fsync in (False, True):
        doc = base_space(study={"name": f"s{fsync}", "direction": "minimize", "metric": "loss", "n_trials": 1,
                                "fsync": fsync})
        spec = load_spec(write_space(doc, name=f"s{fsync}"))
        storage = open_storage(spec)
        synced.clear()
        study_id = storage.create_new_study([1], spec.study.name)
        storage.set_study_user_attr(study_id, "k", 1)
        journal = str(journal_path(spec).resolve())
        assert synced == ([journal] * 2 if fsync else []), fsync


def test_a_jobs_worker_process_on_a_full_disk_prints_one_line(write_space, workdir):
    """The `--jobs N` worker (``python -m hpo._worker``): exit 1 and one error line in its log."""
    from hpo._spec import load_spec

    path = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 2, "seed": 0}))
    assert run_hpo(workdir, "run", str(path), "--no-report").returncode == 0
    spec = load_spec(path)
    size = (workdir / "hpo-runs" / "space" / "journal.log").stat().st_size

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 200, resource.RLIM_INFINITY))

    spec.raw["study"]["n_trials"] = 6
    spec_json = workdir / "spec.json"  # what the supervisor hands each worker
    spec_json.write_text(json.dumps({"source": spec.source, "raw": spec.raw}, default=str))
    done = subprocess.run([sys.executable, "-m", "hpo._worker", str(spec_json), "0"], cwd=workdir,
                          capture_output=True, text=True, timeout=300, preexec_fn=limit)
    output = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in output, output
    assert [line for line in output.splitlines() if line.startswith("error:")] == [output.strip()], output
    assert "the disk is full" in output and "journal.log" in output


def test_an_oserror_raised_while_handling_a_full_store_is_one_line(cli, monkeypatch, write_space):
    """On a full disk, a trial's error handler writing its traceback fails too (ENOSPC): the user
    still gets the store's one line, not a traceback."""
    import errno

    import hpo.cli
    from hpo._errors import StoreFullError

    def fails(args):
        try:
            raise StoreFullError("cannot append to the study store hpo-runs/space/journal.log: the disk is full")
        except StoreFullError:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "hpo-runs/space/trials/00002/error.txt")

    monkeypatch.setitem(hpo.cli.COMMANDS, "status", fails)
    code, out, err = cli("status", write_space(base_space()))
    assert code == 1 and err.count("\n") == 1 and "journal.log: the disk is full" in err, err

    def full_elsewhere(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "hpo-runs/space/trials/00002/best.pt")

    monkeypatch.setitem(hpo.cli.COMMANDS, "status", full_elsewhere)
    code, out, err = cli("status", write_space(base_space()))
    assert code == 1 and err.count("\n") == 1 and "best.pt" in err and "No space left" in err, err


def _remount(disk: Path, size: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True, capture_output=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_really_full_filesystem_then_more_space_loses_nothing(tmp_path):
    """The same on a real filesystem that fills up (ENOSPC): a tmpfs with one free page."""
    from _helpers import OBJECTIVES_PY

    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], check=True, capture_output=True)
    try:
        (disk / "objs.py").write_text(OBJECTIVES_PY)
        path = disk / "space.yaml"
        path.write_text(yaml.safe_dump(base_space(
            objective={"name": "objs.py:slow", "fixed": {"sleep": 0.0}},
            study={"direction": "minimize", "metric": "value", "n_trials": 2, "seed": 0})))
        assert run_hpo(disk, "run", str(path), "--no-report").returncode == 0
        done = {t.number: (t.params, t.values) for t in trials_of(disk, path)}
        stat = os.statvfs(disk)
        _remount(disk, (stat.f_blocks - stat.f_bfree + 1) * stat.f_frsize)  # one page left
        full = run_hpo(disk, "run", str(path), "--no-report", "--n-trials", "12")
        output = full.stdout + full.stderr
        assert full.returncode == 1 and "Traceback" not in output, output
        errors = [line for line in output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "the disk is full" in errors[0] and "journal.log" in errors[0], output
        assert len(trials_of(disk, path)) > 2, "the disk filled before any new trial: the test proves little"
        _remount(disk, 16 << 20)
        resumed = run_hpo(disk, "run", str(path), "--no-report", "--n-trials", "12")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        trials = trials_of(disk, path)
        assert {t.number: (t.params, t.values) for t in trials if t.number in done} == done
        assert len([t for t in trials if t.state.name == "COMPLETE"]) == 12
        assert not [t for t in trials if t.state.name == "RUNNING"]
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def trials_of(cwd: Path, path: Path) -> list:
    """The study's trials, read from ``cwd`` (where its store lives)."""
    from hpo._spec import load_spec
    from hpo._study import open_study

    here = os.getcwd()
    os.chdir(cwd)
    try:
        return open_study(load_spec(path), create=False).get_trials()
    finally:
        os.chdir(here)
