"""Cross-validation through the CLI: refused values, search_spaces/cv.yaml end to end, and
``hpo train`` of a cross-validated trial retraining one model on all the training data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _cv_helpers import COUNTS, N_VAL, VAL_OFFSET, SeenBatches
from _helpers import load_trials

from hpo._keys import CV_FOLD_CURVES, CV_FOLD_VALUES, CV_STD

CV_YAML = Path(__file__).resolve().parents[2] / "search_spaces" / "cv.yaml"


@pytest.mark.parametrize(("where", "value", "key"), [
    ("--set", "objective.fixed.cv_folds=1", "objective.fixed.cv_folds"),
    ("--set", "objective.fixed.cv_folds=-3", "objective.fixed.cv_folds"),
    ("space", [0, 1], "space.cv_folds"),
])
def test_fewer_than_two_folds_is_exit_2_naming_the_key(where, value, key, workdir, write_space, cli):
    import yaml

    doc = yaml.safe_load(CV_YAML.read_text())
    args = []
    if where == "space":
        doc["objective"]["fixed"].pop("cv_folds")
        doc["space"]["cv_folds"] = {"type": "categorical", "choices": value}
    else:
        args = [where, value]
    code, out, err = cli("validate", write_space(doc), *args)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and f"{key}: must be >= 2 (0 turns cross-validation off)" in lines[0], err
    assert "Traceback" not in err + out


@pytest.fixture
def seen(monkeypatch) -> SeenBatches:
    """Every fit of this process records the batches its model saw."""
    import objectives._fit as fit_module

    recorder, real = SeenBatches(), fit_module.fit

    def recording_fit(module, data=None, config=None, ctx=None, **kwargs):
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), recorder]
        return real(module, data, config, ctx, **kwargs)

    monkeypatch.setattr(fit_module, "fit", recording_fit)
    return recorder


def test_the_cv_example_runs_and_its_best_trial_retrains_once_on_all_training_data(
        workdir, indexed_npz, seen, cli):
    space = workdir / "cv.yaml"
    shutil.copy(CV_YAML, space)
    sets = ("--set", "objective.fixed.max_epochs=2", "--set", "objective.fixed.cv_folds=3",
            "--set", f"objective.fixed.dataset={indexed_npz}")
    code, out, err = cli("run", space, "--n-trials", "2", *sets)
    assert code == 0, out + err

    trials = [t for t in load_trials(space) if t.state.name == "COMPLETE"]
    assert trials and len(seen.fits) == 3 * len(load_trials(space))
    for trial in trials:
        assert len(trial.user_attrs[CV_FOLD_VALUES]) == 3
        assert trial.value == pytest.approx(np.mean(trial.user_attrs[CV_FOLD_VALUES]))
        assert trial.user_attrs[CV_STD] == pytest.approx(np.std(trial.user_attrs[CV_FOLD_VALUES]))
        assert sorted(trial.user_attrs[CV_FOLD_CURVES]) == ["0", "1", "2"]
    assert not any(i >= VAL_OFFSET for fold in seen.fits for i in fold["train"] + fold["val"])
    _check_mlflow(workdir / "hpo-runs" / "mlflow.db", space, trials)

    assert cli("export", space, *sets, "-o", workdir / "best.yaml")[0] == 0
    seen.fits.clear()
    code, out, err = cli("train", workdir / "best.yaml")
    assert code == 0, out + err
    assert "retraining one model on all the training data" in out
    assert len(seen.fits) == 1
    assert set(seen.fits[0]["train"]) == set(range(sum(COUNTS)))
    assert set(seen.fits[0]["val"]) == {VAL_OFFSET + i for i in range(N_VAL)}  # the dataset's own split


def _check_mlflow(db: Path, space: Path, trials) -> None:
    """Each trial's MLflow run has every fold's curve, the fold values and their std."""
    from mlflow.tracking import MlflowClient

    from hpo._spec import load_spec
    from hpo._study import open_study, run_id_of

    study = open_study(load_spec(space), create=False)
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    for trial in trials:
        run_id = run_id_of(study, trial)
        assert run_id is not None
        history = lambda key: [m.value for m in sorted(client.get_metric_history(run_id, key),  # noqa: E731
                                                       key=lambda m: m.step)]
        for fold, curve in trial.user_attrs[CV_FOLD_CURVES].items():
            assert history(f"fold{fold}/val_acc") == pytest.approx(curve)
        assert history("cv_fold_value") == pytest.approx(trial.user_attrs[CV_FOLD_VALUES])
        assert history("cv_std") == pytest.approx([trial.user_attrs[CV_STD]])
