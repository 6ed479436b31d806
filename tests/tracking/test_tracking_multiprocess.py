"""Several worker processes, each with its own MlflowTracker, writing one SQLite store at once."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

_WORKER = r"""
import json, os, sys, time
from pathlib import Path
from hpo.tracking._mlflow import MlflowTracker, RETRIES

uri, artifacts, worker, n_workers, n_trials, parent_file = sys.argv[1:7]
worker, n_workers, n_trials = int(worker), int(n_workers), int(n_trials)
info = {"study_name": "mp", "metrics": ["val_acc"], "directions": ["maximize"], "sampler": "RandomSampler"}
t = MlflowTracker(uri, artifacts_dir=artifacts)
t.client  # every worker opens the (fresh) database at the same moment
exp_id = t._get_or_create_experiment("mp")  # ... and creates the experiment at the same moment
parent_file = Path(parent_file)
if worker == 0:  # the driver creates the parent under its study lock; others get its id
    parent = t.start_study(info, None)
    tmp = parent_file.with_suffix(".tmp"); tmp.write_text(parent); tmp.rename(parent_file)
else:
    while not parent_file.exists():
        time.sleep(0.05)
    parent = t.start_study(info, parent_file.read_text())
slow = 0.0
for i in range(n_trials):
    number = worker * n_trials + i
    t.start_trial(number, {"lr": 0.01 * (i + 1), "worker": worker}, {"max_epochs": 3})
    for epoch in range(3):
        t0 = time.perf_counter()
        t.log_metrics({"val_acc": number + epoch / 10, "val_loss": 1.0 / (epoch + 1), "epoch_time": 0.01}, step=epoch)
        slow = max(slow, time.perf_counter() - t0)
    state = ("COMPLETE", "PRUNED", "FAIL")[number % 3]
    t.end_trial(state, [number + 0.2] if state != "FAIL" else None,
                reason="boom" if state == "FAIL" else None, pruned_at_step=2 if state == "PRUNED" else None)
t.close()
print(json.dumps({"parent": parent, "exp": exp_id, "errors": t.errors, "retries": RETRIES["count"],
                  "max_log_metrics_s": slow}))
"""

N_WORKERS, N_TRIALS = 4, 20


@pytest.mark.slow  # ~13 s
def test_workers_share_one_sqlite_store(store, tk, tmp_path):
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    parent_file = tmp_path / "parent-id"
    t0 = time.perf_counter()
    procs = [
        tk.popen_python(
            _WORKER, store["uri"], str(store["artifacts"]), str(w), str(N_WORKERS), str(N_TRIALS), str(parent_file)
        )
        for w in range(N_WORKERS)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
        assert "database is locked" not in err, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    elapsed = time.perf_counter() - t0
    print(f"\n{N_WORKERS} workers x {N_TRIALS} trials: {elapsed:.1f}s, retries per worker "
          f"{[r['retries'] for r in results]}, slowest log_metrics {max(r['max_log_metrics_s'] for r in results):.4f}s")

    assert all(r["errors"] == [] for r in results)
    assert len({r["parent"] for r in results}) == 1
    assert len({r["exp"] for r in results}) == 1
    assert max(r["max_log_metrics_s"] for r in results) < 0.5  # epochs never waited on the store

    c = MlflowClient(tracking_uri=store["uri"])
    exps = [e for e in c.search_experiments(view_type=ViewType.ALL) if e.name == "mp"]
    assert len(exps) == 1
    runs = list(c.search_runs([exps[0].experiment_id], "", run_view_type=ViewType.ALL, max_results=5000))
    parents = [r for r in runs if r.data.tags.get("hpo.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("hpo.role") == "trial"]
    assert len(parents) == 1 and parents[0].info.run_id == results[0]["parent"]
    numbers = Counter(int(r.data.tags["trial_number"]) for r in children)
    assert len(children) == N_WORKERS * N_TRIALS
    assert sorted(numbers) == list(range(N_WORKERS * N_TRIALS)) and set(numbers.values()) == {1}
    expected_status = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}
    for run in children:
        number = int(run.data.tags["trial_number"])
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        state = ("COMPLETE", "PRUNED", "FAIL")[number % 3]
        assert run.data.tags["state"] == state and run.info.status == expected_status[state]
        assert run.data.params["fixed.max_epochs"] == "3"
        assert run.data.metrics["val_acc"] == number + 0.2  # the last epoch's value
        assert ("final.val_acc" in run.data.metrics) == (state != "FAIL")
    # no lost metrics: every epoch of every trial
    for run in children:
        hist = c.get_metric_history(run.info.run_id, "val_loss")
        assert sorted(m.step for m in hist) == [0, 1, 2], run.data.tags["trial_number"]
    assert c.get_run(parents[0].info.run_id).info.status == "FINISHED"
