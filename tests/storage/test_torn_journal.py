"""A journal whose last record was cut off mid-write (a killed process, a full disk) loses
nothing else: the torn bytes are moved aside under the journal's lock, never built upon."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from _helpers import base_space, load_trials

TORN = b'{"op_code": 5, "worker_id": "x", "stat'


def summary(trials):
    """What must survive of each trial."""
    return [(t.number, t.state.name, t.values, t.params, t.intermediate_values, t.user_attrs) for t in trials]


def optuna_reads(path: Path):
    """The journal through Optuna's own backend (raises on any damage it cannot read past)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(path), lock_obj=optuna.storages.journal.JournalFileOpenLock(str(path))))
    (frozen,) = storage.get_all_studies()
    return storage, frozen


def check_reads_cleanly(path: Path) -> None:
    """Every line is a whole JSON record and Optuna's backend replays them all."""
    import json

    data = path.read_bytes()
    assert data.endswith(b"\n")
    for line in data.splitlines():
        json.loads(line)
    optuna_reads(path)


def test_a_cut_at_every_byte_of_the_last_record_keeps_every_earlier_record(write_space, cli, workdir, capsys):
    from hpo._spec import load_spec
    from hpo._study import open_study

    path = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 3, "seed": 0}))
    assert cli("run", path, "--no-report")[0] == 0
    spec = load_spec(path)
    journal = spec.study_dir / "journal.log"
    full = journal.read_bytes()
    start = full.rstrip(b"\n").rfind(b"\n") + 1  # where the last record begins
    reference = workdir / "reference.log"
    reference.write_bytes(full[:start])
    storage, frozen = optuna_reads(reference)
    before = summary(storage.get_all_trials(frozen._study_id))
    after = summary(load_trials(path))
    assert before != after, "the last record should change a trial, or this test proves little"

    assert len(full) - start > 40  # a real record, cut at each of its bytes
    for cut in range(start + 1, len(full)):
        for leftover in spec.study_dir.glob("journal.log*"):
            leftover.unlink()
        journal.write_bytes(full[:cut])
        study = open_study(spec)  # opens for writing
        complete = cut == len(full) - 1  # only the newline is missing: the record is whole
        assert summary(study.get_trials(deepcopy=False)) == (after if complete else before), cut
        study.set_user_attr("after_repair", cut)  # a following write
        check_reads_cleanly(journal)
        storage, frozen = optuna_reads(journal)
        assert frozen.user_attrs["after_repair"] == cut
        assert summary(storage.get_all_trials(frozen._study_id)) == (after if complete else before), cut
        torn = list(spec.study_dir.glob("journal.log.torn-*"))
        if complete:
            assert not torn
        else:
            assert [p.read_bytes() for p in torn] == [full[start:cut]], cut
            err = capsys.readouterr().err
            assert err.count("warning:") == 1 and str(journal) in err and str(torn[0]) in err


def test_half_a_record_appended_then_status_twice_then_run_resumes(write_space, cli, workdir):
    """The reported loss: before the fix, the next append landed after the half line and every
    command from then on ended in a JSONDecodeError traceback."""
    path = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 3, "seed": 0}))
    assert cli("run", path, "--no-report")[0] == 0
    before = summary(load_trials(path))
    journal = workdir / "hpo-runs" / "space" / "journal.log"
    with journal.open("ab") as f:
        f.write(TORN)
    for _ in range(2):
        code, out, err = cli("status", path)
        assert code == 0, err
        assert "COMPLETE" in out
    code, out, err = cli("run", path, "--no-report", "--n-trials", "5")
    assert code == 0, err
    (torn,) = (workdir / "hpo-runs" / "space").glob("journal.log.torn-*")
    assert torn.read_bytes() == TORN
    assert err.count("warning:") == 1 and str(torn.relative_to(workdir)) in err
    trials = load_trials(path)
    assert summary(trials[:3]) == before
    assert [t.state.name for t in trials] == ["COMPLETE"] * 5
    check_reads_cleanly(journal)
    code, out, err = cli("status", path)
    assert code == 0 and "Traceback" not in err


HOLDER = """
import sys, time
from hpo._lock import FileLock
journal, half, rest = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
with FileLock(journal + ".lock"):
    with open(journal, "ab") as f:
        f.write(half)
        f.flush()
        print("holding", flush=True)
        sys.stdin.readline()
        f.write(rest)
"""


def test_an_append_in_progress_in_another_process_is_not_torn(write_space, cli, workdir):
    """A reader reads past it; a writer waits for the lock, then finds the record whole."""
    import json

    from hpo._spec import load_spec
    from hpo._study import open_study

    path = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 2, "seed": 0}))
    assert cli("run", path, "--no-report")[0] == 0
    spec = load_spec(path)
    journal = spec.study_dir / "journal.log"
    study_id = optuna_reads(journal)[1]._study_id
    record = json.dumps({"op_code": 2, "worker_id": "other", "study_id": study_id,
                         "user_attr": {"from_other": 1}}).encode() + b"\n"
    half, rest = record[:20], record[20:]
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(journal), half.decode(), rest.decode()],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "holding\n"
        snapshot = journal.read_bytes()
        assert snapshot.endswith(half)
        reader = subprocess.run([sys.executable, "-m", "hpo", "status", str(path)], cwd=workdir,
                                capture_output=True, text=True, timeout=120)  # a reader: no lock, no repair
        assert reader.returncode == 0, reader.stderr
        assert journal.read_bytes() == snapshot
        opened: list = []
        writer = threading.Thread(target=lambda: opened.append(open_study(spec)))
        writer.start()
        time.sleep(1.0)
        assert writer.is_alive(), "a writer must wait for the lock, not judge the tail torn"
        holder.stdin.write("go\n")
        holder.stdin.flush()
        writer.join(timeout=60)
        assert holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
    assert opened and opened[0].user_attrs["from_other"] == 1
    assert not list(spec.study_dir.glob("journal.log.torn-*"))
    check_reads_cleanly(journal)


def test_a_journal_damaged_before_the_fix_is_read_past_the_glued_line(write_space, cli, workdir):
    """Before the fix, the next append landed after a half line: that line is a cut-off record glued
    to a whole one, and Optuna stopped there for good. hpo reads the whole record and every later one."""
    import json

    from hpo._spec import load_spec
    from hpo._study import open_study

    path = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 3, "seed": 0}))
    assert cli("run", path, "--no-report")[0] == 0
    before = summary(load_trials(path))
    journal = workdir / "hpo-runs" / "space" / "journal.log"
    study_id = optuna_reads(journal)[1]._study_id
    glued = {"op_code": 2, "worker_id": "w", "study_id": study_id, "user_attr": {"glued": {"op_code": 1}}}
    later = {"op_code": 2, "worker_id": "w", "study_id": study_id, "user_attr": {"later": 2}}
    with journal.open("ab") as f:
        f.write(TORN + json.dumps(glued, separators=(",", ":")).encode() + b"\n")
        f.write(json.dumps(later, separators=(",", ":")).encode() + b"\n")
    code, out, err = cli("status", path)
    assert code == 0 and "Traceback" not in err, err
    assert "line" in err and "glued" in err
    study = open_study(load_spec(path), create=False)
    assert study.user_attrs["glued"] == {"op_code": 1} and study.user_attrs["later"] == 2
    assert summary(study.get_trials(deepcopy=False)) == before
    code, out, err = cli("run", path, "--no-report", "--n-trials", "4")
    assert code == 0, err
    assert [t.state.name for t in load_trials(path)] == ["COMPLETE"] * 4
