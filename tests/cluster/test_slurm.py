"""`hpo run --cluster slurm`: the workers as one job array through submitit (its local executor here)."""

from __future__ import annotations

import signal

import pytest
from _helpers import base_space, load_trials, pid_alive, start_hpo, trial_worker_pids, wait_until


def test_the_sbatch_script_carries_the_flags(workdir):
    """The script submitit would hand to sbatch, from `hpo run`'s own flags (rendered without SLURM)."""
    from hpo.cli import build_parser
    from hpo.cluster._slurm import options_from_args, sbatch_script

    args = build_parser().parse_args([
        "run", "space.yaml", "--cluster", "slurm", "--jobs", "5", "--slurm-partition", "gpu",
        "--slurm-gpus-per-task", "2", "--slurm-cpus-per-task", "8", "--slurm-mem-gb", "16", "--slurm-time", "90",
        "--slurm-account", "lab", "--slurm-qos", "high", "--slurm-constraint", "a100",
        "--slurm-setup", "module load cuda"])
    script = sbatch_script(options_from_args(args), 5, "hpo-demo", workdir / "slurm" / "%j", "python -m x")
    for directive in ("--partition=gpu", "--gpus-per-task=2", "--cpus-per-task=8", "--mem=16384MB", "--time=90",
                      "--account=lab", "--qos=high", "--constraint=a100", "--job-name=hpo-demo",
                      "--array=0-4%5", "--ntasks-per-node=1", "--nodes=1"):
        assert f"#SBATCH {directive}\n" in script, directive
    assert "\nmodule load cuda\n" in script
    assert "--gres" not in script and "--gpus-per-node" not in script


@pytest.mark.parametrize(("version", "supported"), [("1.5.4", True), ("1.9.0", True), ("1.4.9", False),
                                                   ("2.0.0", False), ("dev", False)])
def test_the_private_renderer_is_used_with_checked_versions_only(version, supported):
    from hpo.cluster._submitit_compat import UnsupportedSubmititError, check_version

    if supported:
        check_version(version)
    else:
        with pytest.raises(UnsupportedSubmititError, match="submitit.slurm.slurm._make_sbatch_string"):
            check_version(version)


def _space(n_trials: int, objective: str = "objs.py:quadratic", **study) -> dict:
    return base_space(study={"direction": "minimize", "metric": "loss" if "quadratic" in objective else "value",
                             "n_trials": n_trials, "seed": 0, **study}, objective={"name": objective})


@pytest.mark.slow  # three submitit tasks, ~20 s on a loaded machine
def test_a_local_array_runs_the_study_and_status_shows_its_jobs(write_space, workdir, cli):
    path = write_space(_space(9))
    proc = start_hpo("run", path, "--cluster", "slurm", "--slurm-local", "--jobs", "3", "--no-report", cwd=workdir)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "submitted 3 worker(s)" in out
    trials = load_trials(path)
    assert sorted(t.number for t in trials) == list(range(9))
    assert all(t.state.name == "COMPLETE" for t in trials)
    import json

    tasks = [json.loads((workdir / "hpo-runs" / "space" / "slurm" / f"task-{i}.json").read_text()) for i in range(3)]
    task_pids = {int(t["worker"].rpartition(":")[2]) for t in tasks}
    assert len(task_pids) == 3 and proc.pid not in task_pids  # three array tasks started
    assert trial_worker_pids(trials) <= task_pids  # and the trials ran in them (however the load shared them out)
    assert not [pid for pid in task_pids if pid_alive(pid)]
    code, status, _ = cli("status", path)
    assert code == 0
    job_line = next(line for line in status.splitlines() if line.startswith("SLURM jobs: "))
    assert len(job_line.split("(submitted")[0].split(",")) == 3


