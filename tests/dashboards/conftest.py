"""Synthetic Optuna studies (in memory, hand-checkable) and a headless Chromium for the
dashboard tests."""

from __future__ import annotations

import datetime as dt

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

optuna.logging.set_verbosity(optuna.logging.WARNING)

T0 = dt.datetime(2025, 3, 1, 10, 0, 0)
MAX_EPOCHS = 4

DISTS = {
    "lr": FloatDistribution(1e-4, 0.3, log=True),
    "width": IntDistribution(16, 128, step=16),
    "schedule": CategoricalDistribution(["cosine", "step"]),
}


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def add(study, *, state, value=None, values=None, iv=None, worker=None, start=None, end=None,
        params=None, user_attrs=None):
    ua = dict(user_attrs or {})
    if worker is not None:
        ua["worker"] = worker
    params = params if params is not None else {}
    t = create_trial(state=state, value=value, values=values, params=params,
                     distributions={k: DISTS[k] for k in params}, user_attrs=ua,
                     intermediate_values=iv or {})
    t.datetime_start = start
    t.datetime_complete = end
    study.add_trial(t)


def p(lr, width, schedule="cosine"):
    return {"lr": lr, "width": width, "schedule": schedule}


def make_single_study(name: str = "synthetic-single") -> optuna.Study:
    """Maximise val_acc. Hand-computed facts (see test_data.py):

    number state     epochs value  worker   start  complete
    0      COMPLETE  4      0.72   a:1      10:00  10:04
    1      PRUNED    2      -      b:2      10:00  10:02
    2      COMPLETE  4      0.80   b:2      10:02  10:06
    3      FAIL      1      -      (none)   10:04  10:05
    4      PRUNED    1      -      a:1      10:05  10:05:30
    5      COMPLETE  4      0.75   a:1      10:06  10:10
    6      RUNNING   1      -      b:2      10:07  -
    7      WAITING   0      -      -        -      -
    """
    s = optuna.create_study(study_name=name, direction="maximize")
    s.set_user_attr("sampler", "tpe")
    s.set_user_attr("pruner", {"name": "median", "options": {"n_warmup_steps": 1}})
    s.set_user_attr("fixed", {"max_epochs": MAX_EPOCHS, "dataset": "digits"})
    C, P, F, R, W = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL,
                     TrialState.RUNNING, TrialState.WAITING)
    add(s, state=C, value=0.72, iv={0: 0.5, 1: 0.6, 2: 0.7, 3: 0.72}, worker="a:1",
        start=at(0), end=at(4), params=p(0.01, 64))
    add(s, state=P, iv={0: 0.3, 1: 0.35}, worker="b:2", start=at(0), end=at(2),
        params=p(0.2, 16, "step"), user_attrs={"pruned_at_epoch": 1})
    add(s, state=C, value=0.80, iv={0: 0.55, 1: 0.7, 2: 0.78, 3: 0.80}, worker="b:2",
        start=at(2), end=at(6), params=p(0.005, 128), user_attrs={"mlflow_run_id": "abc123"})
    add(s, state=F, iv={0: 0.1}, start=at(4), end=at(5), params=p(0.3, 32, "step"),
        user_attrs={"fail_reason": "CUDA out of memory"})
    add(s, state=P, iv={0: 0.2}, worker="a:1", start=at(5), end=at(5.5), params=p(0.0002, 32),
        user_attrs={"pruned_at_epoch": 0})
    add(s, state=C, value=0.75, iv={0: 0.52, 1: 0.66, 2: 0.73, 3: 0.75}, worker="a:1",
        start=at(6), end=at(10), params=p(0.02, 96, "step"))
    add(s, state=R, iv={0: 0.4}, worker="b:2", start=at(7), end=None, params=p(0.05, 48))
    add(s, state=W)
    return s


# (loss: minimise, acc: maximise); trial 2 is dominated by 1, trial 5 by 3, 1 and 4 tie.
MULTI_POINTS = [(1.0, 0.5), (2.0, 0.7), (3.0, 0.6), (4.0, 0.9), (2.0, 0.7), (5.0, 0.8)]


def make_multi_study(name: str = "synthetic-multi") -> optuna.Study:
    s = optuna.create_study(study_name=name, directions=["minimize", "maximize"])
    s.set_user_attr("metrics", ["val_loss", "val_acc"])
    for i, v in enumerate(MULTI_POINTS):
        add(s, state=TrialState.COMPLETE, values=v, worker=f"h{i % 2}:{100 + i % 2}",
            iv={0: v[1] / 2, 1: v[1]}, start=at(i), end=at(i + 0.9),
            params=p(0.001 * (i + 1), 16 * (i + 1), "cosine" if i % 2 else "step"))
    add(s, state=TrialState.PRUNED, iv={0: 0.1}, worker="h0:100", start=at(7), end=at(7.2),
        params=p(0.1, 16))
    add(s, state=TrialState.FAIL, worker="h1:101", start=at(8), end=at(8.1), params=p(0.2, 32),
        user_attrs={"fail_reason": "diverged"})
    return s


@pytest.fixture
def synth():
    """Helpers and constants for building more synthetic studies inside tests."""
    from types import SimpleNamespace

    return SimpleNamespace(add=add, at=at, p=p, MAX_EPOCHS=MAX_EPOCHS,
                           MULTI_POINTS=MULTI_POINTS, make_single_study=make_single_study,
                           make_multi_study=make_multi_study)


@pytest.fixture
def single_study() -> optuna.Study:
    return make_single_study()


@pytest.fixture
def multi_study() -> optuna.Study:
    return make_multi_study()


@pytest.fixture
def empty_study() -> optuna.Study:
    return optuna.create_study(study_name="synthetic-empty")


@pytest.fixture
def failed_study() -> optuna.Study:
    s = optuna.create_study(study_name="synthetic-failed", direction="minimize")
    for i in range(3):
        add(s, state=TrialState.FAIL, worker="x:1", start=at(i), end=at(i + 0.5),
            params=p(0.01, 32), user_attrs={"fail_reason": f"error {i}"})
    return s


# --------------------------------------------------------------------------------------------
# headless Chromium
# --------------------------------------------------------------------------------------------

