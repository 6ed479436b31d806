"""What the MLflow UI shows first: the runs view of the study's experiment, and the parent's description."""

from __future__ import annotations

from _helpers import base_space


def _client(workdir):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{workdir}/hpo-runs/mlflow.db")


def _parent(client, experiment_id):
    runs = client.search_runs([experiment_id], "tags.`hpo.role` = 'parent'")
    assert len(runs) == 1
    return runs[0]


def test_experiment_opens_in_runs_view_and_parent_names_best_and_dashboard(workdir, write_space, cli):
    from hpo._spec import load_spec
    from hpo._study import open_study

    space = write_space(base_space(mlflow={"enabled": True},
                                   study={"direction": "minimize", "metric": "loss", "n_trials": 3, "seed": 0}))
    assert cli("run", space)[0] == 0
    client = _client(workdir)
    experiment = client.get_experiment_by_name("space")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    note = _parent(client, experiment.experiment_id).data.tags["mlflow.note.content"]
    best = open_study(load_spec(space), create=False).best_trial
    assert f"trial {best.number}: loss={best.value:.6g}" in note
    assert str((workdir / "hpo-runs" / "space" / "report.html").resolve()) in note


def test_description_follows_the_best_trial_of_a_later_run(workdir, write_space, cli):
    doc = base_space(mlflow={"enabled": True}, study={"direction": "minimize", "metric": "loss", "n_trials": 1,
                                                       "seed": 0})
    space = write_space(doc)
    assert cli("run", space, "--no-report")[0] == 0
    doc["study"]["n_trials"] = 6
    write_space(doc)
    assert cli("run", space, "--no-report")[0] == 0
    from hpo._spec import load_spec
    from hpo._study import open_study

    best = open_study(load_spec(space), create=False).best_trial
    client = _client(workdir)
    note = _parent(client, client.get_experiment_by_name("space").experiment_id).data.tags["mlflow.note.content"]
    assert f"trial {best.number}: loss={best.value:.6g}" in note


def test_existing_experiment_without_a_kind_is_tagged_and_a_chosen_kind_kept(workdir):
    from hpo.tracking import default_tracking_uri
    from hpo.tracking._mlflow import MlflowTracker

    uri = default_tracking_uri()
    tracker = MlflowTracker(uri)
    plain = tracker.client.create_experiment("plain")
    chosen = tracker.client.create_experiment("chosen", tags={"mlflow.experimentKind": "finetuning"})
    for name in ("plain", "chosen"):
        MlflowTracker(uri, name).start_study({"study_name": name})
    client = _client(workdir)
    assert client.get_experiment(plain).tags["mlflow.experimentKind"] == "custom_model_development"
    assert client.get_experiment(chosen).tags["mlflow.experimentKind"] == "finetuning"