@pytest.mark.slow  # ~20 s
def test_ctrl_c_cancels_the_array_and_requeues_its_trials(write_space, workdir):
    (workdir / "hold").write_text("")
    path = write_space(_space(6, objective="objs.py:held"))
    proc = start_hpo("run", path, "--cluster", "slurm", "--slurm-local", "--jobs", "2", "--no-report", cwd=workdir)
    def running() -> list:
        if not (workdir / "hpo-runs" / "space" / "journal.log").exists():
            return []
        return [t for t in load_trials(path) if t.state.name == "RUNNING"]

    try:
        trials = wait_until(lambda: len(r := running()) == 2 and r, timeout=120)
    except Exception:
        (workdir / "hold").unlink()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
        raise
    task_pids = trial_worker_pids(trials)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert not [pid for pid in task_pids if pid_alive(pid)]  # the array's tasks are gone
    after = load_trials(path)
    assert not [t for t in after if t.state.name == "RUNNING"]
    assert sorted(t.state.name for t in after) == ["FAIL", "FAIL", "WAITING", "WAITING"]  # failed, re-queued


def test_slurm_needs_a_shared_storage(write_space, workdir, cli):
    code, _, err = cli("run", write_space(_space(2)), "--cluster", "slurm", "--jobs", "2")
    assert code == 2
    assert "study.storage: --cluster slurm needs a storage every node reaches" in err


def test_without_slurm_installed_the_command_says_so(write_space, workdir, cli):
    path = write_space(_space(2, storage=f"sqlite:///{workdir}/s.db"))
    code, _, err = cli("run", path, "--cluster", "slurm", "--jobs", "2")
    assert code == 2
    assert "--cluster slurm: Could not detect" in err and "--slurm-local" in err


def test_slurm_flags_without_the_slurm_engine_are_refused(write_space, workdir, cli):
    code, _, err = cli("run", write_space(_space(2)), "--slurm-partition", "gpu", "--slurm-time", "5")
    assert code == 2
    assert "--slurm-partition, --slurm-time: only used with --cluster slurm" in err


def test_an_unknown_engine_lists_the_known_ones(write_space, workdir, cli):
    code, _, err = cli("run", write_space(_space(2)), "--cluster", "kubernetes")
    assert code == 2
    assert "unknown cluster engine 'kubernetes'; known: ray, slurm" in err


@pytest.mark.slow  # ~25 s
def test_a_task_killed_on_another_node_has_its_trial_requeued_by_the_driver(write_space, workdir):
    """The tasks say they run on "node-a" (as on a compute node), so nothing on this host judges their
    processes; the driver sees the killed task end and takes its trial back; the study still completes."""
    import os

    (workdir / "hold").write_text("")
    path = write_space(_space(3, objective="objs.py:held"))
    proc = start_hpo("run", path, "--cluster", "slurm", "--slurm-local", "--jobs", "2", "--no-report",
                     "--slurm-setup", "export HPO_WORKER_HOST=node-a", cwd=workdir)

    def trials(state: str) -> list:
        if not (workdir / "hpo-runs" / "space" / "journal.log").exists():
            return []
        return [t for t in load_trials(path) if t.state.name == state]

    try:
        running = wait_until(lambda: len(r := trials("RUNNING")) == 2 and r, timeout=120)
        assert all(t.user_attrs["worker"].startswith("node-a:") for t in running)
        victim = running[0]
        os.kill(trial_worker_pids([victim]).pop(), signal.SIGKILL)
        failed = wait_until(lambda: trials("FAIL"), timeout=60)
        assert failed[0].number == victim.number
        assert failed[0].user_attrs["fail_reason"].startswith("SLURM task ")
        (workdir / "hold").unlink()  # the surviving task runs the rest, the re-queued trial included
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # a failure above: stop the driver as Ctrl-C would, so it cancels its tasks
            (workdir / "hold").unlink(missing_ok=True)
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    after = load_trials(path)
    assert sorted(t.state.name for t in after) == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]
    retry = next(t for t in after if t.user_attrs.get("retry_of") == victim.number)
    assert retry.state.name == "COMPLETE" and retry.params == victim.params
