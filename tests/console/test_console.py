"""The console of ``hpo run`` / ``hpo train``: text printed verbatim, the live line, the closing hints."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time

import pytest
from _helpers import base_space

BRACKETS_PY = '''
def bracketed(params, ctx):
    if params["x"] > 0:
        raise RuntimeError("bad [/red] value [b]here[/b]")
    return {"loss": params["x"] ** 2}
'''


def _frozen(state: str, value: float | None = None):
    import optuna
    from optuna.trial import TrialState

    if state == "RUNNING":
        return optuna.trial.create_trial(state=TrialState.RUNNING)
    return optuna.trial.create_trial(state=TrialState[state], value=value)


def test_progress_line_counts_each_state():
    from hpo._progress import progress_line

    trials = ([_frozen("COMPLETE", 0.5)] * 6 + [_frozen("PRUNED")] + [_frozen("RUNNING")])
    assert progress_line(trials, 12, "0.997") == (
        "7/12 trials · 6 complete · 1 pruned · 0 failed · 1 running · best 0.997")
    assert progress_line([_frozen("FAIL")] * 2, 3, "-") == (
        "2/3 trials · 0 complete · 0 pruned · 2 failed · 0 running · best -")



def test_trials_lost_to_a_dead_worker_do_not_count_against_the_cap():
    """A killed run's trials are failed and retried: the line must not read 7/6 trials."""
    from hpo._progress import progress_line

    trials = [_frozen("COMPLETE", 0.5) for _ in range(6)] + [_frozen("FAIL") for _ in range(2)]
    for number, trial in enumerate(trials):
        trial.number = number
    assert progress_line(trials, 6, "0.5", lost={6, 7}) == (
        "6/6 trials · 6 complete · 0 pruned · 0 failed · 2 lost · 0 running · best 0.5")
    assert progress_line(trials, 8, "0.5", lost={7}) == (
        "7/8 trials · 6 complete · 0 pruned · 1 failed · 1 lost · 0 running · best 0.5")
    assert progress_line(trials, 8, "0.5", lost={7}, compact=True) == "7/8 · 6 complete · 1 failed · 1 lost · best 0.5"


def test_piped_run_prints_bracketed_text_verbatim(workdir, write_space):
    """Rich would read `[...]` as markup: the per-trial summary vanished, a `[/red]` crashed the run."""
    (workdir / "brackets.py").write_text(BRACKETS_PY)
    space = write_space(base_space(objective={"name": "brackets.py:bracketed"},
                                   study={"direction": "minimize", "metric": "loss", "n_trials": 4, "seed": 1,
                                          "max_consecutive_failures": 10}))
    out = subprocess.run([sys.executable, "-m", "hpo", "run", str(space), "--no-report"], cwd=workdir,
                         capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "COLUMNS": "250"})
    assert "Traceback" not in out.stderr, out.stderr
    assert "[4/4 trials · " in out.stdout and " running · best " in out.stdout, out.stdout
    assert "bad [/red] value [b]here[/b]" in out.stdout, out.stdout


def test_piped_lines_show_the_counts_and_best_as_of_each_trials_end(workdir, write_space):
    """Trials ending between two redraws all showed the last one's counts and best value."""
    from rich.console import Console

    from hpo._run import run_study
    from hpo._spec import load_spec

    space = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 6, "seed": 3}))
    buffer = io.StringIO()
    assert run_study(load_spec(space), 1, Console(file=buffer, force_terminal=False, width=300)).exit_code == 0
    rows = re.findall(r"trial +(\d+) COMPLETE +(\S+) +\[(\d+)/6 trials .* best (\S+)\]", buffer.getvalue())
    assert len(rows) == 6, buffer.getvalue()
    values = []
    for i, (_, value, done, best) in enumerate(rows):
        values.append(float(value))
        assert int(done) == i + 1 and float(best) == pytest.approx(min(values), rel=1e-5), rows


def test_piped_output_never_breaks_a_long_path(workdir, write_space):
    """Rich folded every line at 80 columns when writing to a pipe or a file, paths included: a
    path printed for the user to copy came out cut in two."""
    import os

    space = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 1, "seed": 0}))
    target = workdir / ("a-folder-with-a-rather-long-name-" * 3) / "best.yaml"
    env = {**os.environ, "COLUMNS": "80"}
    for args in (["run", str(space), "--no-report"], ["export", str(space), "-o", str(target)]):
        out = subprocess.run([sys.executable, "-m", "hpo", *args], cwd=workdir, capture_output=True, text=True,
                             timeout=120, env=env)
        assert out.returncode == 0, out.stdout + out.stderr
    assert len(str(target)) > 100 and f"wrote {target}" in out.stdout, out.stdout


def test_live_line_shows_the_running_trial_with_one_job(workdir, write_space):
    """With one worker the line used to be redrawn only between trials: always `running 0`."""
    from rich.console import Console

    from hpo._run import run_study
    from hpo._spec import load_spec

    space = write_space(base_space(objective={"name": "objs.py:slow"}, space={
        "x": {"type": "float", "low": 0.0, "high": 1.0}, "sleep": {"type": "float", "low": 0.15, "high": 0.16}},
        study={"direction": "minimize", "metric": "loss", "n_trials": 1, "seed": 0}))
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=250)
    result = run_study(load_spec(space), 1, console)
    assert result.exit_code == 0
    assert "0/1 trials · 0 complete · 0 pruned · 0 failed · 1 running" in buffer.getvalue()
    assert "1/1 trials · 1 complete · 0 pruned · 0 failed · 0 running" in buffer.getvalue()


