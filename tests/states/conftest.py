"""Fixtures of the wrong-state tests: a space whose objective comes from ``stateobjs.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _helpers import base_space

STATE_OBJECTIVES = '''
import os, signal, sys, time

def exits(params, ctx):
    """sys.exit(0) in trials listed in fixed 'bad' (every trial when absent), else returns x."""
    if ctx.number in params.get("bad", [ctx.number]):
        sys.exit(0)
    return params["x"]

def spins(params, ctx):
    """A pure-Python endless loop in the trials listed in 'bad'."""
    if ctx.number in params["bad"]:
        while True:
            pass
    return params["x"]

def sleeps(params, ctx):
    """time.sleep(100) in the trials listed in 'bad', else sleeps 'pause' seconds (default 0)."""
    time.sleep(100 if ctx.number in params["bad"] else params.get("pause", 0))
    return params["x"]

def deaf(params, ctx):
    """Blocks SIGALRM, then sleeps: only the watchdog can end these trials."""
    if ctx.number in params["bad"]:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(100)
    return params["x"]

def hard_exit(params, ctx):
    """os._exit(3) in trial 1 (a crash no Python code sees), once the trial's MLflow run exists:
    MLflow starts in the background, and a crash before that leaves no run to look at (the next
    run makes the missing ones: test_a_crash_before_mlflow_started_loses_no_run)."""
    if ctx.number == 1:
        wait_for_running_run(ctx.number)
        os._exit(3)
    return params["x"]

def hard_exit_now(params, ctx):
    """os._exit(3) in trial 1 at once."""
    if ctx.number == 1:
        os._exit(3)
    return params["x"]

def wait_for_running_run(number, timeout=60.0):
    """Until hpo-runs/mlflow.db holds a RUNNING run of trial ``number`` (read with sqlite3: importing
    MLflow here while hpo's writer thread imports it can deadlock on the import locks)."""
    import sqlite3
    query = ("SELECT 1 FROM runs JOIN tags ON tags.run_uuid = runs.run_uuid "
             "WHERE tags.key = 'trial_number' AND tags.value = ? AND runs.status = 'RUNNING'")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists("hpo-runs/mlflow.db"):
            try:
                con = sqlite3.connect("hpo-runs/mlflow.db", timeout=5)
                try:
                    if con.execute(query, (str(number),)).fetchone():
                        return
                finally:
                    con.close()
            except sqlite3.Error:
                pass  # not created yet, or busy
        time.sleep(0.05)
    raise TimeoutError(f"no MLflow run of trial {number} after {timeout} s")

def parent_status(params, ctx):
    """1.0 while the study's MLflow parent run is RUNNING, else 0.0."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient("sqlite:///" + os.path.abspath("hpo-runs/mlflow.db"))
    (parent,) = client.search_runs([client.get_experiment_by_name("space").experiment_id],
                                   "tags.`hpo.role` = 'parent'")
    return 1.0 if parent.info.status == "RUNNING" else 0.0

def lightning_like(params, ctx):
    """As Lightning does: a KeyboardInterrupt becomes sys.exit(1). Trial 1 sends itself SIGTERM."""
    try:
        if ctx.number == 1:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
    except KeyboardInterrupt:
        sys.exit(1)
    return params["x"]

def lightning_sleeps(params, ctx):
    """Trains a one-weight Lightning model; in the trials listed in 'bad' its training steps hang."""
    import pytorch_lightning as pl
    import torch

    bad = ctx.number in params["bad"]

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, batch_idx):
            with open(os.path.join(str(ctx.workdir), "steps.log"), "a") as f:
                f.write(f"{batch_idx}\\n")
            if bad and batch_idx == 1:
                time.sleep(100)
            return ((self.w - batch[0]) ** 2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(8, 1)), batch_size=2)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    trainer.fit(Tiny(), data)
    return params["x"]
'''


@pytest.fixture
def state_space(workdir: Path, write_space):
    """Writes ``stateobjs.py`` and a space running ``stateobjs.py:<objective>``; returns its path."""
    (workdir / "stateobjs.py").write_text(STATE_OBJECTIVES)

    def write(objective: str, n_trials: int = 3, fixed: dict[str, Any] | None = None, mlflow: bool = False,
              **study: Any) -> Path:
        settings = {"direction": "minimize", "metric": "value", "n_trials": n_trials, "seed": 0,
                    "max_consecutive_failures": 10, **study}
        return write_space(base_space(objective={"name": f"stateobjs.py:{objective}", "fixed": fixed or {}},
                                      study=settings, mlflow={"enabled": mlflow}))

    return write


def mlflow_runs(workdir: Path) -> list[Any]:
    """Every run of the default MLflow store under ``workdir/hpo-runs`` (experiment ``space``)."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir}/hpo-runs/mlflow.db")
    experiment = client.get_experiment_by_name("space")
    return client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=5000)


@pytest.fixture
def runs_in_mlflow(workdir: Path):
    """``runs_in_mlflow()``: every run of the study's default MLflow store."""
    return lambda: mlflow_runs(workdir)
