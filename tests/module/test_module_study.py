"""Space files with ``objective: {module: ..., data: ...}``: routing, validation, a run; and the
validation rules the stack's knobs follow in other studies."""

from __future__ import annotations

from pathlib import Path

import optuna
import torch
import pytest
import yaml

import objectives
from _helpers import base_space
from _models import write
from hpo._context import TrialContext
from hpo._objective import resolve_objective
from hpo._spec import load_spec
from hpo.tracking._base import Tracker

FIXED = {"max_epochs": 1, "threads": 1}


def _space(objective, space=None, metric="val_acc", **study):
    return base_space(
        study={"direction": "maximize", "metric": metric, "n_trials": 2, "seed": 0, **study},
        objective=objective,
        space=space or {"hidden": {"type": "categorical", "choices": [4, 8]}},
    )


def _ctx(spec_config: dict, tmp: Path, metric: str = "val_acc") -> TrialContext:
    study = optuna.create_study(direction="maximize")
    return TrialContext(study.ask(), dict(spec_config), dict(spec_config), (metric,), 0, tmp / "trial",
                        tmp, Tracker())


def test_keys_go_to_stack_module_and_data(ns, workdir, write_space, cli, monkeypatch):
    write(workdir, ns)
    space = {"hidden": {"type": "categorical", "choices": [5]}, "batch_size": {"type": "categorical", "choices": [24]},
             "lr": {"type": "categorical", "choices": [0.03]}}
    path = write_space(_space({"module": "models.py:Net", "data": "models.py:Data", "fixed": FIXED}, space))
    code, out, err = cli("validate", path)
    assert code == 0, err
    spec = load_spec(path)
    objective = resolve_objective(spec.objective.name, workdir, str(path))
    built = {}
    real_fit = __import__("objectives._fit", fromlist=["fit"]).fit

    def fit(module, data, config, ctx):
        built.update(module=module, data=data, config=config)
        return real_fit(module, data, config, ctx)

    monkeypatch.setattr("objectives._fit.fit", fit)
    objective({**FIXED, "hidden": 5, "batch_size": 24, "lr": 0.03}, _ctx({}, workdir))
    assert built["module"].body.out_features == 5
    assert built["data"].batch_size == 24
    assert built["config"] == {**FIXED, "lr": 0.03}
    assert len(built["module"].seen[0]) == 24  # the data's batch size reached training


def test_study_of_a_module_runs_with_a_data_function(ns, workdir, write_space, cli):
    write(workdir, ns)
    space = {"hidden": {"type": "categorical", "choices": [4, 8]},
             "lr_schedule": {"type": "categorical", "choices": ["cosine", "onecycle"]}}
    path = write_space(_space({"module": "models.py:Net", "data": "models.py:loaders", "fixed": FIXED}, space))
    code, out, err = cli("run", path, "--no-report")
    assert code == 0, err
    _assert_all_complete(path)


def test_unknown_key_is_refused_listing_what_each_side_takes(ns, workdir, write_space, cli):
    write(workdir, ns)
    space = {"hiden": {"type": "categorical", "choices": [4, 8]}}
    path = write_space(_space({"module": "models.py:Net", "data": "models.py:Data", "fixed": FIXED}, space))
    code, _, err = cli("validate", path)
    assert code == 2
    assert "space.hiden: neither a knob of hpo's stack nor a parameter of the module or the data" in err
    assert "(did you mean 'hidden'?)" in err and "docs/knobs.md" in err and "cutmix_alpha" not in err
    assert "the module takes hidden, num_classes; the data takes batch_size, n" in err
    assert "Traceback" not in err


