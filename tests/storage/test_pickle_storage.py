"""hpo's storage pickles (Optuna pickles storages, e.g. to hand them to other processes): the copy
reopens the journal and its lock, and reads and writes the same study."""

from __future__ import annotations

import pickle

from _helpers import base_space


def test_a_pickled_storage_reads_and_writes_the_same_study(write_space, cli):
    import optuna

    from hpo._spec import load_spec
    from hpo._storage import open_storage

    path = write_space(base_space(study={"direction": "minimize", "metric": "loss", "n_trials": 3, "seed": 0}))
    assert cli("run", path, "--no-report")[0] == 0
    spec = load_spec(path)
    storage = open_storage(spec)
    copy = pickle.loads(pickle.dumps(storage))
    original = optuna.load_study(study_name=spec.study.name, storage=storage)
    copied = optuna.load_study(study_name=spec.study.name, storage=copy)
    assert [t.values for t in copied.trials] == [t.values for t in original.trials]
    copied.enqueue_trial({"x": 1.5})
    copied.set_user_attr("written_by", "copy")
    assert original.user_attrs["written_by"] == "copy"
    assert len(original.trials) == 4
    assert original.trials[-1].state.name == "WAITING"
