"""The example space files: each validates; the quick-start study runs, exports and retrains."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from _helpers import load_trials, start_hpo

from hpo._export import read_export

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "search_spaces").glob("*.yaml"))
# `hpo train` retrains with the trial's seed on CPU; the value must match within this (README).
RETRAIN_TOLERANCE = 0.01


def test_there_are_the_six_documented_examples():
    assert {p.stem for p in EXAMPLES} >= {"quickstart", "mnist1d_tpe_hyperband", "grid_small", "random_baseline",
                                          "distillation", "acceleration"}


# finetune.yaml starts from the quick-start study, which `hpo validate` checks is there: it is
# validated and run after that study, in tests/finetune/test_finetune_space.py.
@pytest.mark.parametrize("path", [p for p in EXAMPLES if p.stem != "finetune"], ids=lambda p: p.stem)
def test_example_validates(path, cli):
    code, out, err = cli("validate", path)
    assert code == 0, err
    assert "valid" in out


@pytest.fixture
def quickstart(workdir):
    """A copy of the quick-start space in the scratch folder, cut to 3 trials of 3 epochs."""
    path = workdir / "quickstart.yaml"
    shutil.copy(EXAMPLES[[p.stem for p in EXAMPLES].index("quickstart")], path)
    return path


def test_quickstart_trains_exports_and_retrains_within_tolerance(quickstart, workdir, cli):
    args = ("--n-trials", "3", "--set", "objective.fixed.max_epochs=3")
    code, out, err = cli("run", quickstart, *args)
    assert code == 0, out + err
    trials = load_trials(quickstart)
    assert [t.state.name for t in trials].count("COMPLETE") >= 1
    assert all(len(t.intermediate_values) >= 1 for t in trials)
    assert (workdir / "hpo-runs" / "quickstart" / "report.html").exists()

    assert cli("export", quickstart, *args[2:], "-o", workdir / "best.yaml")[0] == 0
    exported = read_export(workdir / "best.yaml")[0]
    assert Path(exported.checkpoint).is_file()
    code, out, err = cli("train", workdir / "best.yaml", "-o", workdir / "final.pt")
    assert code == 0, out + err
    retrained = float(out.split("val_acc: ")[1].split()[0])
    assert retrained == pytest.approx(exported.value, abs=RETRAIN_TOLERANCE)
    assert (workdir / "final.pt").is_file()


@pytest.mark.slow  # ~10 s
def test_sigterm_during_a_lightning_trial_never_leaves_it_running(quickstart, workdir):
    proc = start_hpo("run", quickstart, "--no-report", "--set", "objective.fixed.max_epochs=40", cwd=workdir)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if (workdir / "hpo-runs" / "quickstart" / "trials" / "00000").exists():
            break
    time.sleep(3)  # inside Lightning's fit by now
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    trials = load_trials(quickstart)
    assert not [t for t in trials if t.state.name == "RUNNING"]
    (interrupted,) = [t for t in trials if t.state.name == "FAIL"]
    assert "interrupted" in interrupted.user_attrs["fail_reason"]
    assert [t.state.name for t in trials].count("WAITING") == 1


@pytest.mark.slow  # chaos, ~35 s
def test_chaos_with_the_lightning_objective(quickstart, workdir):
    """--jobs 2 on short Lightning trials while a worker is SIGKILLed three times."""
    proc = start_hpo("run", quickstart, "--jobs", "2", "--no-report", "--n-trials", "8",
                     "--set", "objective.fixed.max_epochs=4", cwd=workdir)
    kills = 0
    deadline = time.monotonic() + 300
    while kills < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(1.0)
        try:
            # claimed ones only: a worker records its identity just after creating the trial
            running = [t for t in load_trials(quickstart) if t.state.name == "RUNNING" and "worker" in t.user_attrs]
        except Exception:  # noqa: BLE001 - not created yet
            continue
        if running:
            time.sleep(1.5)
            pid = int(running[0].user_attrs["worker"].rpartition(":")[2])
            if os.path.exists(f"/proc/{pid}"):
                os.kill(pid, signal.SIGKILL)
                kills += 1
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert kills == 3
    trials = load_trials(quickstart)
    assert len([t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]) == 8
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
