"""MlflowTracker against a real SQLite MLflow store, read back with MlflowClient."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from hpo.tracking import Tracker, TrialOutcome, default_tracking_uri, make_tracker
from hpo.tracking._mlflow import MAX_PARAM_VAL_LENGTH, TRUNCATION_MARK, MlflowTracker

optuna.logging.set_verbosity(optuna.logging.WARNING)


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def runs_of(uri: str, experiment_id: str) -> list[Any]:
    from mlflow.entities import ViewType

    return list(client(uri).search_runs([experiment_id], "", run_view_type=ViewType.ALL, max_results=5000))


def history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, round(m.value, 6)) for m in client(uri).get_metric_history(run_id, key))


# --------------------------------------------------------------------------------------------


def simulate_study(tracker: MlflowTracker, info: dict[str, Any]) -> tuple[str, dict[int, str]]:
    """An in-memory Optuna study with a COMPLETE, a PRUNED (epoch 1) and a FAILED trial."""
    study = optuna.create_study(direction="maximize")
    parent = tracker.start_study(info, None)
    assert parent
    fixed = {"dataset": "digits", "max_epochs": 3, "teacher": {"width": 8, "depth": 2}}
    run_ids: dict[int, str] = {}

    t = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 0.3, log=True)})
    run_ids[t.number] = tracker.start_trial(t.number, t.params, fixed)
    for epoch in range(3):
        tracker.log_metrics({"val_acc": 0.5 + 0.1 * epoch, "val_loss": 1.0 - 0.2 * epoch}, step=epoch)
    tracker.end_trial("COMPLETE", [0.7])
    study.tell(t, 0.7)

    t = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 0.3, log=True)})
    run_ids[t.number] = tracker.start_trial(t.number, t.params, fixed)
    for epoch in range(2):
        tracker.log_metrics({"val_acc": 0.1 + 0.05 * epoch, "val_loss": 2.0}, step=epoch)
    tracker.end_trial("PRUNED", [0.15], pruned_at_step=1)
    study.tell(t, state=optuna.trial.TrialState.PRUNED)

    t = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 0.3, log=True)})
    run_ids[t.number] = tracker.start_trial(t.number, t.params, fixed)
    tracker.log_metrics({"val_acc": 0.2, "val_loss": 3.0}, step=0)
    tracker.end_trial("FAIL", None, reason="ValueError: loss is NaN")
    study.tell(t, state=optuna.trial.TrialState.FAIL)
    tracker.close()
    return parent, run_ids


def test_study_lands_in_mlflow_nested_with_states(store, study_info):
    tracker = make_tracker(store["uri"], None, runs_dir=store["runs_dir"])
    assert isinstance(tracker, MlflowTracker)
    parent_id, run_ids = simulate_study(tracker, study_info)
    uri = store["uri"]
    c = client(uri)
    exp = c.get_experiment_by_name("demo")  # experiment defaults to the study name
    assert exp is not None and exp.experiment_id == tracker.experiment_id
    assert exp.artifact_location.startswith(Path(store["artifacts"]).resolve().as_uri())

    runs = runs_of(uri, exp.experiment_id)
    parents = [r for r in runs if r.data.tags.get("hpo.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("hpo.role") == "trial"]
    assert len(runs) == 4 and len(parents) == 1 and len(children) == 3

    parent = parents[0]
    assert parent.info.run_id == parent_id
    assert parent.info.run_name == "demo"
    tags = parent.data.tags
    assert tags["hpo.study"] == "demo"
    assert tags["sampler"] == "TPESampler" and tags["pruner"] == "MedianPruner"
    assert tags["objective"] == "objs:train"
    assert tags["space_sha256"] == "ab" * 32 and tags["hpo_version"] == "0.1.0"
    assert tags["git_sha"] == tags["mlflow.source.git.commit"] == study_info["git_sha"]
    assert [a.path for a in c.list_artifacts(parent_id)] == ["space.yaml"]
    assert parent.info.status == "FINISHED"  # no trial runs anymore after close()

    by_number = {int(r.data.tags["trial_number"]): r for r in children}
    assert sorted(by_number) == [0, 1, 2]
    for number, run in by_number.items():
        assert run.info.run_id == run_ids[number]
        assert run.data.tags["mlflow.parentRunId"] == parent_id
        assert run.info.run_name == f"trial-{number}"
        assert run.data.tags["hpo.study"] == "demo"
        # every param, fixed ones prefixed, nested ones flattened
        params = run.data.params
        assert set(params) == {"lr", "fixed.dataset", "fixed.max_epochs", "fixed.teacher.width", "fixed.teacher.depth"}
        assert params["fixed.dataset"] == "digits" and params["fixed.teacher.width"] == "8"
        assert float(params["lr"]) > 0

    done, pruned, failed = by_number[0], by_number[1], by_number[2]
    assert (done.data.tags["state"], done.info.status) == ("COMPLETE", "FINISHED")
    assert (pruned.data.tags["state"], pruned.info.status) == ("PRUNED", "FINISHED")
    assert (failed.data.tags["state"], failed.info.status) == ("FAIL", "FAILED")
    assert pruned.data.tags["pruned_at_epoch"] == "1"
    assert "pruned_at_epoch" not in done.data.tags and "fail_reason" not in done.data.tags
    assert failed.data.tags["fail_reason"] == "ValueError: loss is NaN"

    # every epoch with step=epoch, also for pruned and failed trials
    assert history(uri, done.info.run_id, "val_acc") == [(0, 0.5), (1, 0.6), (2, 0.7)]
    assert history(uri, done.info.run_id, "val_loss") == [(0, 1.0), (1, 0.8), (2, 0.6)]
    assert history(uri, pruned.info.run_id, "val_acc") == [(0, 0.1), (1, 0.15)]
    assert history(uri, failed.info.run_id, "val_acc") == [(0, 0.2)]
    # the final objective value
    assert done.data.metrics["final.val_acc"] == pytest.approx(0.7)
    assert history(uri, done.info.run_id, "final.val_acc") == [(2, 0.7)]
    assert pruned.data.metrics["final.val_acc"] == pytest.approx(0.15)
    assert "final.val_acc" not in failed.data.metrics


def test_existing_parent_is_reused_not_duplicated(store, study_info):
    first = MlflowTracker(store["uri"], artifacts_dir=store["artifacts"])
    parent = first.start_study(study_info, None)
    first.start_trial(0, {"lr": 0.1}, {})
    first.end_trial("COMPLETE", [0.5])
    first.close()

    second = MlflowTracker(store["uri"], artifacts_dir=store["artifacts"])  # another worker / restart
    assert second.start_study(study_info, parent) == parent
    assert second.parent_run_id == parent
    second.start_trial(1, {"lr": 0.2}, {})
    assert client(store["uri"]).get_run(parent).info.status == "RUNNING"  # the study runs again
    second.end_trial("COMPLETE", [0.6])
    second.close()

    runs = runs_of(store["uri"], second.experiment_id)
    assert [r.info.run_id for r in runs if r.data.tags.get("hpo.role") == "parent"] == [parent]
    children = [r for r in runs if r.data.tags.get("hpo.role") == "trial"]
    assert sorted(r.data.tags["trial_number"] for r in children) == ["0", "1"]
    assert all(r.data.tags["mlflow.parentRunId"] == parent for r in children)
    assert client(store["uri"]).get_run(parent).info.status == "FINISHED"


def test_attaching_to_a_parent_has_no_side_effects(store, study_info, tmp_path):
    """``hpo status``/``hpo report`` attach to the parent: its status stays as it was."""
    worker = MlflowTracker(store["uri"], artifacts_dir=store["artifacts"])
    parent = worker.start_study(study_info, None)
    worker.start_trial(0, {}, {})  # a trial of a live worker keeps the parent RUNNING
    reader = MlflowTracker(store["uri"], artifacts_dir=store["artifacts"])
    assert reader.start_study(study_info, parent) == parent
    assert reader.reconcile({0}, {}) == 0
    reader.close()
    assert client(store["uri"]).get_run(parent).info.status == "RUNNING"
    worker.end_trial("COMPLETE", [1.0])
    worker.close()
    assert client(store["uri"]).get_run(parent).info.status == "FINISHED"
    (tmp_path / "dashboard.html").write_text("<html></html>")
    reporter = MlflowTracker(store["uri"], artifacts_dir=store["artifacts"])
    reporter.start_study(study_info, parent)
    reporter.log_artifact(str(tmp_path / "dashboard.html"))
    reporter.close()
    assert client(store["uri"]).get_run(parent).info.status == "FINISHED"


def test_missing_parent_gets_a_new_one(store, study_info):
    tracker = MlflowTracker(store["uri"], artifacts_dir=store["artifacts"])
    new = tracker.start_study(study_info, "0" * 32)
    assert new and new != "0" * 32
    tracker.close()


def test_experiment_name_and_multi_objective_final_values(store, tk):
    info = tk.make_study_info("mo", experiment="my-exp", metrics=["val_acc", "latency"], directions=["maximize", "minimize"])
    tracker = MlflowTracker(store["uri"], artifacts_dir=store["artifacts"])
    tracker.start_study(info, None)
    run_id = tracker.start_trial(0, {}, {})
    tracker.end_trial("COMPLETE", [0.9, 12.5])
    tracker.close()
    c = client(store["uri"])
    assert c.get_experiment_by_name("my-exp").experiment_id == tracker.experiment_id
    metrics = c.get_run(run_id).data.metrics
    assert metrics == pytest.approx({"final.val_acc": 0.9, "final.latency": 12.5})
    assert c.get_run(tracker.parent_run_id).data.tags["directions"] == "maximize,minimize"


def test_long_and_odd_params_are_logged_safely(store, study_info):
    tracker = MlflowTracker(store["uri"], artifacts_dir=store["artifacts"])
    tracker.start_study(study_info, None)
    long_value = "x" * (MAX_PARAM_VAL_LENGTH + 1000)
    run_id = tracker.start_trial(
        0,
        {"lr": 0.1, "weird key!": 1, "opt": {"name": "adamw", "betas": [0.9, 0.99]}},
        {"teacher": {"ckpt": long_value}, "empty": {}, "none": None},
    )
    tracker.log_metrics({"val_acc": float("nan"), "val_loss": float("inf"), "note": "n/a"}, step=0)
    tracker.end_trial("COMPLETE", [float("nan")])
    tracker.close()
    run = client(store["uri"]).get_run(run_id)
    params = run.data.params
    assert params["opt.name"] == "adamw" and params["opt.betas"] == "[0.9, 0.99]"
    assert params["weird key_"] == "1"
    assert params["fixed.empty"] == "{}" and params["fixed.none"] == "None"
    cut = params["fixed.teacher.ckpt"]
    assert len(cut) == MAX_PARAM_VAL_LENGTH and cut.endswith(TRUNCATION_MARK)
    assert "note" not in run.data.metrics  # not a number: skipped, not an error
    assert run.info.status == "FINISHED" and tracker.errors == []


def test_log_metrics_never_blocks_and_end_trial_flushes(store, study_info):
    tracker = MlflowTracker(store["uri"], artifacts_dir=store["artifacts"])
    tracker.start_study(study_info, None)
    run_id = tracker.start_trial(0, {"lr": 0.1}, {})
    real_send = tracker._writer._send
    calls: list[int] = []

    def slow_send(rid, metrics, params, tags):  # a tracking store that takes 0.3 s per write
        calls.append(len(metrics))
        time.sleep(0.3)
        real_send(rid, metrics, params, tags)

    tracker._writer._send = slow_send
    t0 = time.perf_counter()
    for epoch in range(10):
        tracker.log_metrics({"val_acc": epoch / 10, "val_loss": 1 - epoch / 10, "train_loss": 1.0}, step=epoch)
    assert time.perf_counter() - t0 < 0.2  # the epochs did not wait for the store
    tracker.end_trial("COMPLETE", [0.9])  # waits until everything is written
    assert [s for s, _ in history(store["uri"], run_id, "val_acc")] == list(range(10))
    assert sum(calls) == 30 + 1 and len(calls) < 10  # 10 epochs + final value; merged, not one call each
    tracker.close()


def test_busy_database_is_retried(store, study_info, monkeypatch):
    from mlflow.exceptions import MlflowException

    tracker = MlflowTracker(store["uri"], artifacts_dir=store["artifacts"])
    tracker.start_study(study_info, None)
    run_id = tracker.start_trial(0, {}, {})
    real = tracker.client.log_batch
    failures = {"left": 3}

    def flaky(*args, **kwargs):
        if kwargs.get("metrics") and failures["left"]:
            failures["left"] -= 1
            raise MlflowException("(sqlite3.OperationalError) database is locked", error_code="TEMPORARILY_UNAVAILABLE")
        return real(*args, **kwargs)

    monkeypatch.setattr(tracker.client, "log_batch", flaky)
    for epoch in range(3):
        tracker.log_metrics({"val_acc": epoch}, step=epoch)
    tracker.end_trial("COMPLETE", [2.0])
    tracker.close()
    assert failures["left"] == 0 and tracker.errors == []
    assert history(store["uri"], run_id, "val_acc") == [(0, 0.0), (1, 1.0), (2, 2.0)]


def test_close_ends_an_open_trial_as_killed(store, study_info):
    tracker = MlflowTracker(store["uri"], artifacts_dir=store["artifacts"])
    tracker.start_study(study_info, None)
    run_id = tracker.start_trial(0, {}, {})
    for epoch in range(50):
        tracker.log_metrics({"val_acc": epoch}, step=epoch)
    tracker.close()
    run = client(store["uri"]).get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags["state"] == "KILLED"
    assert "fail_reason" in run.data.tags
    assert len(history(store["uri"], run_id, "val_acc")) == 50  # nothing queued was lost


def test_artifacts_go_to_the_parent(store, study_info, tmp_path):
    tracker = MlflowTracker(store["uri"], artifacts_dir=store["artifacts"])
    parent = tracker.start_study(study_info, None)
    (tmp_path / "dashboard.html").write_text("<html></html>")
    (tmp_path / "best.yaml").write_text("params: {}\n")
    tracker.log_artifact(str(tmp_path / "dashboard.html"))
    tracker.log_artifact(str(tmp_path / "best.yaml"))
    tracker.close()
    names = sorted(a.path for a in client(store["uri"]).list_artifacts(parent))
    assert names == ["best.yaml", "dashboard.html", "space.yaml"]
    assert (Path(store["artifacts"]) / "demo").is_dir()  # under <runs_dir>/mlflow-artifacts


_ORPHAN_WORKER = r"""
import sys, threading, time
from hpo.tracking._mlflow import MlflowTracker
uri, artifacts, parent = sys.argv[1:4]
t = MlflowTracker(uri, artifacts_dir=artifacts)
t.start_study({"study_name": "demo", "metrics": ["val_acc"]}, parent)
ids = []
def trial(n):
    ids.append(t.start_trial(n, {"lr": 0.1}, {}))
    t.log_metrics({"val_acc": 0.5}, step=0)
