"""A new trial is created already claimed by its worker: one journal record, so no crash or full
disk between "create" and "say whose it is" can leave a trial that recovery must wait out; and a
signal between the claim and the objective fails and re-queues it like a signal during the objective."""

from __future__ import annotations

import json
import os

import pytest
from _helpers import base_space

from hpo import _keys as keys


def test_a_new_trial_carries_its_worker_in_its_creation_record(write_space, workdir):
    from hpo._spec import load_spec
    from hpo._study import next_trial, open_study, worker_is_dead

    spec = load_spec(write_space(base_space()))
    study = open_study(spec)
    trial = next_trial(study, spec)
    records = [json.loads(line) for line in (workdir / "hpo-runs" / "space" / "journal.log").read_bytes().splitlines()]
    (created,) = [r for r in records if r["op_code"] == 4]  # JournalOperation.CREATE_TRIAL
    assert created["user_attrs"]["worker"].endswith(f":{os.getpid()}")
    assert created["user_attrs"]["worker_start"]
    assert not [r for r in records if r["op_code"] == 8], "no separate user-attr record for the claim"
    frozen = study.trials[trial.number]
    assert frozen.state.name == "RUNNING" and not worker_is_dead(frozen)


# -- a signal between claiming a trial and running its objective ----------------------------------


def _interrupted_in(monkeypatch, module: str, name: str):
    """Makes ``module.name`` raise SIGHUP's Interrupted: a signal landing while it runs."""
    import signal

    from hpo._signals import Interrupted

    def land(*args, **kwargs):
        raise Interrupted(signal.SIGHUP)

    monkeypatch.setattr(f"{module}.{name}", land)


def _run_one(spec, study):
    from hpo._worker import run_worker
    from hpo.tracking import Tracker

    with pytest.raises(KeyboardInterrupt):
        run_worker(spec, Tracker(), study)
    return study.get_trials(deepcopy=False)


@pytest.mark.parametrize("where", [("hpo._beat", "first_beat"), ("hpo._worker", "suggest")],
                         ids=["while-claiming", "before-the-objective"])
def test_a_signal_after_the_claim_fails_and_requeues_the_trial(write_space, monkeypatch, where):
    from hpo._spec import load_spec
    from hpo._study import open_study

    spec = load_spec(write_space(base_space()))
    study = open_study(spec)
    _interrupted_in(monkeypatch, *where)
    lost, retry = _run_one(spec, study)
    assert lost.state.name == "FAIL" and lost.user_attrs[keys.FAIL_REASON] == "interrupted (Interrupted: SIGHUP)"
    assert retry.state.name == "WAITING" and retry.user_attrs[keys.RETRY_OF] == lost.number


def test_a_queued_trial_interrupted_before_it_suggested_keeps_its_params(write_space, monkeypatch):
    """A queued trial holds its params outside ``trial.params`` until suggested: the retry keeps them."""
    from hpo._optuna_compat import queued_params
    from hpo._spec import load_spec
    from hpo._study import open_study

    spec = load_spec(write_space(base_space()))
    study = open_study(spec)
    study.enqueue_trial({"x": 1.5})
    _interrupted_in(monkeypatch, "hpo._worker", "suggest")
    lost, retry = _run_one(spec, study)
    assert lost.state.name == "FAIL" and retry.state.name == "WAITING"
    assert queued_params(retry) == {"x": 1.5}
