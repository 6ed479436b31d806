"""A new trial is created already claimed by its worker: one journal record, so no crash or full
disk between "create" and "say whose it is" can leave a trial that recovery must wait out."""

from __future__ import annotations

import json
import os

from _helpers import base_space


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