th = [threading.Thread(target=trial, args=(n,)) for n in (5, 7)]
[x.start() for x in th]; [x.join() for x in th]
t.flush()
print("READY", flush=True)
time.sleep(600)
"""


def test_reconcile_kills_runs_of_dead_workers_only(store, study_info, tk):
    main = MlflowTracker(store["uri"], artifacts_dir=store["artifacts"])
    parent = main.start_study(study_info, None)
    proc = tk.popen_python(_ORPHAN_WORKER, store["uri"], str(store["artifacts"]), parent)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "READY", proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGKILL)  # the worker dies mid-trial: its runs stay RUNNING
        proc.wait(10)
    live_id = main.start_trial(6, {"lr": 0.2}, {})  # a trial of a live worker
    running = {r.data.tags["trial_number"] for r in main.child_runs(running_only=True)}
    assert running == {"5", "6", "7"}
    other = MlflowTracker(store["uri"], artifacts_dir=store["artifacts"])
    other.start_study(study_info, parent)
    later_id = other.start_trial(9, {"lr": 0.3}, {})  # started after the caller looked (numbers up to 8)

    assert main.reconcile({6}, {5: TrialOutcome("FAIL", reason="boom"), 8: TrialOutcome("COMPLETE", [0.1])}) == 2
    assert main.reconcile({6}, {5: TrialOutcome("FAIL", reason="boom")}) == 0  # idempotent
    # a newer trial's run is its own worker's to end
    assert {r.info.run_id for r in other.child_runs(running_only=True)} == {live_id, later_id}
    other.end_trial("COMPLETE", [0.2])
    other.close()
    by_number = {r.data.tags["trial_number"]: r for r in main.child_runs()}
    assert by_number["5"].info.status == "FAILED" and by_number["5"].data.tags["state"] == "FAIL"
    assert by_number["5"].data.tags["fail_reason"] == "boom"
    assert by_number["7"].info.status == "KILLED" and by_number["7"].data.tags["state"] == "KILLED"
    assert by_number["5"].data.metrics["val_acc"] == 0.5  # what it logged stays
    assert by_number["6"].info.status == "RUNNING" and by_number["6"].info.run_id == live_id
    main.end_trial("COMPLETE", [0.5])
    main.close()


def test_disabled_tracker_and_default_uri(tmp_path):
    assert type(make_tracker(None, None, enabled=False)) is Tracker
    uri = default_tracking_uri(tmp_path / "runs")
    assert uri == "sqlite:///" + str((tmp_path / "runs" / "mlflow.db").resolve())
    tracker = make_tracker(None, "exp", runs_dir=tmp_path / "runs")
    assert tracker.tracking_uri == uri
    assert tracker.artifacts_dir == (tmp_path / "runs" / "mlflow-artifacts").resolve()
    assert tracker.experiment == "exp"
    # the base class does nothing and answers the new signatures
    base = Tracker()
    assert base.start_study({"study_name": "x"}, None) is None and base.reconcile(set(), {}) == 0


def test_importing_hpo_tracking_does_not_import_mlflow(tk):
    proc = tk.run_python(
        "import sys, hpo.tracking, hpo.tracking._mlflow, hpo.tracking._ui;"
        "assert 'mlflow' not in sys.modules, sorted(m for m in sys.modules if m.startswith('mlflow'))"
    )
    assert proc.returncode == 0, proc.stderr


def test_reconcile_writes_the_outcome_of_a_trial_whose_final_write_was_lost(store, study_info):
    """A worker killed after its trial finished (in the study) but before the run's final write."""
    tracker = MlflowTracker(store["uri"], artifacts_dir=store["artifacts"])
    tracker.start_study(study_info, None)
    run_id = tracker.start_trial(3, {"lr": 0.1}, {})
    tracker.log_metrics({"val_acc": 0.8}, step=0)
    tracker.log_metrics({"val_acc": 0.9}, step=1)
    tracker.flush()
    with tracker._lock:
        tracker._trials.clear()  # as if the process died here
    assert tracker.reconcile(set(), {3: TrialOutcome("COMPLETE", [0.9])}) == 1
    run = tracker.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["state"] == "COMPLETE"
    (final,) = tracker.client.get_metric_history(run_id, "final.val_acc")
    assert (final.value, final.step) == (0.9, 1)
    tracker.close()