def test_own_optimizer_with_optimizer_knobs_is_refused_at_validate(ns, workdir, write_space, cli):
    write(workdir, ns)
    space = {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}}
    path = write_space(_space({"module": "models.py:OwnOptimizer", "data": "models.py:Data", "fixed": FIXED}, space))
    code, _, err = cli("validate", path)
    assert code == 2 and "space.lr: lr cannot reach OwnOptimizer" in err and "optimizer_factory" in err


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        ({"module": "models.py:Nt"}, "objective.module: file 'models.py' has no attribute 'Nt' (did you mean 'Net'?); "
                                     "it defines "),
        ({"module": "modles.py:Net"}, "objective.module: cannot import file 'modles.py': not found (looked in /"),
        ({"module": "models.py:loaders"}, "objective.module: expected a LightningModule class"),
        ({"module": "models.py:Net", "name": "objs.py:quadratic"}, "objective.module: give either"),
        ({"data": "models.py:Data", "name": "objs.py:quadratic"}, "objective.data: needs objective.module"),
        ({"module": "models.py:Net", "data": "models.py:Net"}, "objective.data: expected a LightningDataModule"),
        ({"module": "models.py:Net", "fixed": {"lr_schedule": "cosin"}},
         "objective.fixed.lr_schedule: expected one of constant"),
        ({"module": "models.py:Net", "fixed": {"teacher": {"width": 64}}},
         "objective.fixed.teacher: a mapping of hyperparameters trains a built-in teacher"),
    ],
)
def test_bad_module_study_is_exit_2(ns, workdir, write_space, cli, objective, message):
    write(workdir, ns)
    code, _, err = cli("validate", write_space(_space(objective)))
    assert code == 2 and message in err, err


# The user's file fails as it is imported: one line naming the key, the file, the error and its line.
BROKEN = {
    "syntax.py": ("def f(:\n    pass\n", "importing file 'syntax.py' raised SyntaxError: "),
    "raising.py": ("import os\nraise ValueError('config missing')\n",
                   "importing file 'raising.py' raised ValueError: config missing (at "),
    "needs.py": ("import not_installed_package_xyz\n",
                 "importing file 'needs.py' raised ModuleNotFoundError: No module named 'not_installed_package_xyz'"),
}


@pytest.mark.parametrize("key", ["module", "data"])
@pytest.mark.parametrize("file", sorted(BROKEN))
def test_a_user_file_failing_at_import_is_one_line_exit_2(ns, workdir, write_space, cli, file, key):
    write(workdir, ns)
    source, message = BROKEN[file]
    (workdir / file).write_text(source)
    objective = {"module": "models.py:Net", "data": "models.py:Data", key: f"{file}:Thing"}
    code, _, err = cli("validate", write_space(_space(objective)))
    assert code == 2 and f"objective.{key}: {message}" in err and "Traceback" not in err, err
    assert f"{file}, line " in err, err


def test_every_required_parameter_nobody_sets_is_named_at_once(ns, workdir, write_space, cli):
    """One at a time, each fix met the next refusal."""
    write(workdir, ns)
    with open(workdir / "models.py", "a") as f:
        f.write("\n\nclass NeedsTwo(Net):\n    def __init__(self, width, depth, hidden=8):\n"
                "        super().__init__(hidden)\n"
                "\n\nclass NeedsRoot(Data):\n    def __init__(self, root, batch_size=32):\n"
                "        super().__init__(batch_size)\n")
    objective = {"module": "models.py:NeedsTwo", "data": "models.py:NeedsRoot"}
    code, _, err = cli("validate", write_space(_space(objective)))
    assert code == 2 and ("objective.module: the module's constructor requires depth, width; the data's constructor "
                          "requires root; set them in objective.fixed or space") in err, err


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("NeedsWidth", "objective.module: the module's constructor requires width; set width in objective.fixed"),
        ("NeedsLr", "objective.module: the module's constructor requires lr; lr is a reserved knob of hpo's stack"),
    ],
)
def test_required_constructor_parameter_nobody_sets_is_exit_2(ns, workdir, write_space, cli, module, message):
    write(workdir, ns)
    space = {"batch_size": {"type": "categorical", "choices": [16, 32]}}
    code, _, err = cli("validate", write_space(_space({"module": f"models.py:{module}", "data": "models.py:Data"},
                                                      space)))
    assert code == 2 and message in err, err


def test_mixed_lightning_packages_are_refused(workdir, write_space, cli):
    write(workdir, "pytorch_lightning", "a")
    write(workdir, "lightning.pytorch", "b")
    code, _, err = cli("validate", write_space(_space({"module": "a.py:Net", "data": "b.py:Data"})))
    assert code == 2 and "import both from one package" in err