def test_an_80_column_terminal_still_shows_the_best_value_and_eta(workdir, write_space):
    """The full line (a 40-column bar, every state, elapsed time) was cut before the best value."""
    from rich.console import Console

    from hpo._run import run_study
    from hpo._spec import load_spec

    space = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 3, "seed": 0,
                                          "name": "a-rather-long-study-name-here"}))
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=80)
    result = run_study(load_spec(space), 1, console)
    assert result.exit_code == 0
    last = [line for line in buffer.getvalue().replace("\r", "\n").splitlines() if "3/3" in line][-1]
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", last)
    assert "a-rather-long-s…" in plain and "3/3 · 3 complete · best " in plain, plain
    assert "ETA" in plain and "…" not in plain.partition("best ")[2], plain


def test_run_ends_with_best_export_ui_and_dashboard(workdir, write_space, cli):
    space = write_space(base_space(mlflow={"enabled": True},
                                   study={"direction": "minimize", "metric": "loss", "n_trials": 2, "seed": 0}))
    code, out, _ = cli("run", space)
    assert code == 0
    tail = out[out.index("this run took"):]
    assert f"hpo best {space}" in tail and f"hpo export {space} -o best.yaml" in tail
    assert f"hpo ui {space}" in tail and "dashboard: " in tail and "report.html" in tail
    assert "writing the dashboard…" in tail  # the tail says what it does


def test_the_hints_name_the_study_the_flags_chose(workdir, write_space, cli):
    """With --set study.name=other, `hpo best FILE` alone would read another study."""
    space = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 2, "seed": 0}))
    code, out, _ = cli("run", space, "--no-report", "--set", "study.name=other run")
    assert code == 0
    tail = out[out.index("this run took"):]
    assert f"hpo best {space} --set 'study.name=other run'" in tail
    assert f"hpo export {space} --set 'study.name=other run' -o best.yaml" in tail


def test_a_run_without_a_complete_trial_points_at_the_traceback_not_at_best(workdir, write_space, cli):
    space = write_space(base_space(objective={"name": "objs.py:always_fails"},
                                   study={"direction": "minimize", "metric": "loss", "n_trials": 2, "seed": 0}))
    code, out, _ = cli("run", space, "--no-report")
    assert code == 1
    tail = out[out.index("this run took"):]
    assert "hpo best" not in tail and "hpo export" not in tail
    assert "why trials failed (traceback): hpo-runs/space/trials/00001/error.txt and 1 more" in tail
    assert "Traceback" in (workdir / "hpo-runs" / "space" / "trials" / "00001" / "error.txt").read_text()


def test_tail_says_it_writes_queued_mlflow_records(capsys):
    from rich.console import Console

    from hpo._run import _close_tracker

    class Queued:
        closed = False

        def queued_writes(self) -> int:
            return 5

        def close(self) -> None:
            Queued.closed = True

    console = Console(file=io.StringIO(), force_terminal=False)
    _close_tracker(Queued(), None, None, console)  # type: ignore[arg-type]
    assert Queued.closed and "writing 5 queued MLflow records…" in console.file.getvalue()


def test_train_prints_no_optuna_log_line(workdir, write_space, cli):
    space = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 2, "seed": 0}))
    assert cli("run", space, "--no-report")[0] == 0
    assert cli("export", space, "-o", workdir / "best.yaml")[0] == 0
    out = subprocess.run([sys.executable, "-m", "hpo", "train", "best.yaml"], cwd=workdir, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "retraining trial" in out.stdout
    assert "A new study created" not in out.stderr and "A new study created" not in out.stdout, out.stderr


@pytest.mark.parametrize("sampler, n_trials", [("random", 2), ("grid", 10)])
def test_rerun_of_complete_study_starts_no_worker(workdir, write_space, cli, sampler, n_trials):
    """A finished study (cap reached, or grid exhausted) returns at once, even with --jobs 2."""
    space_doc = {"x": {"type": "categorical", "choices": [1.0, 2.0]}} if sampler == "grid" else None
    doc = base_space(sampler={"name": sampler},
                     study={"direction": "minimize", "metric": "loss", "n_trials": n_trials, "seed": 0})
    if space_doc:
        doc["space"] = space_doc
    space = write_space(doc)
    assert cli("run", space, "--no-report")[0] == 0
    started = time.monotonic()
    code, out, _ = cli("run", space, "--no-report", "--jobs", "2")
    elapsed = time.monotonic() - started
    assert code == 0 and "study complete" in out
    assert not list(workdir.glob("hpo-runs/*/workers/worker-*.log")), "a worker was started"
    assert elapsed < 3.0, f"rerun of a complete study took {elapsed:.1f} s"


def test_study_is_not_complete_while_a_retry_waits_but_is_past_the_cap(workdir, write_space):
    """The retry of a trial lost to a dead worker still runs (the lost one does not count against
    n_trials); a trial queued beyond the cap (a grid larger than n_trials) waits for a larger run."""
    from hpo._run import study_is_complete
    from hpo._spec import load_spec
    from hpo._study import open_study, requeue

    spec = load_spec(write_space(base_space()))
    study = open_study(spec)
    assert not study_is_complete(study, spec)
    for _ in range(spec.study.n_trials - 1):
        study.add_trial(_frozen("COMPLETE", 1.0))
    study.add_trial(_frozen("FAIL"))
    lost = study.get_trials(deepcopy=False)[-1]
    assert requeue(study, lost, spec, "worker died")
    assert not study_is_complete(study, spec)  # the WAITING retry still runs
    study.add_trial(_frozen("COMPLETE", 1.0))  # ... as it does: the cap is reached
    study.enqueue_trial({"x": 1.0})
    assert study_is_complete(study, spec)      # a trial queued past the cap is no reason to run