@pytest.mark.parametrize("epochs", [1, 4])
def test_metric_never_logged_fails_the_trial_naming_it_after_one_epoch(ns, workdir, write_space, cli, monkeypatch,
                                                                       epochs):
    """Checked as the second epoch starts (a 4-epoch trial trains one), and at the end of a 1-epoch one."""
    write(workdir, ns)
    fixed = {**FIXED, "max_epochs": epochs}
    path = write_space(_space({"module": "models.py:Net", "data": "models.py:Data", "fixed": fixed}, metric="val_f1"))
    assert cli("validate", path)[0] == 0  # a module's metrics are known only once it trains
    objective = resolve_objective(load_spec(path).objective.name, workdir, str(path))
    built = {}
    real_fit = __import__("objectives._fit", fromlist=["fit"]).fit

    def fit(module, data, config, ctx):
        built["module"] = module
        return real_fit(module, data, config, ctx)

    monkeypatch.setattr("objectives._fit.fit", fit)
    with pytest.raises(ValueError, match=r"study metric 'val_f1' was never logged by Net.*; it logged .*'val_acc'"):
        objective({**fixed, "hidden": 4}, _ctx({}, workdir, metric="val_f1"))
    assert built["module"].steps_run == 3  # one epoch: Data's 96 samples in batches of 32


@pytest.mark.parametrize("returned, got", [("loaders(batch_size)[0]", "returned DataLoader"),
                                           ("(*loaders(batch_size), None)", "returned a tuple of 3"),
                                           ("None", "returned NoneType")])
def test_a_data_function_returning_something_else_than_two_loaders_is_named(ns, workdir, write_space, returned, got):
    """A lone DataLoader trained without validation: the study metric was then reported as never logged."""
    write(workdir, ns)
    with open(workdir / "models.py", "a") as f:
        f.write(f"\n\ndef odd_data(batch_size=32):\n    return {returned}\n")
    path = write_space(_space({"module": "models.py:Net", "data": "models.py:odd_data", "fixed": FIXED}))
    objective = resolve_objective(load_spec(path).objective.name, workdir, str(path))
    with pytest.raises(ValueError, match=rf"objective.data: 'odd_data' {got}; expected \(train_loader, val_loader\)"):
        objective({**FIXED, "hidden": 4}, _ctx({}, workdir))


def test_a_metric_missing_because_no_validation_ran_says_so(ns, workdir, write_space):
    write(workdir, ns)
    with open(workdir / "models.py", "a") as f:
        f.write("\n\ndef train_only(batch_size=32):\n    return loaders(batch_size)[0], None\n")
    fixed = {**FIXED, "max_epochs": 3}
    path = write_space(_space({"module": "models.py:Net", "data": "models.py:train_only", "fixed": fixed}))
    objective = resolve_objective(load_spec(path).objective.name, workdir, str(path))
    with pytest.raises(ValueError, match="never logged by Net in its first epoch.*; no validation ran: the data has no "
                                         "validation loader"):
        objective({**fixed, "hidden": 4}, _ctx({}, workdir))


def test_a_metric_the_module_logs_in_its_own_epoch_end_hook_passes_the_check(ns, workdir, write_space, cli):
    """Lightning calls a module's on_train_epoch_end after the callbacks': the check waits for it."""
    write(workdir, ns)
    with open(workdir / "models.py", "a") as f:
        f.write("\n\nclass LogsAtEpochEnd(Net):\n"
                "    def on_train_epoch_end(self):\n"
                "        self.log('epoch_score', float(self.current_epoch))\n")
    fixed = {**FIXED, "max_epochs": 3}
    path = write_space(_space({"module": "models.py:LogsAtEpochEnd", "data": "models.py:Data", "fixed": fixed},
                              metric="epoch_score"))
    objective = resolve_objective(load_spec(path).objective.name, workdir, str(path))
    result = objective({**fixed, "hidden": 4}, _ctx({}, workdir, metric="epoch_score"))
    assert "epoch_score" in result


# -- the stack's rules apply only where the stack applies ------------------------------------------


def test_function_objective_keeps_its_own_params_named_like_builtin_knobs(ns, workdir, write_space, cli):
    write(workdir, ns)
    fixed = dict(FIXED, dataset="cifar10", width="wide", batch_size=16)
    path = write_space(_space({"name": "models.py:function_objective", "fixed": fixed}))
    assert cli("validate", path)[0] == 0
    code, out, err = cli("run", path, "--no-report")
    assert code == 0, err
    _assert_all_complete(path)


def _assert_all_complete(path):
    from hpo._storage import open_storage

    spec = load_spec(path)
    study = optuna.load_study(study_name=spec.study.name, storage=open_storage(spec))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 2, [t.user_attrs for t in study.trials]


def test_function_objective_may_use_optimizer_as_its_own_param(write_space, cli):
    objective = {"name": "objs.py:record_params", "fixed": {"optimizer": "adam", "dataset": "cifar10"}}
    path = write_space(base_space(objective=objective, study={"direction": "minimize", "n_trials": 2}))
    assert cli("validate", path)[0] == 0
    assert cli("run", path, "--no-report")[0] == 0
    _assert_all_complete(path)


@pytest.mark.parametrize("metric", ["val_accuracy", None])
def test_builtin_objective_needs_a_metric_it_reports(write_space, cli, metric):
    doc = base_space(objective={"name": "image_classifier", "fixed": {"max_epochs": 1}},
                     space={"lr": {"type": "float", "low": 1e-3, "high": 1e-1}})
    doc["study"].pop("metric")
    if metric:
        doc["study"]["metric"] = metric
    code, _, err = cli("validate", write_space(doc))
    assert code == 2
    assert "study.metric: image_classifier reports val_acc, val_loss, train_loss, epoch_time, samples_per_sec" in err


@pytest.mark.parametrize("objective", [{"name": "image_classifier"}, {"module": "models.py:Net"}])
def test_searched_devices_is_refused(ns, workdir, write_space, cli, objective):
    write(workdir, ns)
    doc = _space(objective, {"devices": {"type": "categorical", "choices": [1, 2]}})
    code, _, err = cli("validate", write_space(doc))
    assert code == 2 and "space.devices: cannot be searched" in err and "objective.fixed" in err


def test_example_space_file_validates(workdir, cli):
    repo = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((repo / "search_spaces/your_module.yaml").read_text())
    assert doc["objective"]["module"]
    code, out, err = cli("validate", repo / "search_spaces/your_module.yaml")
    assert code == 0, err


def test_teacher_from_an_exported_module_study(ns, workdir, write_space, cli, spy):
    write(workdir, ns)
    space = {"hidden": {"type": "categorical", "choices": [6]}}
    path = write_space(_space({"module": "models.py:Net", "data": "models.py:Data", "fixed": FIXED}, space,
                              n_trials=1))
    assert cli("run", path, "--no-report")[0] == 0
    assert cli("export", path, "-o", "best.yaml")[0] == 0
    exported = yaml.safe_load((workdir / "best.yaml").read_text())
    objective = resolve_objective(load_spec(path).objective.name, workdir, str(path))
    student = objective.module_cls(hidden=6)
    student.load_state_dict(torch.load(exported["checkpoint"], weights_only=True)["state_dict"])
    losses = []
    cb = spy(on_train_batch_end=lambda self, tr, m, out, b, i: losses.append(float(out["loss"])))
    config = dict(FIXED, teacher="best.yaml", distill_alpha=1.0, lr=1e-9)
    objectives.fit(student, objective.data(32), config, None, callbacks=[cb])
    # The teacher is the exported trial's network: the same weights as this student, so KL is 0.
    assert losses[0] == pytest.approx(0.0, abs=1e-6)


def test_builtin_objective_takes_a_teacher_from_an_exported_builtin_study(workdir, write_space, cli):
    import pytorch_lightning as pl

    from objectives._fit import run_classifier

    tiny = {"dataset": "digits", "max_epochs": 1, "width": 4, "depth": 1, "threads": 1}
    doc = base_space(study={"direction": "maximize", "metric": "val_acc", "n_trials": 1, "seed": 0},
                     objective={"name": "image_classifier", "fixed": tiny},
                     space={"lr": {"type": "categorical", "choices": [0.01]}})
    path = write_space(doc)
    assert cli("run", path, "--no-report")[0] == 0
    assert cli("export", path, "-o", "best.yaml")[0] == 0
    ckpt = torch.load(yaml.safe_load((workdir / "best.yaml").read_text())["checkpoint"], weights_only=True)
    calls = []

    class Spy(pl.Callback):
        def on_train_start(self, trainer, module):
            for name, value in module.teacher.state_dict().items():
                torch.testing.assert_close(value, ckpt["state_dict"][f"model.{name}"])
            module.teacher.register_forward_hook(lambda *args: calls.append("teacher"))

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            calls.append("batch")

    run_classifier("image", dict(tiny, width=8, teacher="best.yaml", distill_alpha=0.5), None, callbacks=[Spy()])
    assert calls[:4] == ["teacher", "batch", "teacher", "batch"] and calls.count("teacher") == calls.count("batch")
